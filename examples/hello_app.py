"""A small WSGI application, for ``greenpoint wsgi`` and the examples.

    cd examples && python -m greenpoint wsgi tcp:8080:interface=127.0.0.1 hello_app:application

``/`` says hello and who asked; ``/slow?seconds=2`` takes its time (to watch a
graceful stop finish it); ``/pid`` names the worker process that answered.
"""

import os
from urllib.parse import parse_qs

import gevent


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
        gevent.sleep(seconds)  # cooperative: other requests go on meanwhile
        body = f"slept {seconds:g} s\n"
    elif path == "/pid":
        body = f"{os.getpid()}\n"
    else:
        client = environ.get("REMOTE_ADDR") or "a UNIX socket client"
        body = f"hello {client} over {environ['wsgi.url_scheme']}\n"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
