"""A child process as a stream: its stdin and stdout behind one socket-like object.

``spawn_process`` starts the child with ``gevent.subprocess.Popen`` on pipes we make
ourselves (so that we hold raw descriptors, not file objects) and returns a
:class:`ProcessStream`: writes go to the child's stdin, reads come from its stdout.

The child is always reaped: gevent watches it from the moment it is forked and
collects its exit status when it exits (SIGCHLD), whether or not anyone calls
``wait()``, so closing the stream never leaves a zombie behind. Closing the stream
closes the child's stdin (it sees end-of-file) and our end of its stdout (further
writes get ``EPIPE``); it does not wait for the child nor signal it.

The exit status becomes a reason for ``connectionLost`` through
:meth:`ProcessStream.exit_reason` (``ConnectionDone`` for status 0,
``ProcessTerminated`` otherwise), built by the pure function :func:`exit_reason`.
When a transport runs over the stream, the policy of which endings wait for that
status (Twisted's ``processEnded``) lives here too, in
:meth:`ProcessStream.final_reason`, the hook the generic transport calls once the
stream is closed.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import pty
import signal as _signal
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent import subprocess as gsubprocess

from greenpoint._address import PipeAddress
from greenpoint._checks import check_timeout
from greenpoint._child_setup import ChildSetup, child_preexec, popen_user
from greenpoint._pipe_stream import READ_CHUNK, PipeStream, close_fd
from greenpoint.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectionDone,
    ConnectionLost,
    ProcessTerminated,
)

__all__ = ["ProcessStream", "StandardErrorBehavior", "exit_reason", "spawn_process"]

logger = logging.getLogger("greenpoint.process")

MAX_LOGGED_LINE = 64 * 1024  # a longer stderr "line" is logged in pieces of this size


class StandardErrorBehavior(enum.Enum):
    """What becomes of a child's standard error (Twisted's enum of the same name).

    ``LOG``: each line is logged at WARNING on the ``greenpoint.process`` logger.
    ``DROP``: it goes to ``/dev/null``. ``INHERIT`` (greenpoint only): the child
    writes straight to our own standard error.
    """

    LOG = "log"
    DROP = "drop"
    INHERIT = "inherit"


def exit_reason(returncode: int, label: str) -> ConnectionClosed:
    """The ``connectionLost`` reason for a child that ended with ``returncode``.

    ``returncode`` is ``Popen``'s: the exit status, or minus the signal number.
    """
    if returncode == 0:
        return ConnectionDone(f"process {label} exited with status 0")
    if returncode < 0:
        number = -returncode
        try:
            name = _signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        return ProcessTerminated(
            f"process {label} was killed by signal {number} ({name})", signal=number
        )
    return ProcessTerminated(
        f"process {label} exited with status {returncode}", exit_code=returncode
    )


def child_status_applies(reason: BaseException) -> bool:
    """A clean end, or a stream error: for a child process, its exit says more.

    Not an abort, a killed reader or a protocol's own error: those do not wait.
    """
    if isinstance(reason, ConnectionDone):
        return True
    return type(reason) is ConnectionLost and isinstance(reason.__cause__, OSError)


class ProcessStream(PipeStream):
    """A running child: ``send`` writes to its stdin, ``recv`` reads its stdout.

    Also ``pid``, ``returncode`` (``None`` while it runs), ``wait()``,
    ``exit_reason()``, ``terminate()``, ``kill()`` and ``send_signal()``.
    """

    def __init__(
        self,
        process: Any,
        stdout_fd: int,
        stdin_fd: int,
        label: str,
        stderr_logger: gevent.Greenlet | None = None,
        pty: bool = False,
    ) -> None:
        super().__init__(
            stdout_fd, stdin_fd, peer=PipeAddress(f"process {label}"), host=PipeAddress("pipe")
        )
        self.process = process
        self.label = label
        self.stderr_logger = stderr_logger
        self.pty = pty

    # Reading a terminal's master side after the child's side has closed fails with
    # EIO on Linux (pty(7)); for a stream that is end-of-file.

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            return super().recv(bufsize, flags)
        except OSError as exc:
            if self.pty and exc.errno == errno.EIO:
                return b""
            raise

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        try:
            return super().recv_into(buffer, nbytes, flags)
        except OSError as exc:
            if self.pty and exc.errno == errno.EIO:
                return 0
            raise

    @property
    def pid(self) -> int:
        pid: int = self.process.pid
        return pid

    @property
    def returncode(self) -> int | None:
        """The exit status, minus the signal number if killed, ``None`` while running."""
        code: int | None = self.process.returncode
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Block the calling greenlet until the child exits; return its returncode.

        Raises ``subprocess.TimeoutExpired`` if ``timeout`` seconds pass first.
        """
        check_timeout(timeout)
        code: int = self.process.wait(timeout)
        return code

    def exit_reason(self, timeout: float | None = None) -> ConnectionClosed:
        """Wait for the child to exit and return the reason to give ``connectionLost``.

        ``ConnectionDone`` for status 0; ``ProcessTerminated`` naming the status or
        the signal otherwise (with ``exit_code`` / ``signal`` set).
        """
        return exit_reason(self.wait(timeout), self.label)

    def final_reason(self, reason: BaseException) -> BaseException:
        """The reason a transport over this stream gives ``connectionLost``.

        Called by the transport (in its reader greenlet) once the stream is closed.
        After a clean end (end of output, ``loseConnection``) or a stream error (a
        broken pipe to a child that died, kept as the status's ``__context__``) it
        waits for the child to exit and returns :meth:`exit_reason`; any other
        ``reason`` is returned at once.
        """
        if not child_status_applies(reason):
            return reason
        status = self.exit_reason()
        if not isinstance(reason, ConnectionDone):
            status.__context__ = reason  # the broken pipe that ended it
        return status

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the child (nothing happens once it has been reaped)."""
        self.process.send_signal(signum)

    def terminate(self) -> None:
        self.send_signal(_signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(_signal.SIGKILL)


def spawn_process(
    executable: str,
    argv: Sequence[str | bytes],
    *,
    env: Mapping[Any, Any] | None,
    cwd: str | None,
    stderr: StandardErrorBehavior,
    setup: ChildSetup | None = None,
) -> ProcessStream:
    """Start ``executable`` with ``argv`` and return the stream to its stdin/stdout.

    ``env=None`` inherits our environment; a mapping is the whole environment.

    Cancelling (``gevent.Timeout``, ``kill()``) while the child is being started
    kills the child as soon as its pid is known and closes every pipe.

    Raises:
        ConnectError: the child could not be started (missing executable, not
            executable, missing working directory), naming what was wrong.
    """
    # Popen waits (cooperatively) for the exec to succeed; an interruption there
    # would lose the pid of a child that runs on. So the start runs in its own
    # greenlet, and a caller who gives up leaves it the job of ending the child.
    setup = setup if setup is not None else ChildSetup()
    starter = gevent.spawn(_capture, _start_process, executable, argv, env, cwd, stderr, setup)
    stream: ProcessStream  # what _start_process returned (gevent's get() is untyped)
    try:
        stream, error = starter.get()
    except BaseException:
        if starter.ready():
            _abandon(starter.value)
        else:
            starter.link_value(lambda done: _abandon(done.value))
        raise
    if error is not None:
        raise error
    return stream


def _capture(function: Any, *args: Any) -> tuple[Any, Exception | None]:
    # Returned rather than raised, so that gevent does not report it as a crash.
    try:
        return function(*args), None
    except Exception as exc:
        return None, exc


def _abandon(outcome: tuple[Any, Any] | None) -> None:
    stream = outcome[0] if outcome else None
    if stream is not None:
        stream.kill()
        stream.close()


def _start_process(
    executable: str,
    argv: Sequence[str | bytes],
    env: Mapping[Any, Any] | None,
    cwd: str | None,
    stderr: StandardErrorBehavior,
    setup: ChildSetup,
) -> ProcessStream:
    if setup.use_pty:
        return _start_on_pty(executable, argv, env, cwd, setup)
    # os.pipe() descriptors are close-on-exec; Popen dup2()s the child's ends onto
    # 0/1/2, which clears the flag there only.
    parent_fds: list[int] = []
    child_fds: list[int] = []
    try:
        stdin_read, stdin_write = os.pipe()
        child_fds.append(stdin_read)
        parent_fds.append(stdin_write)
        stdout_read, stdout_write = os.pipe()
        child_fds.append(stdout_write)
        parent_fds.append(stdout_read)
        stderr_target: Any = None
        stderr_read = -1
        if stderr is StandardErrorBehavior.LOG:
            stderr_read, stderr_target = os.pipe()
            child_fds.append(stderr_target)
            parent_fds.append(stderr_read)
        elif stderr is StandardErrorBehavior.DROP:
            stderr_target = gsubprocess.DEVNULL
        try:
            process = gsubprocess.Popen(
                list(argv),
                executable=executable,
                stdin=stdin_read,
                stdout=stdout_write,
                stderr=stderr_target,
                env=None if env is None else dict(env),
                cwd=cwd,
                close_fds=True,
                **_setup_keywords(setup),
            )
        except OSError as exc:
            raise _start_error(exc, executable, cwd) from exc
        finally:
            _close_all(child_fds)
        label = f"{executable!r} (pid {process.pid})"
        try:
            stream = ProcessStream(process, stdout_read, stdin_write, label)
        except BaseException:
            process.kill()
            raise
    except BaseException:
        _close_all(parent_fds)
        raise
    if stderr_read >= 0:
        stream.stderr_logger = gevent.spawn(_log_stderr, stderr_read, label)
    return stream


def _setup_keywords(setup: ChildSetup) -> dict[str, Any]:
    """``Popen`` keywords for the user, group and extra descriptors of ``setup``."""
    keywords = popen_user(setup.uid, setup.gid)
    preexec = child_preexec(setup)
    if preexec is not None:
        keywords["preexec_fn"] = preexec
    if setup.child_fds:
        keywords["pass_fds"] = tuple(setup.child_fds)  # kept open by close_fds
    return keywords


def _start_on_pty(
    executable: str,
    argv: Sequence[str | bytes],
    env: Mapping[Any, Any] | None,
    cwd: str | None,
    setup: ChildSetup,
) -> ProcessStream:
    """Start the child with a new pseudo-terminal as its stdin, stdout and stderr.

    We keep the terminal's master side, twice (one copy to read, one to write, as a
    PipeStream wants two descriptors); the child's side is closed here once it has it.
    """
    master, slave = pty.openpty()
    parent_fds = [master]
    try:
        parent_fds.append(os.dup(master))
        try:
            process = gsubprocess.Popen(
                list(argv),
                executable=executable,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=None if env is None else dict(env),
                cwd=cwd,
                close_fds=True,
                **_setup_keywords(setup),
            )
        except OSError as exc:
            raise _start_error(exc, executable, cwd) from exc
        finally:
            close_fd(slave)
        label = f"{executable!r} (pid {process.pid}, on a terminal)"
        try:
            return ProcessStream(process, parent_fds[0], parent_fds[1], label, pty=True)
        except BaseException:
            process.kill()
            raise
    except BaseException:
        _close_all(parent_fds)
        raise


def _start_error(exc: OSError, executable: str, cwd: str | None) -> ConnectError:
    reason = exc.strerror or str(exc)
    if cwd is not None and exc.filename == cwd and cwd != executable:
        what = f"cannot start {executable!r} in working directory {cwd!r}: {reason}"
    else:
        what = f"cannot start process {executable!r}: {reason}"
    return ConnectError(what, address=executable, errno=exc.errno)


def _close_all(fds: list[int]) -> None:
    while fds:
        close_fd(fds.pop())


def _log_stderr(fd: int, label: str) -> None:
    """Log what the child writes to stderr, a line at a time, until end-of-file."""
    pending = b""
    try:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                gsocket.wait_read(fd)
                continue
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            while len(pending) >= MAX_LOGGED_LINE:
                lines.append(pending[:MAX_LOGGED_LINE])
                pending = pending[MAX_LOGGED_LINE:]
            for line in lines:
                _log_line(label, line)
        if pending:
            _log_line(label, pending)
    finally:
        close_fd(fd)


def _log_line(label: str, line: bytes) -> None:
    text = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
    logger.warning("process %s wrote to stderr: %s", label, text)
