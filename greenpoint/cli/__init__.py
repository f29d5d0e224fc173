"""The ``greenpoint`` command line: an application built on the library, kept apart.

``python -m greenpoint`` and the ``greenpoint`` console script run
:func:`greenpoint.cli._main.main`. Nothing in the library imports this package.

* ``_main``: the argument parser, the subcommands, the exit codes.
* ``check``: ``_explain`` (what a description means, key by key; the README's prefix table).
* ``connect``, ``listen``, ``relay``: ``_pump`` (bytes both ways), ``_relay``,
  ``_send_proxy``, ``_limit_flags`` (the limits a front end turns on).
* As a systemd service: ``_service``, ``_sd_notify``, ``_fd_store``; ``_workers``.
* ``wsgi``: ``_supervisor`` (the I/O) and ``_supervision`` (its pure decisions),
  ``_worker_process``, ``_worker_app``, ``_wsgi_flags``, ``_pidfile``, ``_privileges``.
"""
