"""``python -m greenpoint`` and the ``greenpoint`` console script.

Subcommands: ``check``, ``connect``, ``listen``, ``relay``, ``wsgi``; run
``greenpoint COMMAND --help`` for each. The work is in :mod:`greenpoint.cli._main`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    from greenpoint.cli._main import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
