"""Coverage-guided fuzzing of greenpoint's parsers with atheris (libFuzzer).

    python fuzz/run_atheris.py description [libFuzzer options, e.g. -runs=100000]
    python fuzz/run_atheris.py proxy_header -max_total_time=60

The seeds (every built-in prefix's descriptions, v1/v2 PROXY headers) are written to
a temporary corpus directory unless a directory is given. A crash is a bug: libFuzzer
prints the input and writes it to ``crash-*``. Needs ``pip install atheris``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["greenpoint"]):
    import greenpoint  # noqa: F401  (instrumented for coverage feedback)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402

TARGETS = {
    "description": (targets.description_target, [d.encode() for d in targets.DESCRIPTIONS]),
    "proxy_header": (targets.proxy_header_target, [b"\x05" + h for h in targets.PROXY_HEADERS]),
}


def main() -> None:
    name, *options = sys.argv[1:]
    target, seeds = TARGETS[name]
    if not any(not option.startswith("-") for option in options):
        corpus = tempfile.mkdtemp(prefix=f"greenpoint-fuzz-{name}-")
        for number, seed in enumerate(seeds):
            with open(os.path.join(corpus, f"seed-{number}"), "wb") as file:
                file.write(seed)
        options.append(corpus)
    atheris.Setup([sys.argv[0], *options], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
