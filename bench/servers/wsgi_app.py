"""The WSGI application every WSGI contender serves: ``/`` a hello world, ``/64k`` 64 KiB."""

from __future__ import annotations

HELLO = b"Hello, World!\n"
BIG = b"x" * (64 * 1024)


def application(environ, start_response):
    body = BIG if environ["PATH_INFO"] == "/64k" else HELLO
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
