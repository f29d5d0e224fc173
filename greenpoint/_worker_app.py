"""The application a ``greenpoint wsgi`` process serves, monkey-patched first.

``gunicorn -k gevent`` calls ``gevent.monkey.patch_all()`` in each worker before it
imports the application, so that the blocking stdlib calls an application makes
(``time.sleep``, ``socket``, ``ssl``, ``select``, ``threading``, ``subprocess``;
database drivers and ``requests`` built on them) wait cooperatively instead of
stopping every other request of that worker. ``greenpoint wsgi`` does the same by
default (``--no-monkey-patch`` turns it off). The library itself never patches:
only the command line calls this, in the process that imports the application.

Patching must come before the application's modules are imported (they may keep
references to the original ``socket``/``time.sleep``) and before any thread is
started; so the command line calls :func:`load_worker_application` first thing,
and a supervisor that imports the application in each worker calls it there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["load_worker_application", "patch_for_application"]

log = logging.getLogger("greenpoint.wsgi")


def patch_for_application() -> None:
    """``gevent.monkey.patch_all()``, once per process (a second call does nothing)."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return
    monkey.patch_all()
    log.debug("gevent monkey-patching done (patch_all)")


def load_worker_application(spec: str, *, monkey_patch: bool = True) -> Callable[..., Any]:
    """Patch the standard library if ``monkey_patch``, then import ``module:app``.

    Raises:
        ValueError: the application cannot be imported (see ``load_application``).
    """
    if monkey_patch:
        patch_for_application()
    from greenpoint.wsgi import load_application

    return load_application(spec)
