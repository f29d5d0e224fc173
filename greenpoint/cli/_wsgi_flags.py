"""The ``greenpoint wsgi`` flags for running in production, as gunicorn names them.

``--monkey-patch``/``--no-monkey-patch``, ``--pid``, ``--user``, ``--group``,
``--forwarded-allow-ips``, ``--access-log-format`` and ``--log-level``: defined and
checked here, so that a mistake is reported before anything is bound or imported.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any

from greenpoint._access_log import check_access_log_format
from greenpoint._forwarded import (
    ForwardedAllowList,
    allow_list_from_environment,
    parse_forwarded_allow_ips,
)
from greenpoint.cli._privileges import Identity, resolve

__all__ = ["LOG_LEVELS", "Deployment", "add_deployment_flags"]

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Access lines go here, apart from greenpoint's other messages, so that --log-level
# does not silence them (gunicorn's access log ignores --log-level too).
ACCESS_LOGGER = "greenpoint.wsgi.access"


def add_deployment_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags to the ``wsgi`` subcommand's parser."""
    parser.add_argument(
        "--monkey-patch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gevent.monkey.patch_all() before importing APP, so that blocking stdlib "
        "calls (time.sleep, socket, database drivers) wait cooperatively, as "
        "gunicorn -k gevent does (default: on; --no-monkey-patch for none)",
    )
    parser.add_argument(
        "--pid", metavar="FILE", default=None, help="write the main process's PID to FILE"
    )
    parser.add_argument(
        "--user",
        default=None,
        help="after binding, run as this user (name or uid; needs root)",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="after binding, run as this group (name or gid; default: --user's group)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="peers whose X-Forwarded-For/-Proto set REMOTE_ADDR and wsgi.url_scheme: "
        "comma-separated addresses and networks, or * (default: $FORWARDED_ALLOW_IPS "
        "or 127.0.0.1,::1; UNIX socket peers are always trusted)",
    )
    parser.add_argument(
        "--access-log-format",
        metavar="FORMAT",
        default=None,
        help="access lines in gunicorn's format codes, e.g. "
        '\'%%(h)s %%(l)s %%(u)s %%(t)s "%%(r)s" %%(s)s %%(b)s "%%(f)s" "%%(a)s"\' '
        "(default: gevent's line)",
    )
    parser.add_argument(
        "--log-level",
        choices=list(LOG_LEVELS),
        default=None,
        help="the level of greenpoint's messages on stderr (access lines are apart: "
        "--no-access-log)",
    )


@dataclass(frozen=True)
class Deployment:
    """The checked values of the flags."""

    monkey_patch: bool
    pid_file: str | None
    identity: Identity | None
    forwarded_allow: ForwardedAllowList
    access_log_format: str | None
    log_level: int | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Deployment:
        """Check the flags.

        Raises:
            ValueError: a bad format, address list, user or group (the message
                names the flag).
        """
        if args.access_log_format is not None:
            check_access_log_format(args.access_log_format)
        allow_text = args.forwarded_allow_ips
        if allow_text is None:
            allow_text = allow_list_from_environment()
        try:
            allow = parse_forwarded_allow_ips(allow_text)
        except ValueError as exc:
            raise ValueError(f"--{exc}") from None
        from greenpoint.cli._privileges import PrivilegeError

        try:
            identity = resolve(args.user, args.group)
        except PrivilegeError as exc:
            raise ValueError(str(exc)) from None
        return cls(
            monkey_patch=args.monkey_patch,
            pid_file=args.pid,
            identity=identity,
            forwarded_allow=allow,
            access_log_format=args.access_log_format,
            log_level=None if args.log_level is None else LOG_LEVELS[args.log_level],
        )

    def apply_log_level(self) -> None:
        """Set ``--log-level`` on the root logger; access lines stay at INFO."""
        if self.log_level is None:
            return
        logging.getLogger().setLevel(self.log_level)
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)

    def server_options(self, access_log: bool) -> dict[str, Any]:
        """The ``WSGIServer`` options these flags mean."""
        return {
            "log": logging.getLogger(ACCESS_LOGGER) if access_log else None,
            "access_log_format": self.access_log_format,
            "forwarded_allow_ips": self.forwarded_allow,
        }
