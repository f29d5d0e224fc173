"""UNIX domain socket endpoints: ``unix:/run/app.sock`` and ``unix:@name``.

A path that starts with ``@`` (or ``"\\0"``, the kernel's own spelling) names a
Linux *abstract* socket: it has no file, so there is no lock file, no mode and
nothing to remove on close. Anywhere else the socket is a file, and the server side
takes care of it:

* ``mode`` is applied without a window in which the file exists with looser
  permissions (see :func:`_bind_no_looser_than`);
* a stale socket file (no socket is bound to it any more) is removed and the bind
  retried; a live one — listening, or bound by a server about to listen — or
  anything that is not a socket, is left alone and reported (see
  :func:`_clear_stale_socket`);
* with ``want_pid`` (``lockfile=1``) a PID lock at ``path + ".lock"`` guards the path
  (:mod:`greenpoint._pidlock`, Twisted's format);
* closing the listener removes the socket file (only if it is still ours) and
  releases the lock.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import os
import socket as _stdsocket
import stat
import sys
from typing import Any

import gevent
from gevent import socket as gsocket

from greenpoint._address import UNIXAddress
from greenpoint._checks import FieldError, FieldTypeError, check_backlog, check_timeout
from greenpoint._defaults import DEFAULT_BACKLOG, DEFAULT_TIMEOUT
from greenpoint._description import Description
from greenpoint._dirlock import directory_lock
from greenpoint._params import Param, boolean, integer, number, octal_mode, register_inverse
from greenpoint._pidlock import LockHeldError, PidLock, lock_holder
from greenpoint._registry import EndpointParser
from greenpoint._socket import connect_address
from greenpoint.endpoints._base import ClientEndpoint, ServerEndpoint
from greenpoint.errors import (
    ConnectError,
    ConnectRefusedError,
    DescriptionError,
    ListenError,
)

__all__ = [
    "CLIENT_PARSERS",
    "SERVER_PARSERS",
    "UNIXClientEndpoint",
    "UNIXListener",
    "UNIXServerEndpoint",
]

DEFAULT_MODE = 0o666
LOCK_SUFFIX = ".lock"
# How long to wait when asking an existing socket file whether anyone listens on it.
# A live server answers at once; a full accept queue makes us wait, and then we
# assume it is live (we never remove a socket we are unsure about).
STALE_PROBE_TIMEOUT = 1.0
# After a socket file first looks stale, how long to wait before asking again. It
# covers the instant inside bind() when the file exists but the kernel has not yet
# attached the socket to it, and platforms where the datagram question (see
# _socket_bound_to) cannot be asked, where it is all that protects a server between
# its bind() and its listen(). Paid only when a stale file is really removed.
STALE_RECHECK_DELAY = 0.05
# How long the second look waits for another process's directory lock (it holds it
# for two probes and an unlink) before going ahead without it.
STALE_LOCK_WAIT = 2 * STALE_PROBE_TIMEOUT + 1.0
_ABSTRACT_MARK = "@"
# The longest path bind() accepts: sizeof(sun_path) less one (108 on Linux, 104 on
# the BSDs and macOS).
MAX_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103


def _normalize_path(path: Any) -> str:
    """``str`` path as the kernel wants it: ``"@name"`` becomes ``"\\0name"``.

    Raises:
        TypeError: not a str, bytes or os.PathLike.
        ValueError: empty, a NUL inside, or longer than the platform's limit.
    """
    if isinstance(path, bytearray):
        path = bytes(path)
    if not isinstance(path, str | bytes | os.PathLike):
        raise FieldTypeError(
            "path",
            f"a UNIX socket path must be a str, bytes or os.PathLike, "
            f"not {type(path).__name__} {path!r}",
        )
    text = os.fsdecode(path)
    if text.startswith(_ABSTRACT_MARK):
        text = "\0" + text[1:]
    if text in ("", "\0"):
        raise FieldError("path", "a UNIX socket needs a path, or @name for an abstract socket")
    if "\0" in text[1:]:
        raise FieldError("path", f"a UNIX socket path cannot contain a NUL character: {text!r}")
    _check_path_length(text)
    return text


def _check_path_length(path: str) -> None:
    # sockaddr_un.sun_path holds the path and its terminating NUL; an abstract name
    # has a leading NUL instead, so both get the same number of bytes. Refused here
    # because bind() says only "AF_UNIX path too long", with no errno or length.
    size = len(os.fsencode(path[1:] if _is_abstract(path) else path))
    if size > MAX_PATH_BYTES:
        raise FieldError(
            "path",
            f"UNIX socket path {_display_path(path)!r} is {size} bytes, over the "
            f"{MAX_PATH_BYTES}-byte limit of AF_UNIX on this platform",
        )


def _is_abstract(path: str) -> bool:
    return path.startswith("\0")


def _display_path(path: str) -> str:
    """The path as descriptions write it: ``@name`` for an abstract socket."""
    return _ABSTRACT_MARK + path[1:] if _is_abstract(path) else path


def _socket_path(value: str) -> str:
    """Description coercion: a socket path or ``@name``."""
    return _display_path(_normalize_path(value))


register_inverse(_socket_path, _display_path)  # the field holds the kernel's "\0name"


@dataclasses.dataclass(eq=True)
class UNIXClientEndpoint(ClientEndpoint):
    """Connect to a UNIX socket at ``path`` (``@name``: an abstract socket).

    ``check_pid`` refuses to connect unless a live process holds the PID lock
    ``path + ".lock"`` that a server with ``want_pid`` writes (Twisted's ``checkPID``).
    """

    path: str
    timeout: float | None = DEFAULT_TIMEOUT
    check_pid: bool = False

    prefix = "unix"

    def __post_init__(self) -> None:
        self.path = _normalize_path(self.path)
        check_timeout(self.timeout)

    @property
    def address(self) -> UNIXAddress:
        return UNIXAddress(self.path)

    def open(self, timeout: float | None = None) -> Any:
        """Connect; return the connected gevent socket.

        Blocks only the calling greenlet, for at most ``timeout`` seconds (default:
        the endpoint's ``timeout``).

        Raises:
            ConnectRefusedError: nobody listens, or (``check_pid``) no live process
                holds the lock.
            ConnectTimeoutError, ConnectError: naming the socket.
        """
        check_timeout(timeout)
        if self.check_pid and not _is_abstract(self.path):
            lock_path = self.path + LOCK_SUFFIX
            if lock_holder(lock_path) is None:
                raise ConnectRefusedError(
                    f"refusing to connect to {self.address}: no running process holds "
                    f"its lock {lock_path} (check_pid / lockfile=1)",
                    address=self.address,
                )
        return connect_address(
            _stdsocket.AF_UNIX,
            self.path,
            timeout=self.timeout if timeout is None else timeout,
            nodelay=False,
        )


class UNIXListener:
    """A listening UNIX socket that cleans up its file and lock when closed.

    It offers what a listener must (``accept``, ``close``, ``fileno``,
    ``getsockname``, ``family``) plus ``get_host()``; any other socket method is
    passed through to the gevent socket, which is also available as ``.socket``.
    """

    def __init__(
        self,
        sock: Any,
        path: str,
        lock: PidLock | None = None,
        identity: tuple[int, int] | None = None,
    ) -> None:
        self.socket = sock
        self.path = path
        self._lock = lock
        self._identity = identity  # (st_dev, st_ino) of the file we created
        self._closed = False

    @property
    def family(self) -> int:
        family: int = self.socket.family
        return family

    @property
    def type(self) -> int:
        kind: int = self.socket.type
        return kind

    @property
    def closed(self) -> bool:
        return self._closed

    def accept(self) -> tuple[Any, Any]:
        """Wait for a connection (blocks only the calling greenlet)."""
        connection: tuple[Any, Any] = self.socket.accept()
        return connection

    def fileno(self) -> int:
        fd: int = self.socket.fileno()
        return fd

    def getsockname(self) -> Any:
        return self.socket.getsockname()

    def get_host(self) -> UNIXAddress:
        return UNIXAddress(self.path)

    def leave_file_on_close(self) -> None:
        """Make :meth:`close` close only this copy of the socket (in a forked worker):
        the socket file and the lock stay for the process that bound them."""
        self._identity = None
        self._lock = None

    def close(self) -> None:
        """Stop listening, remove the socket file (if still ours), release the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            self.socket.close()
        finally:
            try:
                if self._identity is not None:
                    _unlink_if_same(self.path, self._identity)
            finally:
                if self._lock is not None:
                    self._lock.release()

    def __enter__(self) -> UNIXListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name == "socket":  # not set yet (copy, unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.socket, name)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening"
        return f"<UNIXListener {self.get_host()} {state}>"


def _identity(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def _unlink_if_same(path: str, identity: tuple[int, int]) -> None:
    # A successor may already have replaced our (stale-looking) file with its own.
    try:
        if _identity(path) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _bind_no_looser_than(sock: Any, path: str, mode: int) -> None:
    """Bind ``sock`` to ``path`` so that the file never has permissions beyond ``mode``.

    Twisted binds, then ``chmod``s: in between, the socket exists with the umask's
    permissions (often 0o755, or 0o777 under umask 0). We instead narrow the umask
    around ``bind()``, so the kernel creates the file with at most ``mode`` (Linux
    creates a socket file with 0o777 & ~umask); :func:`_apply_mode` then widens it to
    exactly ``mode``, never past it.

    Why not bind in a private temporary folder and move the socket into place: the
    socket keeps the temporary name as its address (``getsockname``, and the peer
    name that clients see), the longer temporary path eats into the 107-byte limit on
    UNIX socket paths, and a crash leaves folders behind.

    The price: the umask is per process, so a file that *another OS thread* creates
    during this one system call gets a stricter (never a looser) mode. Greenlets are
    not affected (nothing here yields), and gevent programs rarely create files from
    other threads.
    """
    old = os.umask(0o777)  # reading the umask means setting it: set the strictest
    try:
        os.umask(old | (0o777 & ~mode))
        sock.bind(path)
    finally:
        os.umask(old)


def _apply_mode(path: str, mode: int) -> None:
    """Give the freshly bound socket file exactly ``mode``."""
    if stat.S_IMODE(os.lstat(path).st_mode) != mode:
        os.chmod(path, mode)


def _listen_error(address: Any, exc: OSError, detail: str = "") -> ListenError:
    code = exc.errno
    name = _errno.errorcode.get(code, str(code)) if code is not None else "error"
    reason = exc.strerror or str(exc)
    message = f"cannot listen on {address}: {reason} ({name})"
    if detail:
        message += f": {detail}"
    if code is None:
        return ListenError(message)
    return ListenError(code, message)


# What a probe found at a socket file (see _ask_socket).
_LISTENING = "listening"
_BOUND = "bound"  # a live socket that does not accept connections (yet)
_STALE = "stale"
_GONE = "gone"

_LIVE_DETAILS = {
    _LISTENING: "another process is listening there",
    _BOUND: "another process has a socket bound there and is not accepting yet "
    "(a server between bind() and listen()?)",
}


def _socket_bound_to(path: str) -> bool | None:
    """Whether any live socket is bound to the socket file at ``path``.

    A stream ``connect`` is refused both when the file is stale and when its socket
    is bound but not listening yet (a server between ``bind()`` and ``listen()``).
    A *datagram* ``connect`` tells them apart: the kernel finds the socket bound to
    the file first, and then fails on the type mismatch (``EPROTOTYPE``); with no
    socket behind the file it is refused. Linux and the BSDs (macOS included) all
    do this, and since the lookup goes by the file, it works whichever process,
    working directory or network namespace bound the socket. Nothing reaches the
    other socket: a datagram connect sends nothing.

    Returns None when the question cannot be asked (no datagram UNIX sockets).
    Raises OSError when the answer is something else (a permission error, say).
    """
    try:
        probe = _stdsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        probe.connect(path)  # never blocks: AF_UNIX datagram connect only looks up
    except OSError as exc:
        if exc.errno == _errno.EPROTOTYPE:
            return True  # a stream or seqpacket socket holds the file
        if exc.errno in (_errno.ECONNREFUSED, _errno.ENOENT):
            return False
        raise
    finally:
        probe.close()
    return True  # a datagram socket holds it


def _ask_socket(path: str) -> str:
    """What is behind the socket file at ``path``: one of the verdicts above.

    Raises:
        ConnectError, OSError: we cannot tell (a full accept queue, no permission).
    """
    try:
        probe = connect_address(
            _stdsocket.AF_UNIX, path, timeout=STALE_PROBE_TIMEOUT, nodelay=False
        )
    except ConnectRefusedError:
        pass  # nobody accepts: its server is gone, or has not called listen() yet
    except ConnectError as exc:
        if exc.errno == _errno.ENOENT:
            return _GONE
        raise
    else:
        probe.close()
        return _LISTENING
    return _BOUND if _socket_bound_to(path) else _STALE


def _clear_stale_socket(path: str, bind_error: OSError) -> None:
    """After ``EADDRINUSE``, remove ``path`` if it is a socket file nobody holds.

    Returns when the path is free to bind again; raises :class:`ListenError`
    (naming the path and errno) when it is in use or is not ours to remove.

    A refused connect alone does not make a file stale: a server that has bound
    the path and not yet called ``listen()`` refuses too, and removing its file
    would leave it listening where nobody can reach it. So the file goes only when
    no socket is bound to it (:func:`_socket_bound_to`), twice,
    :data:`STALE_RECHECK_DELAY` apart, and it is still the same file; the second
    look and the removal hold a lock on the directory (:mod:`greenpoint._dirlock`).
    """
    address = UNIXAddress(path)
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return  # it went away meanwhile
    if not stat.S_ISSOCK(before.st_mode):
        raise _listen_error(
            address, bind_error, "the path exists and is not a socket; not removing it"
        )
    verdict = _ask_or_fail(path, bind_error)
    if verdict == _STALE:
        gevent.sleep(STALE_RECHECK_DELAY)
        # Look again and remove under the directory's lock: another server clearing
        # the same file must not bind its own between our look and our unlink.
        with directory_lock(os.path.dirname(path) or ".", wait=STALE_LOCK_WAIT):
            verdict = _ask_or_fail(path, bind_error)
            if verdict == _STALE:
                # A server died without removing its socket.
                _unlink_if_same(path, (before.st_dev, before.st_ino))
                return
    if verdict == _GONE:
        return
    raise _listen_error(address, bind_error, _LIVE_DETAILS[verdict])


def _ask_or_fail(path: str, bind_error: OSError) -> str:
    """:func:`_ask_socket`, failing the bind when the socket cannot be asked."""
    try:
        return _ask_socket(path)
    except OSError as exc:  # ConnectError included
        raise _listen_error(
            UNIXAddress(path),
            bind_error,
            f"cannot tell whether the socket is still in use ({exc})",
        ) from exc


def _remove_leftover_socket(path: str) -> None:
    """After breaking a stale lock, remove what its dead owner left, if a socket.

    Never a regular file or anything else: a mistyped path must not cost data.
    """
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


@dataclasses.dataclass(eq=True)
class UNIXServerEndpoint(ServerEndpoint):
    """Listen on a UNIX socket at ``path`` (``@name``: an abstract socket).

    ``mode`` is the socket file's permissions; ``want_pid`` guards the path with a
    PID lock at ``path + ".lock"``. Neither applies to abstract sockets.
    """

    path: str
    backlog: int = DEFAULT_BACKLOG
    mode: int = DEFAULT_MODE
    want_pid: bool = False

    prefix = "unix"

    def __post_init__(self) -> None:
        self.path = _normalize_path(self.path)
        if isinstance(self.mode, bool) or not isinstance(self.mode, int):
            raise FieldTypeError(
                "mode",
                f"mode must be an int file mode such as 0o600, "
                f"not {type(self.mode).__name__} {self.mode!r}",
            )
        if not 0 <= self.mode <= 0o777:  # as descriptions: setuid/setgid/sticky mean nothing
            raise FieldError("mode", f"mode must be permission bits, 0 to 0o777, not {self.mode!r}")
        check_backlog(self.backlog)

    @property
    def address(self) -> UNIXAddress:
        return UNIXAddress(self.path)

    def bind(self) -> UNIXListener:
        """Bind and listen; return a :class:`UNIXListener`.

        Raises:
            ListenError: naming the path and errno; "cannot acquire lock" when a
                live process holds the PID lock.
        """
        if _is_abstract(self.path):
            return self._bind_abstract()
        lock = self._take_lock() if self.want_pid else None
        try:
            return self._bind_file(lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _take_lock(self) -> PidLock:
        lock = PidLock(self.path + LOCK_SUFFIX)
        try:
            lock.acquire()
        except LockHeldError as exc:
            raise ListenError(_errno.EADDRINUSE, f"cannot listen on {self.address}: {exc}") from exc
        except OSError as exc:
            raise _listen_error(self.address, exc, f"cannot write the lock {lock.path}") from exc
        if lock.broke_stale:
            _remove_leftover_socket(self.path)
        return lock

    def _bind_abstract(self) -> UNIXListener:
        sock = gsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            raise _listen_error(self.address, exc) from exc
        except BaseException:
            sock.close()
            raise
        return UNIXListener(sock, self.path)

    def _bind_file(self, lock: PidLock | None) -> UNIXListener:
        sock = gsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        identity = None
        try:
            # Two tries: the second follows the removal of a stale socket file; if
            # the path is taken again by then, someone else is starting up there.
            for attempt in (1, 2):
                try:
                    _bind_no_looser_than(sock, self.path, self.mode)
                    break
                except OSError as exc:
                    if exc.errno != _errno.EADDRINUSE or attempt == 2:
                        raise _listen_error(self.address, exc) from exc
                    _clear_stale_socket(self.path, exc)
            identity = _identity(self.path)
            _apply_mode(self.path, self.mode)
            sock.listen(self.backlog)
        except OSError as exc:
            self._undo_bind(sock, identity)
            if isinstance(exc, ListenError):
                raise
            raise _listen_error(self.address, exc) from exc
        except BaseException:
            self._undo_bind(sock, identity)
            raise
        return UNIXListener(sock, self.path, lock, identity)

    def _undo_bind(self, sock: Any, identity: tuple[int, int] | None) -> None:
        sock.close()
        if identity is not None:
            _unlink_if_same(self.path, identity)


# Descriptions. Keys are Twisted's (``lockfile``, ``mode``, ``backlog``, ``timeout``).
#
# ``lockfile`` defaults to 0 on both sides, like Twisted's classes, although Twisted's
# *server string* defaults it to 1: one default everywhere means
# ``server_from_string("unix:/x") == UNIXServerEndpoint("/x")``, stale socket files
# are cleared safely without a lock (we ask the socket whether anyone listens), and
# no ``.lock`` files appear unasked. Give ``lockfile=1`` for the PID lock (needed when
# Twisted clients connect with ``lockfile=1``).

_CLIENT_PARAMS = (
    Param("path", _socket_path, positional=True, help="socket file, or @name"),
    Param("timeout", number, default=DEFAULT_TIMEOUT, help="seconds to wait for the connection"),
    Param(
        "lockfile",
        boolean,
        default=False,
        target="check_pid",
        help="1: refuse unless a live server holds path.lock",
    ),
)

_SERVER_PARAMS = (
    # Twisted names the server's path "address"; "path=" is accepted too (below).
    # Positional order as Twisted's _parseUNIX: address, mode, backlog, lockfile.
    Param("address", _socket_path, positional=True, target="path", help="socket file, or @name"),
    Param(
        "mode",
        octal_mode,
        default=DEFAULT_MODE,
        positional=True,
        in_form=False,
        help="socket file permissions, octal",
    ),
    Param(
        "backlog",
        integer(0),
        default=DEFAULT_BACKLOG,
        positional=True,
        in_form=False,
        help="accept queue length",
    ),
    Param(
        "lockfile",
        boolean,
        default=False,
        positional=True,
        in_form=False,
        target="want_pid",
        help="1: guard the path with a PID lock at path.lock",
    ),
)


@dataclasses.dataclass(frozen=True)
class _UNIXServerParser(EndpointParser):
    """Also accept ``path=`` (the client's key) for the server's ``address``."""

    def parse(self, description: Description) -> Any:
        kwargs = dict(description.kwargs)
        if "path" in kwargs:
            if "address" in kwargs or description.args:
                raise DescriptionError(
                    "unix: give the socket path once (by position, address= or path=)",
                    prefix="unix",
                    parameter="path",
                )
            kwargs["address"] = kwargs.pop("path")
        return super().parse(dataclasses.replace(description, kwargs=kwargs))


CLIENT_PARSERS = {
    "unix": EndpointParser(
        "unix", _CLIENT_PARAMS, UNIXClientEndpoint, "connect to a UNIX socket (@name: abstract)"
    ),
}
SERVER_PARSERS = {
    "unix": _UNIXServerParser(
        "unix", _SERVER_PARAMS, UNIXServerEndpoint, "listen on a UNIX socket (@name: abstract)"
    ),
}
