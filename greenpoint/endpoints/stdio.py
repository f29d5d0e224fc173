"""``StandardIOEndpoint`` / ``stdio:``: this process's stdin and stdout as one connection.

For programs started by something that talks to them over pipes — an SSH command,
``inetd``, a parent process using :class:`~greenpoint.ProcessEndpoint`, socat's
``EXEC:``. ``bind()`` takes over file descriptors 0 and 1:

* each is duplicated to a private, close-on-exec descriptor that the stream owns;
* fd 0 is then pointed at ``/dev/null`` and fd 1 at fd 2 (standard error).

So a stray ``print()`` can no longer corrupt the stream (it lands on stderr), and
closing the stream really ends the conversation: the peer sees end-of-file because
no other descriptor keeps the pipe open. The interpreter's own fds 0 and 1 stay
valid throughout. If the listener is closed before the stream was accepted, fds 0
and 1 are put back as they were.

There is one connection: the first ``accept()`` returns it, and any later
``accept()`` blocks until the listener is closed and then raises ``OSError(EBADF)``,
just as a closed gevent socket does. ``serve(handler)`` therefore runs the handler
exactly once and then idles until ``stop_listening()``. Once the stream has been
handed out, stdio is used up: another ``bind()`` in this process is a ``ListenError``.

``stdio:`` takes no parameters; unlike Twisted, which silently ignores any it is
given (``stdio:bogus=1``), every argument is a ``DescriptionError``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sys
import threading
from typing import Any, ClassVar

import gevent.event

from greenpoint._address import PipeAddress
from greenpoint._description import Description
from greenpoint._pipe_stream import PipeStream, close_fd
from greenpoint._registry import EndpointParser
from greenpoint.endpoints._base import ServerEndpoint
from greenpoint.errors import DescriptionError, ListenError

__all__ = ["SERVER_PARSERS", "StandardIOEndpoint", "StandardIOListener"]

STDIO_ADDRESS = PipeAddress("stdio")

_STDIN, _STDOUT, _STDERR = 0, 1, 2

# Who holds fds 0/1 now: None (nobody), a listener, or "used" once a stream was accepted.
_owner: Any = None
_owner_lock = threading.Lock()


@dataclasses.dataclass(eq=True)
class StandardIOEndpoint(ServerEndpoint):
    """A server endpoint whose single connection is this process's stdin/stdout."""

    prefix: ClassVar[str] = "stdio"

    def bind(self) -> StandardIOListener:
        """Take over fds 0 and 1 and return the listener holding them.

        Raises:
            ListenError: stdin or stdout is closed, or another listener has them.
        """
        return StandardIOListener._take_stdio()


class StandardIOListener:
    """Holds the private copies of stdin/stdout until ``accept()`` hands them out."""

    def __init__(self, stdin_copy: int, stdout_copy: int) -> None:
        self._stdin_copy = stdin_copy
        self._stdout_copy = stdout_copy
        self._accepted = False
        self._closed = gevent.event.Event()

    @classmethod
    def _take_stdio(cls) -> StandardIOListener:
        global _owner
        with _owner_lock:
            if _owner is not None:
                raise ListenError(
                    "stdio: standard input/output is already "
                    + ("used by an accepted stream" if _owner == "used" else "bound")
                )
            stdin_copy, stdout_copy = _divert_stdio()
            listener = cls(stdin_copy, stdout_copy)
            _owner = listener
            return listener

    def accept(self) -> tuple[PipeStream, PipeAddress]:
        """Return ``(stream, PipeAddress("stdio"))`` once; later, wait for ``close()``.

        Raises:
            OSError: ``EBADF`` once the listener is closed (as a closed socket does).
        """
        global _owner
        if not self._closed.is_set() and not self._accepted:
            self._accepted = True
            stream = PipeStream(
                self._stdin_copy, self._stdout_copy, peer=STDIO_ADDRESS, host=STDIO_ADDRESS
            )
            self._stdin_copy = self._stdout_copy = -1
            with _owner_lock:
                _owner = "used"
            return stream, STDIO_ADDRESS
        self._closed.wait()
        raise OSError(errno.EBADF, "the stdio listener is closed")

    def close(self) -> None:
        """Stop; if no stream was accepted, give fds 0 and 1 back as they were."""
        global _owner
        if self._closed.is_set():
            return
        self._closed.set()
        if not self._accepted:
            _restore_stdio(self._stdin_copy, self._stdout_copy)
            self._stdin_copy = self._stdout_copy = -1
            with _owner_lock:
                _owner = None

    @property
    def closed(self) -> bool:
        closed: bool = self._closed.is_set()
        return closed

    def fileno(self) -> int:
        """The private copy of stdin until it is accepted, then -1."""
        return self._stdin_copy

    def getsockname(self) -> str:
        return str(STDIO_ADDRESS)

    def get_host(self) -> PipeAddress:
        return STDIO_ADDRESS

    getHost = get_host  # noqa: N815 - Twisted's spelling

    def __enter__(self) -> StandardIOListener:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _divert_stdio() -> tuple[int, int]:
    """Copy fds 0 and 1 away; point 0 at /dev/null and 1 at stderr (or /dev/null)."""
    _flush_python_stdout()
    copies: list[int] = []
    try:
        for fd, name in ((_STDIN, "standard input"), (_STDOUT, "standard output")):
            try:
                copies.append(os.dup(fd))  # os.dup() copies are close-on-exec
            except OSError as exc:
                raise ListenError(f"stdio: {name} (fd {fd}) is not open: {exc.strerror}") from exc
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, _STDIN)
            try:
                os.dup2(_STDERR, _STDOUT)
            except OSError:  # no stderr either: stray output goes nowhere
                os.dup2(devnull, _STDOUT)
        finally:
            close_fd(devnull)
    except BaseException:
        if len(copies) == 2:
            _restore_stdio(*copies)
        else:
            for fd in copies:
                close_fd(fd)
        raise
    return copies[0], copies[1]


def _restore_stdio(stdin_copy: int, stdout_copy: int) -> None:
    _flush_python_stdout()
    os.dup2(stdin_copy, _STDIN)
    os.dup2(stdout_copy, _STDOUT)
    close_fd(stdin_copy)
    close_fd(stdout_copy)


def _flush_python_stdout() -> None:
    # Text already print()ed belongs before the switch, on the old fd 1.
    for stream in (sys.stdout, sys.__stdout__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


class _StdioParser(EndpointParser):
    """Reads ``stdio`` and ``stdio:`` alike; any other argument is an error."""

    def parse(self, description: Description) -> Any:
        args = () if description.args == ("",) else description.args  # "stdio:" is fine
        for key in description.kwargs:
            raise DescriptionError(
                f"stdio: takes no parameters, but {key}= was given", prefix="stdio", parameter=key
            )
        if args:
            raise DescriptionError(
                f"stdio: takes no arguments, but {list(args)!r} were given", prefix="stdio"
            )
        return super().parse(dataclasses.replace(description, args=()))


SERVER_PARSERS = {
    "stdio": _StdioParser(
        "stdio",
        (),
        StandardIOEndpoint,
        "this process's standard input and output as one connection (no parameters)",
    )
}
