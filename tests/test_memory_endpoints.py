"""memory:NAME endpoints: in-process connections, descriptions, TLS over them, faults."""

from __future__ import annotations

import time

import pytest
from _tls_helpers import make_certs
from _wait_helpers import wait_until
from twisted.protocols import basic

import greenpoint
from greenpoint import client_from_string, server_from_string, tls
from greenpoint.endpoints.memory import MemoryClientEndpoint, MemoryServerEndpoint
from greenpoint.errors import (
    ConnectionLost,
    ConnectRefusedError,
    ConnectTimeoutError,
    DescriptionError,
    ListenError,
)
from greenpoint.testing import memory_faults


def upper_echo(stream, address):
    while True:
        try:
            data = stream.recv(65536)
        except ConnectionResetError:
            return
        if not data:
            return
        stream.sendall(data.upper())


def read_all(stream, limit=5.0):
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        chunk = stream.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no end of stream after {limit} s; got {data!r}")


def test_open_reaches_a_served_name():
    with server_from_string("memory:echo").serve(upper_echo) as port:
        assert str(port.get_host()) == "memory:echo"
        with client_from_string("memory:echo").open() as stream:
            stream.sendall(b"hello")
            assert stream.recv(100) == b"HELLO"
            assert str(stream.getPeer()) == "memory:echo"
            assert str(stream.getHost()).startswith("memory:echo#")
            stream.shutdown(2)
            assert read_all(stream) == b""


def test_protocols_run_over_memory_with_connect_and_listen():
    class Upper(basic.LineReceiver):
        def lineReceived(self, line):
            self.sendLine(line.upper())

    class Ask(basic.LineReceiver):
        def connectionMade(self):
            self.replies = []
            self.sendLine(b"one")
            self.sendLine(b"two")

        def lineReceived(self, line):
            self.replies.append(line)
            if len(self.replies) == 2:
                self.transport.loseConnection()

    with server_from_string("memory:lines").listen(greenpoint.Factory.forProtocol(Upper)):
        client = client_from_string("memory:lines").connect(greenpoint.Factory.forProtocol(Ask))
        assert client.transport.wait_closed(5)
    assert client.replies == [b"ONE", b"TWO"]


def test_tls_over_memory(tmp_path):
    certs = make_certs(tmp_path)
    server = greenpoint.wrap_server_tls(
        tls.options_for_server_tls(certs.server_pem), MemoryServerEndpoint("secure")
    )
    with server.serve(upper_echo):
        client = client_from_string(
            f"tls:localhost:443:endpoint=[memory:secure]:trustRoots={certs.ca_file}"
        )
        with client.open(10) as stream:
            assert stream.peer_certificate is not None
            stream.sendall(b"over tls")
            assert stream.recv(100) == b"OVER TLS"


def test_a_bound_name_is_refused_a_second_time_and_free_after_stop():
    endpoint = server_from_string("memory:once")
    port = endpoint.serve(upper_echo)
    with pytest.raises(ListenError, match="in use"):
        endpoint.bind()
    port.stop_listening(timeout=0)
    with pytest.raises(ConnectRefusedError, match="nothing listens"):
        client_from_string("memory:once").open()
    endpoint.bind().close()  # the name is free again


@pytest.mark.parametrize(
    "text",
    [
        "memory:db",
        "memory:db:refuse=1",
        "memory:db:timeout=0.5:blackhole=1",
        "memory:db:resetAfter=100",
        "memory:db:delay=0.25:chunk=3",
        "memory:[a:b]",
    ],
)
def test_client_description_round_trips(text):
    endpoint = client_from_string(text)
    assert isinstance(endpoint, MemoryClientEndpoint)
    assert client_from_string(str(endpoint)) == endpoint
    assert str(endpoint) == text


def test_server_description_round_trips():
    endpoint = server_from_string("memory:a\\:b")
    assert endpoint == MemoryServerEndpoint("a:b")
    assert server_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("text", "parameter"),
    [
        ("memory:", None),
        ("memory:db:resetAfter=-1", "resetAfter"),
        ("memory:db:chunk=0", "chunk"),
        ("memory:db:delay=soon", "delay"),
        ("memory:db:refuse=maybe", "refuse"),
        ("memory:db:rset=1", "rset"),
    ],
)
def test_bad_client_descriptions_name_the_parameter(text, parameter):
    with pytest.raises(DescriptionError) as info:
        client_from_string(text)
    assert info.value.prefix == "memory"
    if parameter is not None:
        assert info.value.parameter == parameter


# -- faults -----------------------------------------------------------------------


def test_refuse_fault():
    with (
        server_from_string("memory:svc").serve(upper_echo),
        pytest.raises(ConnectRefusedError, match="refuse fault"),
    ):
        client_from_string("memory:svc:refuse=1").open()


def test_blackhole_fault_times_out():
    with server_from_string("memory:svc").serve(upper_echo):
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError, match="blackhole"):
            client_from_string("memory:svc:blackhole=1:timeout=0.2").open()
        assert 0.15 <= time.monotonic() - started < 3


def test_reset_after_n_bytes_resets_both_ends():
    got = []

    def reader(stream, address):
        data = b""
        try:
            while True:
                chunk = stream.recv(100)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError as exc:
            got.append((data, exc))

    with server_from_string("memory:svc").serve(reader):
        with client_from_string("memory:svc:resetAfter=5").open() as stream:
            stream.sendall(b"abc")
            with pytest.raises(ConnectionResetError):
                stream.sendall(b"defgh")
            with pytest.raises(ConnectionResetError):
                stream.recv(10)
        wait_until(lambda: got, what="the server side's reset")
    assert got[0][0] == b"abcde"


def test_reset_reaches_a_protocol_as_connection_lost():
    reasons = []

    class Note(greenpoint.Protocol):
        def connectionLost(self, reason):
            reasons.append(reason)

    factory = greenpoint.Factory.forProtocol(Note)
    with server_from_string("memory:svc").listen(factory):
        with (
            client_from_string("memory:svc:resetAfter=2").open() as stream,
            pytest.raises(ConnectionResetError),
        ):
            stream.sendall(b"toolong")
        wait_until(lambda: reasons, what="connectionLost")
    assert isinstance(reasons[0], ConnectionLost)
    assert isinstance(reasons[0].__cause__, ConnectionResetError)


def test_delay_fault_slows_every_write():
    with (
        server_from_string("memory:svc").serve(upper_echo),
        client_from_string("memory:svc:delay=0.2").open() as stream,
    ):
        started = time.monotonic()
        stream.sendall(b"x")
        assert stream.recv(10) == b"X"
        assert 0.35 <= time.monotonic() - started < 4  # two writes: there and back


def test_chunk_fault_splits_reads_and_twisted_framing_copes():
    class Upper(basic.LineReceiver):
        def lineReceived(self, line):
            self.sendLine(line.upper())

    factory = greenpoint.Factory.forProtocol(Upper)
    with (
        server_from_string("memory:svc").listen(factory),
        client_from_string("memory:svc:chunk=3").open() as stream,
    ):
        stream.sendall(b"first line\r\nsecond\r\n")
        reads = []
        while b"".join(reads) != b"FIRST LINE\r\nSECOND\r\n":
            reads.append(stream.recv(100))
        assert max(len(read) for read in reads) <= 3


def test_faults_injected_from_the_test_apply_to_every_client_of_the_name():
    configured = client_from_string("memory:db")  # what the code under test reads
    with server_from_string("memory:db").serve(upper_echo):
        with memory_faults("db", refuse=True):
            with pytest.raises(ConnectRefusedError, match="refuse fault"):
                configured.open()
            with memory_faults("db", blackhole=True), pytest.raises(ConnectTimeoutError):
                configured.open(timeout=0.1)
            with pytest.raises(ConnectRefusedError):  # the outer block again
                configured.open()
        with memory_faults("db", chunk=2), configured.open() as stream:
            stream.sendall(b"abcdef")
            assert stream.recv(100) == b"AB"
        with configured.open() as stream:  # no faults once the blocks ended
            stream.sendall(b"abcdef")
            assert stream.recv(100) == b"ABCDEF"
