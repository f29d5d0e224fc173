"""Socket options as description keys (keep-alive, userTimeout, bindToDevice, nodelay)
and the ``socket_options`` hook, observed with getsockopt on both ends of a loopback
connection."""

from __future__ import annotations

import os
import socket as stdsocket

import gevent
import pytest

import greenpoint
from greenpoint import DescriptionError, TCP4ClientEndpoint, TCP4ServerEndpoint
from greenpoint._sockopts import TCPOptionError, TCPOptions
from greenpoint.errors import ConnectError

pytestmark = pytest.mark.timeout(30)

TCP = stdsocket.IPPROTO_TCP
KEYS = "keepAliveIdle=7:keepAliveInterval=3:keepAliveCount=4:userTimeout=2.5"
# What KEYS should show through getsockopt.
EXPECTED = {
    (stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE): 1,
    (TCP, stdsocket.TCP_KEEPIDLE): 7,
    (TCP, stdsocket.TCP_KEEPINTVL): 3,
    (TCP, stdsocket.TCP_KEEPCNT): 4,
    (TCP, stdsocket.TCP_USER_TIMEOUT): 2500,
}


def _seen(sock):
    return {key: sock.getsockopt(*key) for key in EXPECTED}


def _accepted_options(server_description, client_description=None, client=None):
    """Serve ``server_description``; connect; the options seen on both sockets."""
    seen = {}
    done = gevent.event.Event()

    def handler(stream, address):
        seen["accepted"] = _seen(stream)
        seen["accepted_nodelay"] = stream.getsockopt(TCP, stdsocket.TCP_NODELAY)
        done.set()
        stream.recv(1)
        stream.close()

    with greenpoint.server_from_string(server_description).serve(handler) as port:
        number = port.get_host().port
        endpoint = client or greenpoint.client_from_string(
            (client_description or "tcp:127.0.0.1:{port}").format(port=number)
        )
        with endpoint.open(timeout=5) as sock:
            seen["client"] = _seen(sock)
            seen["client_nodelay"] = sock.getsockopt(TCP, stdsocket.TCP_NODELAY)
            assert done.wait(5)
    return seen


def test_server_keys_show_on_the_accepted_socket():
    seen = _accepted_options(f"tcp:0:interface=127.0.0.1:{KEYS}")
    assert seen["accepted"] == EXPECTED
    assert seen["client"][(TCP, stdsocket.TCP_USER_TIMEOUT)] == 0  # the client's untouched


@pytest.mark.parametrize(
    "client",
    [
        f"tcp:127.0.0.1:{{port}}:{KEYS}",  # an IP literal: TCP4ClientEndpoint
        f"tcp4:localhost:{{port}}:{KEYS}",  # a name, one family: the racer
        f"tcp:localhost:{{port}}:{KEYS}",  # a name, both families: HostnameEndpoint
        f"tcp:localhost,127.0.0.1:{{port}}:{KEYS}",  # several hosts: HostnamesEndpoint
    ],
)
def test_client_keys_show_on_the_client_socket(client):
    seen = _accepted_options("tcp:0:interface=127.0.0.1", client)
    assert seen["client"] == EXPECTED
    assert seen["accepted"][(TCP, stdsocket.TCP_KEEPIDLE)] != 7


@pytest.mark.parametrize("client", ["tcp:127.0.0.1:{port}", "tcp:localhost:{port}"])
def test_client_nodelay_is_on_unless_nodelay_0(client):
    assert _accepted_options("tcp:0:interface=127.0.0.1", client)["client_nodelay"]
    off = _accepted_options("tcp:0:interface=127.0.0.1", client + ":nodelay=0")
    assert not off["client_nodelay"]


def test_keep_alive_alone_sets_so_keepalive():
    seen = _accepted_options("tcp:0:interface=127.0.0.1:keepAlive=1", "tcp:127.0.0.1:{port}")
    assert seen["accepted"][(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE)] == 1
    assert seen["client"][(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE)] == 0


def _is_root():
    return os.geteuid() == 0


def test_bind_to_device_lo_on_both_ends():
    if not _is_root():
        pytest.skip("SO_BINDTODEVICE needs root or CAP_NET_RAW, which this run lacks")
    names = {}

    def device(sock):
        value = sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_BINDTODEVICE, 16)
        return value.rstrip(b"\0").decode()

    def handler(stream, address):
        names["accepted"] = device(stream)
        stream.close()

    server = "tcp:0:interface=127.0.0.1:bindToDevice=lo"
    with greenpoint.server_from_string(server).serve(handler) as port:
        client = f"tcp:127.0.0.1:{port.get_host().port}:bindToDevice=lo"
        with greenpoint.client_from_string(client).open(timeout=5) as sock:
            names["client"] = device(sock)
            sock.recv(1)
    assert names == {"accepted": "lo", "client": "lo"}


def test_bind_to_a_missing_device_names_the_key():
    if not _is_root():
        pytest.skip("SO_BINDTODEVICE needs root or CAP_NET_RAW, which this run lacks")
    endpoint = greenpoint.client_from_string("tcp:127.0.0.1:9:bindToDevice=nosuchdev0")
    with pytest.raises(ConnectError, match=r"bindToDevice='nosuchdev0'.*No such device"):
        endpoint.open(timeout=5)


def test_bind_to_device_without_privilege_says_what_is_needed():
    if _is_root():
        pytest.skip("running as root: SO_BINDTODEVICE is allowed, nothing to refuse")
    endpoint = greenpoint.client_from_string("tcp:127.0.0.1:9:bindToDevice=lo")
    with pytest.raises(ConnectError, match="CAP_NET_RAW"):
        endpoint.open(timeout=5)


# -- the socket_options hook --------------------------------------------------------


def test_socket_options_triples_are_set_before_connecting():
    tos = (stdsocket.IPPROTO_IP, stdsocket.IP_TOS, 0x10)
    with greenpoint.server_from_string("tcp:0:interface=127.0.0.1").serve(
        lambda stream, address: stream.close()
    ) as port:
        endpoint = TCP4ClientEndpoint("127.0.0.1", port.get_host().port, socket_options=[tos])
        with endpoint.open(timeout=5) as sock:
            assert sock.getsockopt(stdsocket.IPPROTO_IP, stdsocket.IP_TOS) == 0x10


def test_socket_options_callable_sees_the_socket_before_connect_and_bind():
    calls = []

    def hook(sock):
        with pytest.raises(OSError):
            sock.getpeername()  # not connected yet
        calls.append(sock.getsockname())

    server = TCP4ServerEndpoint(0, interface="127.0.0.1", socket_options=hook)
    with server.serve(lambda stream, address: stream.close()) as port:
        client = TCP4ClientEndpoint("127.0.0.1", port.get_host().port, socket_options=hook)
        with client.open(timeout=5):
            pass
    assert calls == [("0.0.0.0", 0), ("0.0.0.0", 0)]  # the listener's, then the client's


def test_socket_options_hook_is_outside_equality_and_description():
    plain = TCP4ClientEndpoint("127.0.0.1", 80)
    hooked = TCP4ClientEndpoint("127.0.0.1", 80, socket_options=[(6, 1, 1)])
    assert hooked == plain
    assert str(hooked) == str(plain) == "tcp4:127.0.0.1:80"


@pytest.mark.parametrize("hook", ["IP_TOS", [(1, 2)], [("a", 2, 3)], 5])
def test_bad_socket_options_hook_is_refused(hook):
    with pytest.raises(ValueError, match="socket_options"):
        TCP4ClientEndpoint("127.0.0.1", 80, socket_options=hook)


# -- descriptions: round trip and bad values ----------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("tcp:127.0.0.1:80:keepAlive=1", "tcp4:127.0.0.1:80:keepAlive=1"),
        ("tcp:127.0.0.1:80:keepAlive=0", "tcp4:127.0.0.1:80:keepAlive=0"),
        ("tcp:127.0.0.1:80:keepAlive=1:keepAliveIdle=60", "tcp4:127.0.0.1:80:keepAliveIdle=60"),
        ("tcp:h:80:keepAliveCount=3:userTimeout=0.5", "tcp:h:80:keepAliveCount=3:userTimeout=0.5"),
        ("tcp:a,b:80:userTimeout=10:nodelay=0", "tcp:a,b:80:nodelay=0:userTimeout=10"),
        ("tcp6:h:80:bindToDevice=eth0", "tcp6:h:80:bindToDevice=eth0"),
        ("tls:h:443:keepAliveIdle=30:nodelay=0", "tls:h:443:nodelay=0:keepAliveIdle=30"),
    ],
)
def test_client_descriptions_round_trip(description, expected):
    endpoint = greenpoint.client_from_string(description)
    assert str(endpoint) == expected
    assert greenpoint.client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "tcp:0:keepAliveInterval=5:userTimeout=0.25",
            "tcp4:0:keepAliveInterval=5:userTimeout=0.25",
        ),
        ("tcp6:8080:keepAlive=1:bindToDevice=lo", "tcp6:8080:keepAlive=1:bindToDevice=lo"),
    ],
)
def test_server_descriptions_round_trip(description, expected):
    endpoint = greenpoint.server_from_string(description)
    assert str(endpoint) == expected
    assert greenpoint.server_from_string(str(endpoint)) == endpoint


def test_options_take_part_in_equality():
    plain = greenpoint.client_from_string("tcp:h:80")
    assert greenpoint.client_from_string("tcp:h:80:keepAlive=1") != plain
    assert greenpoint.client_from_string("tcp:h:80:nodelay=0") != plain


@pytest.mark.parametrize(
    ("description", "key"),
    [
        ("tcp:h:80:keepAliveIdle=0", "keepAliveIdle"),
        ("tcp:h:80:keepAliveIdle=40000", "keepAliveIdle"),
        ("tcp:h:80:keepAliveInterval=1.5", "keepAliveInterval"),
        ("tcp:h:80:keepAliveCount=128", "keepAliveCount"),
        ("tcp:h:80:keepAlive=0:keepAliveCount=3", "keepAliveCount"),
        ("tcp:h:80:keepAlive=maybe", "keepAlive"),
        ("tcp:h:80:userTimeout=0", "userTimeout"),
        ("tcp:h:80:userTimeout=-1", "userTimeout"),
        ("tcp:h:80:userTimeout=9999999", "userTimeout"),
        ("tcp:h:80:bindToDevice=", "bindToDevice"),
        ("tcp:h:80:bindToDevice=a/b", "bindToDevice"),
        ("tcp:h:80:bindToDevice=waytoolonginterface", "bindToDevice"),
        ("tcp:h:80:nodelay=2", "nodelay"),
        ("tcp4:h:80:keepAliveIdle=x", "keepAliveIdle"),
        ("tls:h:443:userTimeout=0", "userTimeout"),
    ],
)
def test_bad_client_values_name_the_key(description, key):
    with pytest.raises(DescriptionError) as caught:
        greenpoint.client_from_string(description)
    assert caught.value.parameter == key
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("description", "key"),
    [
        ("tcp:0:keepAliveCount=0", "keepAliveCount"),
        ("tcp6:0:keepAlive=no:keepAliveIdle=5", "keepAliveIdle"),
        ("tcp4:0:userTimeout=abc", "userTimeout"),
    ],
)
def test_bad_server_values_name_the_key(description, key):
    with pytest.raises(DescriptionError) as caught:
        greenpoint.server_from_string(description)
    assert caught.value.parameter == key


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"keep_alive_idle": 0}, "keepAliveIdle"),
        ({"keep_alive_count": True}, "keepAliveCount"),
        ({"keep_alive": 1}, "keepAlive"),
        ({"user_timeout": float("nan")}, "userTimeout"),
        ({"user_timeout": 0.0001}, "userTimeout"),
        ({"bind_to_device": "a b"}, "bindToDevice"),
    ],
)
def test_tcp_options_check_python_values(fields, key):
    with pytest.raises(TCPOptionError) as caught:
        TCPOptions(**fields)
    assert caught.value.key == key


def test_user_timeout_fractions_become_milliseconds():
    calls = TCPOptions(user_timeout=0.0125).setsockopt_calls()
    assert calls == [(TCP, stdsocket.TCP_USER_TIMEOUT, 12, "userTimeout")]


def test_check_explains_every_socket_key():
    from greenpoint.cli._explain import explain, format_explanation

    text = format_explanation(explain(f"tcp:h:80:{KEYS}:bindToDevice=lo:nodelay=0", "client"))
    for word in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"):
        assert word in text
    assert "SO_BINDTODEVICE" in text


# -- through tls: and ssl: ----------------------------------------------------------


def test_tls_descriptions_pass_socket_keys_to_the_tcp_underneath(tmp_path):
    from _tls_helpers import make_certs

    certs = make_certs(tmp_path)
    server = f"ssl:0:interface=127.0.0.1:privateKey={certs.server_pem}:{KEYS}"
    client = f"tls:localhost:{{port}}:trustRoots={certs.ca_file}:{KEYS}:nodelay=0"
    seen = _accepted_options(server, client)
    assert seen["accepted"] == EXPECTED
    assert seen["client"] == EXPECTED
    assert not seen["client_nodelay"]


def test_tls_with_endpoint_wants_socket_keys_in_the_nested_description():
    with pytest.raises(DescriptionError) as caught:
        greenpoint.client_from_string("tls:h:endpoint=[tcp:h:443]:keepAliveIdle=3")
    assert caught.value.parameter == "keepAliveIdle"
    assert "nested endpoint=" in str(caught.value)


def test_tls_server_with_nodelay_0_keeps_nagle_on_after_the_handshake(tmp_path):
    from _tls_helpers import make_certs

    certs = make_certs(tmp_path)
    server = f"ssl:0:interface=127.0.0.1:privateKey={certs.server_pem}:nodelay=0"
    client = f"tls:localhost:{{port}}:trustRoots={certs.ca_file}"
    seen = _accepted_options(server, client)
    assert not seen["accepted_nodelay"]
    assert seen["client_nodelay"]
