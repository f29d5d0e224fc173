"""A WSGI application on a UNIX socket, reached over TCP through ``greenpoint relay``.

The app listens only on a UNIX socket (as behind a front proxy); ``greenpoint relay``
bridges a loopback TCP port to it and logs one line per connection. Then an ordinary
HTTP client asks over TCP.

    python examples/wsgi_behind_relay.py
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request

import gevent
from hello_app import application

from greenpoint import wsgi


def start_relay(server, client):
    """Run ``greenpoint relay`` in a child process; return it and the port it listens on."""
    relay = subprocess.Popen(
        [sys.executable, "-m", "greenpoint", "relay", server, client],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = relay.stderr.readline()  # "relaying 127.0.0.1:PORT -> unix:..."
    match = re.search(r":(\d+) ->", line)
    if not match:
        relay.kill()
        raise RuntimeError(f"relay did not start: {line}{relay.stderr.read()}")
    return relay, int(match.group(1))


def main():
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "app.sock")
        with wsgi.serve(f"unix:{path}", application, log=None):
            relay, port = start_relay("tcp:0:interface=127.0.0.1", f"unix:{path}")
            try:
                # The blocking urllib call runs in a thread so that this process's
                # gevent loop keeps serving the app meanwhile.
                url = f"http://127.0.0.1:{port}/"
                fetch = gevent.get_hub().threadpool.spawn(urllib.request.urlopen, url, timeout=10)
                print("GET", url, "->", fetch.get().read().decode().strip())
            finally:
                relay.send_signal(signal.SIGTERM)
                _, log = relay.communicate(timeout=10)
            print("relay log:", log.strip().replace("\n", "\n           "))


if __name__ == "__main__":
    main()
