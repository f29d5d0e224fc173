"""greenpoint.wsgi.serve: pywsgi's handler on TCP, UNIX, TLS and PROXY-protocol
endpoints, in this process, and graceful stops."""

from __future__ import annotations

import http.client
import io
import socket
import time

import gevent
import pytest
from _tls_helpers import write_localhost_pems
from _wait_helpers import wait_until
from gevent.event import Event

import greenpoint
from greenpoint import wsgi

pytestmark = pytest.mark.timeout(20)


class EndpointHTTPConnection(http.client.HTTPConnection):
    """The standard library's HTTP client, connected through any client description."""

    def __init__(self, description: str, host: str = "localhost") -> None:
        super().__init__(host)
        self.description = description

    def connect(self) -> None:
        self.sock = greenpoint.client_from_string(self.description).open(timeout=5)


def get(connection: http.client.HTTPConnection, path: str = "/", **kwargs):
    connection.request(kwargs.pop("method", "GET"), path, **kwargs)
    response = connection.getresponse()
    return response, response.read()


def environ_app(environ, start_response):
    """Answers with the parts of the environment the tests look at."""
    body = environ["wsgi.input"].read()
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme")
    lines = [f"{key}={environ.get(key)}" for key in keys]
    lines.append(f"body={len(body)}")
    lines.append(f"peer={environ['greenpoint.peer']}")
    data = "\n".join(lines).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [data]


def parse(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines())


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """(ca.pem, server.pem) for localhost and 127.0.0.1, from a throw-away CA."""
    return write_localhost_pems(tmp_path_factory.mktemp("certs"))


def test_tcp_environment_and_keep_alive():
    with wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, log=None) as port:
        server_port = port.get_host().port
        connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{server_port}")
        try:
            response, body = get(connection, method="POST", body=b"x" * 5000)
            first_socket = connection.sock
            _, second = get(connection)  # the same connection: keep-alive
            assert connection.sock is first_socket
            client_port = first_socket.getsockname()[1]
        finally:
            connection.close()
    assert response.status == 200
    assert parse(body) == {
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(client_port),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(server_port),
        "wsgi.url_scheme": "http",
        "body": "5000",
        "peer": f"127.0.0.1:{client_port}",
    }
    assert parse(second)["body"] == "0"


def test_unix_socket(tmp_path):
    path = tmp_path / "app.sock"
    with wsgi.serve(greenpoint.server_from_string(f"unix:{path}"), environ_app, log=None):
        connection = EndpointHTTPConnection(f"unix:{path}")
        try:
            response, body = get(connection)
        finally:
            connection.close()
    assert response.status == 200
    values = parse(body)
    assert values["REMOTE_ADDR"] == "None"  # no IP peer: not set, as gevent does
    assert values["SERVER_NAME"] == ""
    assert values["wsgi.url_scheme"] == "http"
    assert values["peer"] == "unix:(unnamed)"


def test_tls_with_pyopenssl_streams(certificates):
    ca_pem, server_pem = certificates
    chunks = [b"%05d\n" % i for i in range(2000)]  # chunked: one sendall per chunk

    def streaming_app(environ, start_response):
        start_response("200 OK", [("X-Scheme", environ["wsgi.url_scheme"])])
        body = environ["wsgi.input"].read()
        yield b"got %d\n" % len(body)
        yield from chunks

    description = f"ssl:0:interface=127.0.0.1:privateKey={server_pem}"
    with wsgi.serve(description, streaming_app, log=None) as port:
        connection = EndpointHTTPConnection(
            f"tls:localhost:{port.get_host().port}:trustRoots={ca_pem}"
        )
        try:
            response, body = get(connection, method="PUT", body=b"y" * 200_000)
            again, _ = get(connection)
        finally:
            connection.close()
    assert response.status == 200
    assert response.getheader("X-Scheme") == "https"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert body == b"got 200000\n" + b"".join(chunks)
    assert again.status == 200


def test_haproxy_gives_the_real_client_address():
    port = wsgi.serve("haproxy:tcp:0:interface=127.0.0.1", environ_app, log=None)
    client = greenpoint.client_from_string(f"tcp:127.0.0.1:{port.get_host().port}")
    with port, client.open(timeout=5) as stream:
        stream.sendall(
            b"PROXY TCP4 203.0.113.7 192.0.2.10 41000 8080\r\n"
            b"GET / HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"
        )
        raw = b""
        while data := stream.recv(65536):
            raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    values = parse(body)
    assert values["REMOTE_ADDR"] == "203.0.113.7"
    assert values["REMOTE_PORT"] == "41000"
    assert values["SERVER_NAME"] == "192.0.2.10"  # where the client connected to
    assert values["SERVER_PORT"] == "8080"


def test_application_error_is_a_500_and_logged():
    errors = io.StringIO()

    def broken(environ, start_response):
        raise RuntimeError("the application broke")

    with wsgi.serve("tcp:0:interface=127.0.0.1", broken, log=None, error_log=errors) as port:
        connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
        try:
            response, _ = get(connection, "/here")
        finally:
            connection.close()
    assert response.status == 500
    assert "error in the application (GET /here)" in errors.getvalue()
    assert "RuntimeError: the application broke" in errors.getvalue()


def test_access_log_goes_to_the_given_file():
    log = io.StringIO()
    with wsgi.serve("tcp:0:interface=127.0.0.1", environ_app, log=log) as port:
        connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
        try:
            get(connection, "/logged")
        finally:
            connection.close()
    assert log.getvalue().startswith("127.0.0.1 - - [")
    assert '"GET /logged HTTP/1.1" 200' in log.getvalue()


# -- stopping ----------------------------------------------------------------------


def slow_app(environ, start_response):
    gevent.sleep(float(environ.get("QUERY_STRING") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


def entering(app):
    """``app``, and an Event set when a request reaches it."""
    entered = Event()

    def noting(environ, start_response):
        entered.set()
        return app(environ, start_response)

    return noting, entered


def test_stop_finishes_a_running_request_and_closes_its_connection():
    app, entered = entering(slow_app)
    port = wsgi.serve("tcp:0:interface=127.0.0.1", app, log=None)
    address = f"tcp:127.0.0.1:{port.get_host().port}"
    connection = EndpointHTTPConnection(address)
    try:
        request = gevent.spawn(get, connection, "/?0.4")
        assert entered.wait(5)  # the request is in the application now
        stopping = gevent.spawn(port.stop_listening, 5)
        wait_until(lambda: port.closing)  # set as the listener is closed
        with pytest.raises(ConnectionRefusedError):  # no new connections meanwhile
            greenpoint.client_from_string(address).open(timeout=5)
        response, body = request.get(timeout=5)
        stopping.get(timeout=5)
    finally:
        connection.close()
    assert (response.status, body) == (200, b"done")
    assert response.getheader("Connection") == "close"


def test_stop_closes_idle_keep_alive_connections_at_once():
    port = wsgi.serve("tcp:0:interface=127.0.0.1", slow_app, log=None)
    connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
    try:
        response, _ = get(connection)
        assert response.getheader("Connection") is None  # kept alive
        started = time.monotonic()
        port.stop_listening(timeout=10)
        assert time.monotonic() - started < 5  # not the 10 s allowed
        assert connection.sock.recv(1) == b""  # the server closed it
    finally:
        connection.close()


def test_stop_gives_a_new_connection_a_moment_for_its_first_request():
    port = wsgi.serve("tcp:0:interface=127.0.0.1", slow_app, log=None)
    address = f"tcp:127.0.0.1:{port.get_host().port}"
    prompt = EndpointHTTPConnection(address)
    silent = greenpoint.client_from_string(address).open(timeout=5)
    try:
        prompt.connect()
        # Both accepted, neither has sent anything.
        wait_until(lambda: port.handler_count == 2, what="both connections to be accepted")
        started = time.monotonic()
        stopping = gevent.spawn(port.stop_listening, 10)
        gevent.sleep(0.2)  # the behaviour: the request comes later, within the grace
        response, body = get(prompt)  # sent within the grace: served
        stopping.get(timeout=5)
        took = time.monotonic() - started
        assert silent.recv(1) == b""  # the silent one was closed after the grace
    finally:
        prompt.close()
        silent.close()
    assert (response.status, body) == (200, b"done")
    assert wsgi.NEW_CONNECTION_GRACE - 0.1 < took < wsgi.NEW_CONNECTION_GRACE + 1


def test_stop_timeout_cuts_off_a_request_that_runs_too_long():
    app, entered = entering(slow_app)
    port = wsgi.serve("tcp:0:interface=127.0.0.1", app, log=None)
    connection = EndpointHTTPConnection(f"tcp:127.0.0.1:{port.get_host().port}")
    try:
        request = gevent.spawn(get, connection, "/?30")
        assert entered.wait(5)
        started = time.monotonic()
        port.stop_listening(timeout=0.3)
        assert time.monotonic() - started < 2
        # pywsgi answers a request killed in the application with a 500.
        response, _ = request.get(timeout=5)
        assert response.status == 500
    finally:
        connection.close()


# -- loading -----------------------------------------------------------------------


def test_load_application():
    import json

    assert wsgi.load_application("json:dumps") is json.dumps
    assert wsgi.load_application("http.client:HTTPConnection.request") is (
        http.client.HTTPConnection.request
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_here:app", "cannot import 'no_such_module_here'"),
        ("json:nothing", "'json' has no attribute 'nothing'"),
        ("math:pi", "'math:pi' is not callable"),
        ("math", "'math' has no attribute 'application'"),
        (":app", "expected module:application"),
    ],
)
def test_load_application_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        wsgi.load_application(spec)


def test_serve_refuses_what_is_not_an_application():
    with pytest.raises(TypeError, match="must be callable"):
        wsgi.serve("tcp:0:interface=127.0.0.1", "not an app")


def test_serve_reports_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(greenpoint.ListenError, match="Address already in use"):
            wsgi.serve(f"tcp:{port}:interface=127.0.0.1", environ_app)
