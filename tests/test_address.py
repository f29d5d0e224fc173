"""Addresses: printing, comparing, and conversion from what sockets return."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest
from gevent import socket as gsocket

from greenpoint import HostnameAddress, IPv4Address, IPv6Address, PipeAddress, UNIXAddress
from greenpoint._address import (
    as_address,
    from_sockaddr,
    host_address,
    listener_address,
    peer_address,
)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (IPv4Address("127.0.0.1", 80), "127.0.0.1:80"),
        (IPv6Address("::1", 80), "[::1]:80"),
        (IPv6Address("fe80::1%eth0", 80, 0, 2), "[fe80::1%eth0]:80"),
        (IPv6Address("fe80::1", 80, 0, 2), "[fe80::1%2]:80"),  # RFC 4007 zone index
        (UNIXAddress("/p"), "unix:/p"),
        (UNIXAddress("\0name"), "unix:@name"),
        (UNIXAddress(None), "unix:(unnamed)"),
        (HostnameAddress("example.com", 443), "example.com:443"),
        (HostnameAddress("::1", 443), "[::1]:443"),
        (PipeAddress(), "pipe"),
    ],
)
def test_str(address, text):
    assert str(address) == text


def test_addresses_are_frozen_values():
    one = IPv4Address("127.0.0.1", 80)
    assert one == IPv4Address("127.0.0.1", 80)
    assert one != IPv4Address("127.0.0.1", 81)
    assert one != IPv6Address("127.0.0.1", 80)
    assert hash(one) == hash(IPv4Address("127.0.0.1", 80))
    assert len({UNIXAddress("/a"), UNIXAddress("/a"), UNIXAddress(None)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.port = 81  # type: ignore[misc]


def test_addresses_sort():
    assert sorted([IPv4Address("10.0.0.2", 1), IPv4Address("10.0.0.1", 2)]) == [
        IPv4Address("10.0.0.1", 2),
        IPv4Address("10.0.0.2", 1),
    ]
    assert sorted([IPv6Address("::2", 1), IPv6Address("::1", 1, 0, 3)])[0].host == "::1"
    unix = [UNIXAddress("/b"), UNIXAddress(None), UNIXAddress("/a")]
    assert sorted(unix) == [UNIXAddress(None), UNIXAddress("/a"), UNIXAddress("/b")]
    assert UNIXAddress("/a") >= UNIXAddress(None)
    with pytest.raises(TypeError):
        _ = UNIXAddress("/a") < IPv4Address("1.2.3.4", 1)


def test_family_type_and_sockaddr():
    assert IPv4Address("127.0.0.1", 80).family == socket.AF_INET
    assert IPv4Address("127.0.0.1", 80).sockaddr() == ("127.0.0.1", 80)
    assert IPv6Address("::1", 80, 1, 2).family == socket.AF_INET6
    assert IPv6Address("::1", 80, 1, 2).sockaddr() == ("::1", 80, 1, 2)
    assert UNIXAddress("/p").family == socket.AF_UNIX
    assert UNIXAddress("/p").sockaddr() == "/p"
    assert UNIXAddress(None).sockaddr() == ""
    assert (IPv4Address("1.2.3.4", 1).type, UNIXAddress("/p").type) == ("TCP", "UNIX")


@pytest.mark.parametrize(
    ("name", "abstract"), [("/p", False), ("\0name", True), (None, False), ("", False)]
)
def test_unix_abstract(name, abstract):
    assert UNIXAddress(name).abstract is abstract


@pytest.mark.parametrize(
    ("family", "sockaddr", "address"),
    [
        (socket.AF_INET, ("127.0.0.1", 80), IPv4Address("127.0.0.1", 80)),
        (socket.AF_INET6, ("::1", 80, 0, 0), IPv6Address("::1", 80)),
        (socket.AF_INET6, ("fe80::1%lo", 80, 5, 1), IPv6Address("fe80::1%lo", 80, 5, 1)),
        (socket.AF_INET6, ("::1", 80), IPv6Address("::1", 80)),
        # a dual-stack listener sees IPv4 clients as v4-mapped IPv6
        (socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0), IPv4Address("127.0.0.1", 80)),
        (socket.AF_INET6, ("::ffff:1", 80, 0, 0), IPv6Address("::ffff:1", 80)),  # not mapped
        (socket.AF_UNIX, "/run/x.sock", UNIXAddress("/run/x.sock")),
        (socket.AF_UNIX, b"\0abstract", UNIXAddress("\0abstract")),
        (socket.AF_UNIX, b"/tmp/\xff", UNIXAddress("/tmp/\udcff")),
        (socket.AF_UNIX, "", UNIXAddress(None)),
        (socket.AF_UNIX, b"", UNIXAddress(None)),
    ],
)
def test_from_sockaddr(family, sockaddr, address):
    assert from_sockaddr(family, sockaddr) == address


def test_from_sockaddr_refuses_an_ip_pair_as_a_unix_address():
    with pytest.raises(ValueError, match="not a UNIX socket address"):
        from_sockaddr(socket.AF_UNIX, ("192.0.2.1", 80))


def test_from_sockaddr_refuses_other_families():
    with pytest.raises(ValueError, match="unsupported address family"):
        from_sockaddr(socket.AF_PACKET if hasattr(socket, "AF_PACKET") else 9999, ("eth0", 0))


@pytest.mark.timeout(10)
def test_peer_and_host_of_a_loopback_tcp_connection():
    with gsocket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with gsocket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert peer_address(client) == IPv4Address("127.0.0.1", port)
                assert host_address(accepted) == IPv4Address("127.0.0.1", port)
                assert peer_address(accepted) == host_address(client)


@pytest.mark.timeout(10)
def test_peer_and_host_of_a_unix_connection(tmp_path):
    path = str(tmp_path / "s.sock")
    with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            accepted, _ = listener.accept()
            with accepted:
                assert peer_address(client) == UNIXAddress(path)
                assert host_address(client) == UNIXAddress(None)
                assert host_address(accepted) == UNIXAddress(path)


def test_stream_with_its_own_addresses():
    class Transport:
        def getPeer(self):  # noqa: N802 - Twisted's name
            return IPv4Address("192.0.2.1", 1)

        def getHost(self):  # noqa: N802
            return IPv4Address("192.0.2.2", 2)

    assert peer_address(Transport()) == IPv4Address("192.0.2.1", 1)
    assert host_address(Transport()) == IPv4Address("192.0.2.2", 2)


# -- a raw sockaddr as an address, with its fallbacks -----------------------------------


@pytest.mark.parametrize(
    ("family", "raw", "expected"),
    [
        (socket.AF_INET, ("192.0.2.1", 80), IPv4Address("192.0.2.1", 80)),
        (socket.AF_INET6, ("::1", 80, 0, 0), IPv6Address("::1", 80)),
        (socket.AF_UNIX, b"/run/s.sock", UNIXAddress("/run/s.sock")),
        (socket.AF_UNIX, "", UNIXAddress(None)),
        # Already addresses (stdio, a PROXY header's client): passed through.
        (socket.AF_INET, PipeAddress("stdio"), PipeAddress("stdio")),
        (None, IPv4Address("192.0.2.1", 80), IPv4Address("192.0.2.1", 80)),
        # What cannot be read is kept as given: it is still the best description.
        (9999, ("eth0", 0), ("eth0", 0)),
        (socket.AF_INET, ("192.0.2.1",), ("192.0.2.1",)),
        (None, ("192.0.2.1", 80), ("192.0.2.1", 80)),  # no family, no stream to ask
        (socket.AF_INET, None, None),
        (socket.AF_UNIX, ("192.0.2.1", 80), ("192.0.2.1", 80)),  # not a path
    ],
)
def test_as_address(family, raw, expected):
    assert as_address(family, raw) == expected


def test_as_address_takes_the_family_of_the_stream_when_not_given():
    with gsocket.socket(socket.AF_INET6, socket.SOCK_STREAM) as stream:
        assert as_address(None, ("::ffff:192.0.2.1", 80, 0, 0), stream) == IPv4Address(
            "192.0.2.1", 80
        )


@pytest.mark.timeout(10)
def test_as_address_adds_the_credentials_of_an_accepted_unix_peer(tmp_path):
    path = str(tmp_path / "s.sock")
    with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        with gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            accepted, raw = listener.accept()
            with accepted:
                address = as_address(listener.family, raw, accepted)
                assert address == UNIXAddress(None)
                assert (address.pid, address.uid) == (os.getpid(), os.getuid())
                assert as_address(listener.family, raw).pid is None  # no stream: no lookup


@pytest.mark.timeout(10)
def test_listener_address_of_a_socket_and_of_a_listener_that_says_itself(tmp_path):
    with gsocket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        assert listener_address(listener) == IPv4Address("127.0.0.1", listener.getsockname()[1])

    class Stdio:
        def get_host(self):
            return PipeAddress("stdio")

    assert listener_address(Stdio()) == PipeAddress("stdio")
