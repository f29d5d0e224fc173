"""Access-log lines in gunicorn's format codes (greenpoint/_access_log.py): pure."""

from __future__ import annotations

import base64
import os
import time

import pytest

from greenpoint._access_log import (
    GUNICORN_DEFAULT_FORMAT,
    AccessRecord,
    access_atoms,
    check_access_log_format,
    format_access_line,
)

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/a b",
    "QUERY_STRING": "x=1&y=2",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "192.0.2.7",
    "HTTP_USER_AGENT": 'curl/8.0 "quoted"',
    "HTTP_REFERER": "https://example.test/",
    "HTTP_X_REQUEST_ID": "abc-123",
    "CONTENT_TYPE": "text/plain",
    "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:secret").decode(),
}


def record(**changes) -> AccessRecord:
    values = {
        "environ": ENVIRON,
        "status": "200 OK",
        "response_headers": [("Content-Type", "text/html"), ("X-Served-By", "w1")],
        "body_length": 1234,
        "duration": 2.0451237,
        "finished_at": 0.0,
        "pid": 4242,
        "raw_uri": "/a%20b?x=1&y=2",
    }
    values.update(changes)
    return AccessRecord(**values)


def clf(when: float) -> str:
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(when))


def test_gunicorn_default_format_gives_the_combined_log_line():
    line = format_access_line(GUNICORN_DEFAULT_FORMAT, record(finished_at=1_700_000_000))
    assert line == (
        f'192.0.2.7 - alice {clf(1_700_000_000)} "GET /a%20b?x=1&y=2 HTTP/1.1" 200 1234 '
        '"https://example.test/" "curl/8.0 \\"quoted\\""'
    )


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "192.0.2.7"),
        ("l", "-"),
        ("u", "alice"),
        ("r", "GET /a%20b?x=1&y=2 HTTP/1.1"),
        ("s", "200"),
        ("m", "GET"),
        ("U", "/a b"),
        ("q", "x=1&y=2"),
        ("H", "HTTP/1.1"),
        ("b", "1234"),
        ("B", "1234"),
        ("f", "https://example.test/"),
        ("T", "2"),
        ("D", "2045124"),
        ("M", "2045"),
        ("L", "2.045124"),
        ("p", "<4242>"),
        ("{x-request-id}i", "abc-123"),
        ("{X-Request-Id}i", "abc-123"),  # names in braces ignore case, as in gunicorn
        ("{content-type}i", "text/plain"),
        ("{x-served-by}o", "w1"),
        ("{remote_addr}e", "192.0.2.7"),
        ("{REQUEST_METHOD}e", "GET"),
        ("{no-such-header}i", "-"),
        ("z", "-"),  # an unknown atom is "-", not an error
    ],
)
def test_each_atom(atom, expected):
    assert format_access_line(f"%({atom})s", record()) == expected


def test_no_response_gives_dash_for_length_and_zero_body_gives_zero():
    assert format_access_line("%(b)s %(B)s", record(body_length=None)) == "- None"
    assert format_access_line("%(b)s %(B)s", record(body_length=0)) == "0 0"


def test_without_raw_uri_the_request_line_is_rebuilt_from_path_and_query():
    assert format_access_line("%(r)s", record(raw_uri=None)) == "GET /a b?x=1&y=2 HTTP/1.1"
    plain = dict(ENVIRON, QUERY_STRING="")
    assert format_access_line("%(r)s", record(raw_uri=None, environ=plain)) == "GET /a b HTTP/1.1"


def test_no_or_bad_basic_auth_gives_dash_for_user():
    for authorization in (None, "Bearer token", "Basic !!!notbase64"):
        environ = dict(ENVIRON)
        environ.pop("HTTP_AUTHORIZATION")
        if authorization:
            environ["HTTP_AUTHORIZATION"] = authorization
        assert format_access_line("%(u)s", record(environ=environ)) == "-"


def test_numeric_atoms_take_numeric_formats():
    assert format_access_line("%(D)d us %(T)03d", record()) == "2045124 us 002"


@pytest.mark.parametrize("bad", ["%(h", "%(h)s %", "%(h)d"])
def test_a_bad_format_is_refused_with_its_text(bad):
    with pytest.raises(ValueError, match="bad access log format"):
        check_access_log_format(bad)


def test_a_literal_percent_is_written_twice():
    check_access_log_format("100%% %(s)s")
    assert format_access_line("100%% %(s)s", record()) == "100% 200"


def test_same_atoms_as_gunicorn_when_gunicorn_is_installed():
    glogging = pytest.importorskip(
        "gunicorn.glogging", reason="gunicorn is not installed (make bench installs it)"
    )

    class Response:
        status = "200 OK"
        headers = [("Content-Type", "text/html"), ("X-Served-By", "w1")]
        sent = 1234

    class Request:
        headers = [
            ("USER-AGENT", ENVIRON["HTTP_USER_AGENT"]),
            ("REFERER", ENVIRON["HTTP_REFERER"]),
            ("X-REQUEST-ID", "abc-123"),
            ("CONTENT-TYPE", "text/plain"),
            ("AUTHORIZATION", ENVIRON["HTTP_AUTHORIZATION"]),
        ]

    import datetime

    environ = dict(ENVIRON, RAW_URI="/a%20b?x=1&y=2")
    logger = glogging.Logger.__new__(glogging.Logger)
    theirs = logger.atoms(
        Response(), Request(), environ, datetime.timedelta(seconds=2, microseconds=45124)
    )
    ours = access_atoms(record(environ=environ, duration=2.045124, pid=os.getpid()))
    theirs.pop("t"), ours.pop("t")
    assert {k: v for k, v in ours.items() if k in theirs} == theirs
