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
started: each worker calls :func:`patch_for_application` right before it imports
the application (``_worker_process.py``). The supervisor itself is not patched:
it relies on ``waitpid`` and signal handling that patching would change.
"""

from __future__ import annotations

import logging

__all__ = ["import_before_switching_user", "patch_for_application"]

log = logging.getLogger("greenpoint.wsgi")


def patch_for_application() -> None:
    """``gevent.monkey.patch_all()``, once per process (a second call does nothing)."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return
    monkey.patch_all()
    log.debug("gevent monkey-patching done (patch_all)")


# What gevent's patch_all() imports (gevent 24-26, Python 3.11-3.12), found by
# diffing sys.modules around it. Best effort: a module missing here is imported by
# the worker itself, which works whenever the new user can read the installation.
_PATCH_ALL_IMPORTS = (
    "platform",
    "zope.event",
    "gevent.events",
    "gevent.local",
    "gevent.lock",
    "gevent.os",
    "gevent.queue",
    "gevent.select",
    "gevent.selectors",
    "gevent.signal",
    "gevent.ssl",
    "gevent.subprocess",
    "gevent.thread",
    "gevent.threading",
    "gevent.time",
    "gevent.monkey",
    "_threading_local",
    "concurrent.futures.thread",
)


def import_before_switching_user(monkey_patch: bool) -> None:
    """Import what every worker needs while the process can still read everything.

    ``--user`` switches the supervisor before it forks the workers, and each worker
    imports the application as that user (as gunicorn's workers do). The HTTP
    server (pywsgi and the stdlib modules it uses) and what ``patch_all()`` imports
    are not the application's business: imported here, before the switch, they
    work even when the Python installation is readable by root only.
    """
    import importlib

    import greenpoint.wsgi  # noqa: F401 - gevent.pywsgi, http.client, email...

    if not monkey_patch:
        return
    for name in _PATCH_ALL_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("not imported before switching user: %s", name)
