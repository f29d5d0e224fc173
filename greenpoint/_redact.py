"""Hide secrets (proxy passwords) in description text before it is shown. Pure.

A description may carry ``password=`` (``socks5:``, ``httpconnect:``), at any depth
of nesting. Whatever prints or logs a description, or an error quoting one, passes
it through :func:`redact_description` first.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_description"]

REDACTED = "***"

# The value runs to the next unescaped ":" (or a "]" closing a nested description).
_PASSWORD_VALUE = re.compile(r"(?i)(password=)((?:\\.|[^:\\\]])*)")


def redact_description(description: str) -> str:
    """``description`` with every ``password=`` value replaced by ``***``."""
    return _PASSWORD_VALUE.sub(lambda match: match.group(1) + REDACTED, description)
