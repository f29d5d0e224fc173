"""``ProcessEndpoint``: a child process's stdin and stdout as a client connection.

There is no description prefix, as in Twisted: a configuration string that can
start programs is a bigger decision than a transport, and argv, environment and
working directory do not fit the ``prefix:arg:key=value`` grammar well.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from greenpoint._process_stream import ProcessStream, StandardErrorBehavior, spawn_process
from greenpoint.endpoints._base import ClientEndpoint
from greenpoint.errors import DescriptionError

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
    """

    executable: str
    args: Sequence[str | bytes] = ()
    env: Mapping[Any, Any] | None = None
    path: str | None = None
    err_flag: StandardErrorBehavior = StandardErrorBehavior.LOG

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
        return spawn_process(
            self.executable, self.argv, env=self.env, cwd=self.path, stderr=self.err_flag
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
