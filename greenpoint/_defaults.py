"""Defaults shared by many endpoints, written once (Twisted's values).

Both the constructors' defaults and the description tables (``Param`` declarations,
hence ``greenpoint check`` and the README table) read them from here.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BACKLOG", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0  # seconds to connect: Twisted's default for every client endpoint
DEFAULT_BACKLOG = 50  # listen() queue length: Twisted's default for every server endpoint
