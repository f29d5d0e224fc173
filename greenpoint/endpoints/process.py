"""``ProcessEndpoint``: a child process's stdin and stdout as a client connection.

There is no description prefix, as in Twisted: a configuration string that can
start programs is a bigger decision than a transport, and argv, environment and
working directory do not fit the ``prefix:arg:key=value`` grammar well.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from greenpoint._checks import check_timeout, whole_number
from greenpoint._child_setup import ChildSetup, check_child_fds, credential_error
from greenpoint._process_stream import ProcessStream, StandardErrorBehavior, spawn_process
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.errors import ConnectError, DescriptionError

__all__ = ["ProcessEndpoint", "StandardErrorBehavior"]


@dataclasses.dataclass(eq=True)
class ProcessEndpoint(ClientEndpoint):
    """Start ``executable`` and talk to it over its stdin (writes) and stdout (reads).

    Args:
        executable: the program; looked up on ``PATH`` (of ``env`` when given) if it
            has no slash.
        args: the whole ``argv`` *including* ``argv[0]``, as in Twisted's
            ``spawnProcess`` and ``os.execv``: ``("sh", "-c", "exit 3")``. Empty
            means ``(executable,)``.
        env: ``None`` (the default) inherits this process's environment at
            ``open()`` time; a mapping is the child's *whole* environment, so ``{}``
            is an empty one. Twisted's default is ``{}``, an empty environment.
        path: the child's working directory; ``None`` keeps ours.
        err_flag: what becomes of the child's stderr (:class:`StandardErrorBehavior`).
        uid, gid: run the child as this user and group (needs root). With only
            ``uid``, the group is that user's primary group; the supplementary
            groups are the user's, never ours.
        use_pty: give the child a new pseudo-terminal as stdin, stdout and stderr
            (and as its controlling terminal), as Twisted's ``usePTY``: the stream
            reads and writes the terminal's other side (``err_flag`` does not
            apply; the terminal echoes input and turns ``\n`` into ``\r\n``).
        child_fds: extra descriptors for the child, ``{child_fd: our_fd}`` with
            ``child_fd`` >= 3 (Twisted's ``childFDs``, without its ``"r"``/``"w"``
            pipe forms). Ours stay open and ours to close.
    """

    executable: str
    args: Sequence[str | bytes] = ()
    env: Mapping[Any, Any] | None = None
    path: str | None = None
    err_flag: StandardErrorBehavior = StandardErrorBehavior.LOG
    uid: int | None = None
    gid: int | None = None
    use_pty: bool = False
    child_fds: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.executable, str | bytes | os.PathLike):
            raise TypeError(f"ProcessEndpoint: executable must be a path, not {self.executable!r}")
        self.executable = os.fsdecode(self.executable)
        if not self.executable:
            raise ValueError("ProcessEndpoint: executable is empty")
        if isinstance(self.args, str | bytes):
            raise TypeError(
                "ProcessEndpoint: args is the argv sequence (argv[0] first), not one "
                f"string: use {(self.executable, *self.args.split())!r} or shlex.split()"
            )
        self.args = tuple(
            os.fsdecode(arg) if isinstance(arg, os.PathLike) else arg for arg in self.args
        )
        if self.env is not None:
            self.env = dict(self.env)  # a snapshot: later edits to the caller's dict don't leak in
        if self.path is not None:
            self.path = os.fsdecode(self.path)
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if value is not None:
                whole_number(name, value, 0)  # a user or group id
        self.use_pty = bool(self.use_pty)
        if self.child_fds is not None:
            try:
                self.child_fds = check_child_fds(self.child_fds)
            except ValueError as exc:
                raise ValueError(f"ProcessEndpoint: {exc}") from None
        if not isinstance(self.err_flag, StandardErrorBehavior):
            try:
                self.err_flag = StandardErrorBehavior(str(self.err_flag).lower())
            except ValueError:
                choices = ", ".join(member.name for member in StandardErrorBehavior)
                raise ValueError(
                    f"ProcessEndpoint: err_flag must be a StandardErrorBehavior ({choices}), "
                    f"not {self.err_flag!r}"
                ) from None

    @property
    def argv(self) -> tuple[str | bytes, ...]:
        """The argv the child gets: ``args``, or ``(executable,)`` when empty."""
        return tuple(self.args) or (self.executable,)

    def open(self, timeout: float | None = None) -> ProcessStream:
        """Start the child and return a stream to its stdin/stdout.

        Starting a process waits on nothing remote, so ``timeout`` is accepted for the
        common signature and not needed.

        Raises:
            ConnectError: the child could not be started; the message names the
                executable (or the working directory) and why.
        """
        check_timeout(timeout)
        refused = credential_error(self.uid, self.gid, os.geteuid(), os.getegid())
        if refused is not None:
            raise ConnectError(
                f"cannot start process {self.executable!r} as asked: {refused}",
                address=self.executable,
                errno=errno.EPERM,
            )
        for child_fd, our_fd in (self.child_fds or {}).items():
            try:
                os.fstat(our_fd)
            except OSError as exc:
                raise ConnectError(
                    f"cannot start process {self.executable!r}: child_fds {child_fd}: our "
                    f"descriptor {our_fd} is not open",
                    address=self.executable,
                    errno=exc.errno,
                ) from exc
        setup = ChildSetup(self.uid, self.gid, self.use_pty, dict(self.child_fds or {}))
        return spawn_process(
            self.executable,
            self.argv,
            env=self.env,
            cwd=self.path,
            stderr=self.err_flag,
            setup=setup,
        )

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        raise DescriptionError(
            "a ProcessEndpoint has no description string (there is no process: prefix); "
            "build it in code"
        )

    def __str__(self) -> str:
        # Readable in logs, not a description (see description_parts).
        words = [os.fsdecode(arg) for arg in self.argv]
        return f"process {self.executable} [{shlex.join(words)}]"
