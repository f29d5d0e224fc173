"""SO_PEERCRED: accepted UNIX connections' addresses say who connected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _wait_helpers import wait_until
from gevent.event import AsyncResult

from greenpoint import Factory, Protocol, UNIXAddress, client_from_string, server_from_string

pytestmark = pytest.mark.timeout(20)


def test_credentials_take_no_part_in_equality_order_or_hash():
    plain = UNIXAddress("/run/x.sock")
    with_creds = UNIXAddress("/run/x.sock", pid=10, uid=1000, gid=1000)
    assert plain == with_creds and hash(plain) == hash(with_creds)
    assert not plain < with_creds and not with_creds < plain
    assert str(with_creds) == "unix:/run/x.sock"
    assert (plain.pid, plain.uid, plain.gid) == (None, None, None)


def test_handler_address_carries_this_process_credentials(tmp_path):
    path = str(tmp_path / "control.sock")
    seen = AsyncResult()

    def handler(stream, address):
        with stream:
            seen.set(address)

    port = server_from_string(f"unix:{path}").serve(handler)
    with port, client_from_string(port.client_description()).open(timeout=5):
        address = seen.get(timeout=5)
    assert (address.pid, address.uid, address.gid) == (os.getpid(), os.getuid(), os.getgid())


def test_credentials_name_the_connecting_child_process(tmp_path):
    path = str(tmp_path / "control.sock")
    seen = AsyncResult()

    def handler(stream, address):
        with stream:
            seen.set(address)
            stream.sendall(b"ok")

    code = (
        "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.recv(2)\n"
    )
    with server_from_string(f"unix:{path}").serve(handler):
        child = subprocess.Popen([sys.executable, "-c", code, path])
        try:
            address = seen.get(timeout=15)
        finally:
            # Without blocking the hub that serves it.
            wait_until(lambda: child.poll() is not None, timeout=15, what="the child to exit")
    assert address.pid == child.pid
    assert address.uid == os.getuid()


def test_protocol_peer_has_credentials_on_abstract_socket():
    peers = AsyncResult()

    class Record(Protocol):
        def connectionMade(self):
            peers.set(self.transport.getPeer())
            self.transport.loseConnection()

    name = f"gp-cred-{os.getpid()}"
    port = server_from_string(f"unix:@{name}").listen(Factory.forProtocol(Record))
    with port, client_from_string(port.client_description()).open(timeout=5) as stream:
        peer = peers.get(timeout=5)
        assert stream.recv(10) == b""
    assert peer.uid == os.getuid() and peer.pid == os.getpid()
