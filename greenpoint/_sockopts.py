"""TCP socket options as description keys, and the ``socket_options`` hook.

:class:`TCPOptions` is a value (compared, written back into descriptions) holding what
a ``tcp:`` description can say beyond addresses: keep-alive and its timers
(``keepAlive``, ``keepAliveIdle``, ``keepAliveInterval``, ``keepAliveCount``),
``userTimeout`` (``TCP_USER_TIMEOUT``) and ``bindToDevice`` (``SO_BINDTODEVICE``).
Checking the values is pure; :func:`socket_configurer` makes the one function that
applies them, and a user's ``socket_options`` hook, to a fresh socket before it binds
or connects.

The hook is the escape hatch for every other option: a sequence of
``(level, option, value)`` triples passed to ``setsockopt``, or a callable taking the
socket. It is code, not a value, so like the ``resolver`` seam it is not part of an
endpoint's equality or description.

On a listening socket Linux copies these options to every accepted connection
(``tcp(7)``: the keep-alive timers, ``TCP_USER_TIMEOUT``, ``SO_BINDTODEVICE`` are
inherited), so servers set them once, on the listener.
"""

from __future__ import annotations

import dataclasses
import socket as _stdsocket
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Union, cast

from greenpoint._checks import FieldError, FieldTypeError, whole_number
from greenpoint._checks import seconds as check_seconds
from greenpoint._params import Param, boolean, describe, integer, number
from greenpoint._socket import connect_address
from greenpoint.errors import DescriptionError

__all__ = [
    "SOCKET_OPTION_KEYS",
    "SocketOptionsHook",
    "TCPOptions",
    "apply_socket_options_hook",
    "check_socket_fields",
    "configured_connect",
    "socket_configurer",
    "tcp_option_params",
    "tcp_options_from",
]

#: A ``socket_options`` hook: ``(level, option, value)`` triples, or ``callable(sock)``.
SocketOptionsHook = Union[Sequence[tuple[int, int, Any]], Callable[[Any], None], None]

# tcp(7): TCP_KEEPIDLE and TCP_KEEPINTVL take 1..32767 seconds, TCP_KEEPCNT 1..127.
_MAX_KEEPALIVE_SECONDS = 32767
_MAX_KEEPALIVE_COUNT = 127
# TCP_USER_TIMEOUT is an unsigned int of milliseconds; the kernel refuses > INT_MAX.
_MAX_USER_TIMEOUT_MS = 2**31 - 1
# IFNAMSIZ is 16 with the terminating NUL (netdevice(7)).
_MAX_DEVICE_NAME = 15

# Python field -> description key, to name the key at fault.
SOCKET_OPTION_KEYS = {
    "keep_alive": "keepAlive",
    "keep_alive_idle": "keepAliveIdle",
    "keep_alive_interval": "keepAliveInterval",
    "keep_alive_count": "keepAliveCount",
    "user_timeout": "userTimeout",
    "bind_to_device": "bindToDevice",
}


class TCPOptionError(FieldError):
    """A bad TCP option; ``key`` (also ``field``) is its description key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(key, message)
        self.key = key


def _whole(key: str, value: Any, maximum: int) -> None:
    if value is None:
        return
    try:
        whole_number(key, value, 1, maximum)
    except FieldError as exc:  # the one check and wording, under the option's key
        raise TCPOptionError(key, str(exc)) from None


def device_name(value: str) -> str:
    """A network interface name as ``SO_BINDTODEVICE`` takes it (``lo``, ``eth0``)."""
    name = value.strip()
    if not name or len(name) > _MAX_DEVICE_NAME or not name.isascii():
        raise ValueError(f"expected an interface name of 1 to {_MAX_DEVICE_NAME} ASCII characters")
    if any(char in name for char in "/:") or any(char.isspace() for char in name):
        raise ValueError("an interface name has no '/', ':' or spaces")
    return name


def user_timeout_seconds(value: str) -> float:
    """Seconds (fractions allowed) more than 0, in milliseconds' reach of the kernel."""
    seconds = number(value)
    _check_user_timeout(seconds)
    return seconds


def _check_user_timeout(seconds: Any) -> None:
    if seconds is None:
        return
    try:
        check_seconds("userTimeout", seconds, allow_none=False, zero=False)
    except FieldError as exc:
        raise TCPOptionError("userTimeout", str(exc)) from None
    if not seconds * 1000 <= _MAX_USER_TIMEOUT_MS:
        raise TCPOptionError(
            "userTimeout",
            f"userTimeout must be more than 0 and at most {_MAX_USER_TIMEOUT_MS // 1000} "
            f"seconds, not {seconds!r}",
        )
    if round(seconds * 1000) < 1:
        raise TCPOptionError("userTimeout", "userTimeout must be at least 0.001 seconds")


@dataclasses.dataclass(frozen=True)
class TCPOptions:
    """TCP options for a client's socket or a server's listener (and its connections).

    ``keep_alive``: ``None`` leaves ``SO_KEEPALIVE`` alone (off), ``True``/``False`` set
    it. ``keep_alive_idle``/``keep_alive_interval`` (whole seconds) and
    ``keep_alive_count`` set ``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT`` and
    turn keep-alive on. ``user_timeout`` (seconds, fractions allowed) sets
    ``TCP_USER_TIMEOUT`` in milliseconds: how long sent data may stay unacknowledged
    before the kernel drops the connection. ``bind_to_device`` sets
    ``SO_BINDTODEVICE`` (Linux; needs ``CAP_NET_RAW``).
    """

    keep_alive: bool | None = None
    keep_alive_idle: int | None = None
    keep_alive_interval: int | None = None
    keep_alive_count: int | None = None
    user_timeout: float | None = None
    bind_to_device: str | None = None
    _given: ClassVar[bool] = False  # per instance, set by __post_init__

    def __post_init__(self) -> None:
        if self.keep_alive is not None and not isinstance(self.keep_alive, bool):
            raise TCPOptionError("keepAlive", f"keepAlive must be a bool, not {self.keep_alive!r}")
        _whole("keepAliveIdle", self.keep_alive_idle, _MAX_KEEPALIVE_SECONDS)
        _whole("keepAliveInterval", self.keep_alive_interval, _MAX_KEEPALIVE_SECONDS)
        _whole("keepAliveCount", self.keep_alive_count, _MAX_KEEPALIVE_COUNT)
        timers = self._timers()
        if self.keep_alive is None and timers:
            object.__setattr__(self, "keep_alive", True)  # the timers mean keep-alive
        if self.keep_alive is False and timers:
            key = SOCKET_OPTION_KEYS[next(iter(timers))]
            raise TCPOptionError(key, f"{key} needs keep-alive, but keepAlive=0 turns it off")
        _check_user_timeout(self.user_timeout)
        if self.bind_to_device is not None:
            try:
                device_name(self.bind_to_device)
            except (ValueError, AttributeError) as exc:
                raise TCPOptionError(
                    "bindToDevice", f"bad bindToDevice={self.bind_to_device!r}: {exc}"
                ) from None
        # Asked on every connect (is there anything to set?): known once. Every
        # field's default is None, so "not the defaults" is "any field given".
        given = any(getattr(self, field.name) is not None for field in dataclasses.fields(self))
        object.__setattr__(self, "_given", given)

    def _timers(self) -> dict[str, int]:
        values = {
            "keep_alive_idle": self.keep_alive_idle,
            "keep_alive_interval": self.keep_alive_interval,
            "keep_alive_count": self.keep_alive_count,
        }
        return {name: value for name, value in values.items() if value is not None}

    def __bool__(self) -> bool:
        return self._given

    def setsockopt_calls(self) -> list[tuple[int, int, Any, str]]:
        """``(level, option, value, key)`` for each option set, in the order applied."""
        calls: list[tuple[int, int, Any, str]] = []
        if self.bind_to_device is not None:
            calls.append(
                (
                    _stdsocket.SOL_SOCKET,
                    _option("SO_BINDTODEVICE"),
                    self.bind_to_device.encode("ascii"),
                    "bindToDevice",
                )
            )
        timers = self._timers()
        if self.keep_alive is not None or timers:
            calls.append(
                (
                    _stdsocket.SOL_SOCKET,
                    _stdsocket.SO_KEEPALIVE,
                    int(self.keep_alive is not False),
                    "keepAlive",
                )
            )
        names = {
            "keep_alive_idle": "TCP_KEEPIDLE",
            "keep_alive_interval": "TCP_KEEPINTVL",
            "keep_alive_count": "TCP_KEEPCNT",
        }
        for field, value in timers.items():
            calls.append(
                (_stdsocket.IPPROTO_TCP, _option(names[field]), value, SOCKET_OPTION_KEYS[field])
            )
        if self.user_timeout is not None:
            milliseconds = round(self.user_timeout * 1000)
            calls.append(
                (_stdsocket.IPPROTO_TCP, _option("TCP_USER_TIMEOUT"), milliseconds, "userTimeout")
            )
        return calls

    def apply(self, sock: Any) -> None:
        """Set every option on ``sock``; ``OSError`` names the key that failed."""
        for level, option, value, key in self.setsockopt_calls():
            try:
                sock.setsockopt(level, option, value)
            except OSError as exc:
                raise _option_failed(exc, key, value) from exc

    def description_values(self) -> dict[str, Any]:
        """The fields for :func:`~greenpoint._params.describe` with
        :func:`tcp_option_params`; ``keepAlive`` is left out when the timers imply it."""
        values = dataclasses.asdict(self)
        if self.keep_alive and self._timers():
            values["keep_alive"] = None
        return values

    def description_keys(self) -> dict[str, str]:
        """The description keys of the options set (none for the defaults)."""
        return describe(tcp_option_params(), self.description_values())[1]


def _option(name: str) -> int:
    option = getattr(_stdsocket, name, None)
    if option is None:
        raise OSError(f"{name} is not available on this platform")
    return int(option)


def _option_failed(exc: OSError, key: str, value: Any) -> OSError:
    shown = value.decode("ascii") if isinstance(value, bytes) else value
    reason = exc.strerror or str(exc)
    if key == "bindToDevice" and exc.errno is not None and exc.errno == 1:  # EPERM
        reason += " (SO_BINDTODEVICE needs root or CAP_NET_RAW)"
    return OSError(exc.errno, f"cannot set {key}={shown!r}: {reason}")


def apply_socket_options_hook(sock: Any, hook: SocketOptionsHook) -> None:
    """Run a ``socket_options`` hook on ``sock``: triples to ``setsockopt``, or a call."""
    if hook is None:
        return
    if callable(hook):
        hook(sock)
        return
    for level, option, value in hook:
        sock.setsockopt(level, option, value)


def check_socket_options_hook(hook: Any) -> SocketOptionsHook:
    """``hook`` if it is a usable ``socket_options`` value (triples become a tuple)."""
    if hook is None or callable(hook):
        return cast(SocketOptionsHook, hook)
    if isinstance(hook, str | bytes) or not isinstance(hook, Sequence):
        raise TypeError(
            "socket_options must be (level, option, value) triples or a callable(sock), "
            f"not {type(hook).__name__}"
        )
    triples = tuple(tuple(item) for item in hook)
    for item in triples:
        if len(item) != 3 or not all(isinstance(part, int) for part in item[:2]):
            raise TypeError(f"socket_options: expected (level, option, value), got {item!r}")
    return triples


def socket_configurer(
    options: TCPOptions | None, hook: SocketOptionsHook
) -> Callable[[Any], None] | None:
    """One function applying ``options`` then ``hook`` to a fresh socket; ``None`` if idle."""
    if not options and hook is None:
        return None

    def configure(sock: Any) -> None:
        if options:
            options.apply(sock)
        apply_socket_options_hook(sock, hook)

    return configure


def check_socket_fields(nodelay: Any, tcp_options: Any, hook: Any) -> SocketOptionsHook:
    """Check an endpoint's ``nodelay`` and ``tcp_options``; return its checked hook.

    Raises:
        FieldTypeError: naming the field at fault.
    """
    if not isinstance(nodelay, bool):
        raise FieldTypeError("nodelay", f"nodelay must be a bool, not {nodelay!r}")
    if not isinstance(tcp_options, TCPOptions):
        raise FieldTypeError(
            "tcp_options", f"tcp_options must be a TCPOptions, not {type(tcp_options).__name__}"
        )
    try:
        return check_socket_options_hook(hook)
    except TypeError as exc:
        raise FieldTypeError("socket_options", str(exc)) from None


def configured_connect(
    nodelay: bool, configure: Callable[[Any], None] | None
) -> Callable[..., Any] | None:
    """The racer's ``connect`` seam with socket options, or ``None`` for the default."""
    if nodelay and configure is None:
        return None

    def connect(family: int, sockaddr: Any, *, timeout: Any, bind_address: Any) -> Any:
        return connect_address(
            family,
            sockaddr,
            timeout=timeout,
            bind_address=bind_address,
            nodelay=nodelay,
            configure=configure,
        )

    return connect


def tcp_option_params() -> tuple[Param, ...]:
    """The description keys for :class:`TCPOptions` (``tcp:`` clients and servers)."""
    return (
        Param("keepAlive", boolean, None, target="keep_alive", help="SO_KEEPALIVE: 1 or 0"),
        Param(
            "keepAliveIdle",
            integer(1, _MAX_KEEPALIVE_SECONDS),
            None,
            target="keep_alive_idle",
            help="TCP_KEEPIDLE: idle seconds before the first probe (turns keep-alive on)",
        ),
        Param(
            "keepAliveInterval",
            integer(1, _MAX_KEEPALIVE_SECONDS),
            None,
            target="keep_alive_interval",
            help="TCP_KEEPINTVL: seconds between probes (turns keep-alive on)",
        ),
        Param(
            "keepAliveCount",
            integer(1, _MAX_KEEPALIVE_COUNT),
            None,
            target="keep_alive_count",
            help="TCP_KEEPCNT: unanswered probes before the connection drops",
        ),
        Param(
            "userTimeout",
            user_timeout_seconds,
            None,
            target="user_timeout",
            help="TCP_USER_TIMEOUT: seconds sent data may stay unacknowledged (fractions ok)",
        ),
        Param(
            "bindToDevice",
            device_name,
            None,
            target="bind_to_device",
            help="SO_BINDTODEVICE: only use this network interface (needs CAP_NET_RAW)",
        ),
    )


def tcp_options_from(prefix: str, values: dict[str, Any]) -> TCPOptions:
    """Pop the :class:`TCPOptions` fields from bound description ``values``."""
    fields = {name: values.pop(name) for name in SOCKET_OPTION_KEYS if name in values}
    try:
        return TCPOptions(**fields)
    except TCPOptionError as exc:
        raise DescriptionError(f"{prefix}: {exc}", prefix=prefix, parameter=exc.key) from exc
