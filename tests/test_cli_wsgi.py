"""``greenpoint wsgi`` as a child process: curl and http.client over TCP, TLS and UNIX,
``--workers 2``, socket activation, and SIGTERM finishing a request in flight."""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import socket
import ssl

import gevent
import pytest
from _cli_helpers import EXAMPLES, STARTUP_TIMEOUT, Child, child_env, greenpoint_command, run
from _tls_helpers import write_localhost_pems

import greenpoint

pytestmark = pytest.mark.timeout(STARTUP_TIMEOUT + 60)  # bounds a hang

CURL = shutil.which("curl")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
APP = "hello_app:application"  # examples/hello_app.py; the children run in examples/

# hello_app, saying on stderr when a /slow request has reached it: what a graceful
# stop test waits for before SIGTERM (a guessed sleep can be outrun by a loaded machine).
SIGNALLING_APP = "signalling_app:application"
SIGNALLING_APP_SOURCE = """
import sys

from hello_app import application as hello


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        print("app: /slow began", file=sys.stderr, flush=True)
    return hello(environ, start_response)
"""


@pytest.fixture
def signalling_env(tmp_path):
    """The environment for a child that serves SIGNALLING_APP (from tmp_path)."""
    (tmp_path / "signalling_app.py").write_text(SIGNALLING_APP_SOURCE)
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(tmp_path)])
    return env


class EndpointHTTPConnection(http.client.HTTPConnection):
    """http.client through a greenpoint client description (cooperative sockets)."""

    def __init__(self, description: str) -> None:
        super().__init__("localhost")
        self.description = description

    def connect(self) -> None:
        self.sock = greenpoint.client_from_string(self.description).open(timeout=5)


def fetch(connection: http.client.HTTPConnection, path: str = "/") -> tuple[int, str, str | None]:
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(), response.getheader("Connection")
    finally:
        connection.close()


def curl(*args: str) -> str:
    result = run([CURL, "--silent", "--show-error", "--max-time", "10", *args])
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """(ca.pem, server.pem) for localhost and 127.0.0.1, from a throw-away CA."""
    return write_localhost_pems(tmp_path_factory.mktemp("certs"))


def wsgi_child(*args: str, env: dict[str, str] | None = None) -> Child:
    return Child(greenpoint_command("wsgi", *args), cwd=EXAMPLES, env=env or child_env())


def served_ports(child: Child, count: int, timeout: float = STARTUP_TIMEOUT) -> list[str]:
    """The addresses of the first ``count`` "serving APP on ADDRESS" lines (which
    come once the workers are up)."""
    child.wait_for(r"serving .* on ", count=count, timeout=timeout)
    return [m.group(1) for line in child.lines if (m := re.search(r"serving .* on (\S+)$", line))]


def slow_request_then_sigterm(child: Child, address: str) -> None:
    """A request is running when SIGTERM arrives: it finishes, new ones are refused.

    ``child`` serves SIGNALLING_APP."""
    slow = gevent.spawn(fetch, EndpointHTTPConnection(address), "/slow?seconds=0.8")
    child.wait_for("app: /slow began")  # the request is in the application now
    child.process.terminate()
    child.wait_for("SIGTERM: stopping")
    with gevent.Timeout(3):
        while True:  # the listener closes right after that line
            try:
                greenpoint.client_from_string(address).open(timeout=1).close()
            except ConnectionRefusedError:
                break
            except greenpoint.ConnectError as exc:
                # With --workers, a connection queued on the shared socket while the
                # workers drain is reset when the last one closes it (docs/cli.md).
                if exc.errno != errno.ECONNRESET:
                    raise
            gevent.sleep(0.02)
    assert slow.get(timeout=5) == (200, "slept 0.8 s\n", "close")


@pytest.mark.skipif(CURL is None, reason="curl is not installed (Debian package: curl)")
def test_wsgi_over_tcp_tls_and_unix(tmp_path, certificates, signalling_env):
    ca_pem, server_pem = certificates
    path = tmp_path / "app.sock"
    with wsgi_child(
        "tcp:0:interface=127.0.0.1",
        SIGNALLING_APP,
        "--listen",
        f"ssl:0:interface=127.0.0.1:privateKey={server_pem}",
        "--listen",
        f"unix:{path}",
        env=signalling_env,
    ) as child:
        tcp, tls, unix = served_ports(child, 3)
        tcp_port, tls_port = tcp.rsplit(":", 1)[1], tls.rsplit(":", 1)[1]
        assert unix == f"unix:{path}"

        assert curl(f"http://127.0.0.1:{tcp_port}/") == "hello 127.0.0.1 over http\n"
        assert (
            curl(
                "--cacert",
                str(ca_pem),
                "--resolve",
                f"localhost:{tls_port}:127.0.0.1",
                f"https://localhost:{tls_port}/",
            )
            == "hello 127.0.0.1 over https\n"
        )
        assert curl("--unix-socket", str(path), "http://localhost/") == (
            "hello a UNIX socket client over http\n"
        )

        plain = http.client.HTTPConnection("127.0.0.1", int(tcp_port), timeout=10)
        assert fetch(plain)[:2] == (200, "hello 127.0.0.1 over http\n")
        context = ssl.create_default_context(cafile=str(ca_pem))
        secure = http.client.HTTPSConnection(
            "localhost", int(tls_port), context=context, timeout=10
        )
        assert fetch(secure)[:2] == (200, "hello 127.0.0.1 over https\n")
        assert fetch(EndpointHTTPConnection(f"unix:{path}"))[:2] == (
            200,
            "hello a UNIX socket client over http\n",
        )

        slow_request_then_sigterm(child, f"tcp:127.0.0.1:{tcp_port}")
        status, _, _ = child.finish()
    assert status == 0
    assert not path.exists()  # the UNIX socket file is removed on the way out
    access = [line for line in child.lines if '"GET / HTTP/1.1" 200' in line]
    assert len(access) == 6  # one access-log line per request
    assert sum(line.startswith("127.0.0.1 - - [") for line in access) == 4


def test_two_workers_both_serve_and_stop_gracefully(signalling_env):
    with wsgi_child(
        "tcp:0:interface=127.0.0.1",
        SIGNALLING_APP,
        "--workers",
        "2",
        "--no-access-log",
        env=signalling_env,
    ) as child:
        (address,) = served_ports(child, 1)
        port = int(address.rsplit(":", 1)[1])
        workers = {int(pid) for pid in child.wait_for(r"started 2 workers: (\d+) (\d+)").groups()}
        seen = set()
        for _ in range(200):  # the kernel picks a worker per connection
            status, body, _ = fetch(EndpointHTTPConnection(f"tcp:127.0.0.1:{port}"), "/pid")
            assert status == 200
            seen.add(int(body))
            if seen == workers:
                break
        assert seen == workers

        slow_request_then_sigterm(child, f"tcp:127.0.0.1:{port}")
        status, _, _ = child.finish()
    assert status == 0
    assert "SIGTERM: stopping 2 workers" in child.lines


@pytest.mark.skipif(
    SOCKET_ACTIVATE is None or CURL is None,
    reason="systemd-socket-activate and curl are needed (Debian packages: systemd, curl)",
)
def test_wsgi_under_socket_activation():
    with socket.socket() as probe:  # a free port for systemd-socket-activate to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        SOCKET_ACTIVATE,
        "-l",
        f"127.0.0.1:{port}",
        # It passes only the environment it is told to.
        f"--setenv=PYTHONPATH={child_env()['PYTHONPATH']}",
        *greenpoint_command("wsgi", "systemd:domain=INET:index=0", APP),
    ]
    with Child(command, cwd=EXAMPLES, env=child_env()) as child:
        child.wait_for("Listening on")
        # The first connection makes systemd-socket-activate start the server, which
        # then accepts it from the socket it was handed.
        assert curl(f"http://127.0.0.1:{port}/") == "hello 127.0.0.1 over http\n"
        status, _, _ = child.stop()
    assert status == 0


def test_an_application_that_cannot_be_loaded_is_exit_1():
    result = run(greenpoint_command("wsgi", "tcp:0:interface=127.0.0.1", "no_such_app:application"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "greenpoint wsgi: cannot import 'no_such_app': No module named 'no_such_app'\n"
    )
