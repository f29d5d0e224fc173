"""Client CPU of a full TLS handshake against a resumed one (standalone).

    python bench/tls_resumption.py [--count 300] [--version TLSv1.3]

A greenpoint ``ssl:`` echo server runs in a child process (so its CPU is not
counted); the client opens ``tls:`` connections one after another. "full" builds a
new endpoint (new options, so no session to offer) for every connection, its context
loaded before the clock starts; "resumed" reuses one endpoint, which offers the
session of its previous connection. Each connection does one echo round trip (a TLS
1.3 client receives its session ticket with the first data) and is closed. The
client's CPU (``time.process_time``, this process) and wall time of ``open()`` are
recorded per connection; the medians are printed with their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import trustme  # noqa: E402

import greenpoint  # noqa: E402

SERVER = """
import sys, gevent, greenpoint
def echo(stream, address):
    while data := stream.recv(65536):
        stream.sendall(data)
    stream.close()
port = greenpoint.server_from_string(sys.argv[1]).serve(echo)
print(port.get_host().port, flush=True)
while True:  # until the parent terminates us
    gevent.sleep(3600)
"""


def _one(endpoint) -> tuple[float, float, bool]:
    cpu, wall = time.process_time(), time.perf_counter()
    stream = endpoint.open(timeout=10)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    with stream:
        stream.sendall(b"ping")
        stream.recv(4)
        return cpu, wall, stream.session_reused


def _fresh(description: str):
    endpoint = greenpoint.client_from_string(description)
    endpoint.tls_options.get_context()  # files read before the clock starts
    return endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--version", default="TLSv1.3", choices=["TLSv1.2", "TLSv1.3"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        ca = trustme.CA()
        ca_file, pem = os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem")
        ca.cert_pem.write_to_path(ca_file)
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, f"ssl:0:interface=127.0.0.1:privateKey={pem}"],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            port = int(server.stdout.readline())
            description = f"tls:127.0.0.1:{port}:trustRoots={ca_file}:maximumVersion={args.version}"
            _one(_fresh(description))  # warm up imports and the server
            full = [_one(_fresh(description)) for _ in range(args.count)]
            endpoint = _fresh(description)
            _one(endpoint)
            resumed = [_one(endpoint) for _ in range(args.count)]
        finally:
            server.terminate()
            server.wait(10)
            server.stdout.close()
    if any(reused for *_, reused in full) or not all(reused for *_, reused in resumed):
        sys.exit("unexpected: a full handshake resumed, or a resumed one did not")
    rows = {}
    for name, samples in (("full", full), ("resumed", resumed)):
        cpu = statistics.median(sample[0] for sample in samples) * 1e6
        wall = statistics.median(sample[1] for sample in samples) * 1e6
        rows[name] = (cpu, wall)
        print(f"{args.version} {name:<8} client CPU {cpu:8.0f} us   wall {wall:8.0f} us")
    print(
        f"{args.version} resumed/full: CPU {rows['resumed'][0] / rows['full'][0]:.2f}, "
        f"wall {rows['resumed'][1] / rows['full'][1]:.2f} (medians of {args.count})"
    )


if __name__ == "__main__":
    main()
