"""LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES parsing, with plain dicts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from greenpoint._systemd import ListenFDs, listen_fds

PID = 4242
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(**values):
    return {key: str(value) for key, value in values.items()}


@pytest.mark.parametrize(
    "environ, fds, names",
    [
        # systemd-socket-activate without --fdname: no LISTEN_FDNAMES at all.
        (env(LISTEN_PID=PID, LISTEN_FDS=1), (3,), (None,)),
        (env(LISTEN_PID=PID, LISTEN_FDS=3), (3, 4, 5), (None, None, None)),
        (env(LISTEN_PID=PID, LISTEN_FDS=2, LISTEN_FDNAMES="web:admin"), (3, 4), ("web", "admin")),
        (env(LISTEN_PID=PID, LISTEN_FDS=1, LISTEN_FDNAMES="web"), (3,), ("web",)),
        (env(LISTEN_PID=PID, LISTEN_FDS=0), (), ()),
        (env(LISTEN_PID=PID, LISTEN_FDS=0, LISTEN_FDNAMES=""), (), ()),
        (env(LISTEN_PID=f" {PID} ", LISTEN_FDS=" 1 "), (3,), (None,)),
        # Name count mismatches keep the sockets: fewer names leave the rest unnamed,
        (env(LISTEN_PID=PID, LISTEN_FDS=3, LISTEN_FDNAMES="web"), (3, 4, 5), ("web", None, None)),
        # and surplus names are dropped.
        (env(LISTEN_PID=PID, LISTEN_FDS=1, LISTEN_FDNAMES="a:b:c"), (3,), ("a",)),
        # An empty name is no name.
        (env(LISTEN_PID=PID, LISTEN_FDS=2, LISTEN_FDNAMES=":b"), (3, 4), (None, "b")),
        (env(LISTEN_PID=PID, LISTEN_FDS=1, LISTEN_FDNAMES=""), (3,), (None,)),
        # Duplicate names are kept as given.
        (env(LISTEN_PID=PID, LISTEN_FDS=2, LISTEN_FDNAMES="x:x"), (3, 4), ("x", "x")),
    ],
)
def test_sockets_passed_to_us(environ, fds, names):
    passed = listen_fds(environ, PID)
    assert passed.fds == fds
    assert passed.names == names


@pytest.mark.parametrize(
    "environ, note",
    [
        ({}, "LISTEN_FDS is not set"),
        (env(LISTEN_FDNAMES="web"), "LISTEN_FDS is not set"),
        (env(LISTEN_FDS=1), "LISTEN_PID is not set"),
        (env(LISTEN_PID=PID + 1, LISTEN_FDS=1), "not this process"),
        (env(LISTEN_PID="self", LISTEN_FDS=1), "not this process"),
        (env(LISTEN_PID=PID), "not a usable count"),
        (env(LISTEN_PID=PID, LISTEN_FDS="two"), "not a usable count"),
        (env(LISTEN_PID=PID, LISTEN_FDS=-1), "not a usable count"),
        (env(LISTEN_PID=PID, LISTEN_FDS=10**9), "not a usable count"),
    ],
)
def test_nothing_usable_says_why(environ, note):
    passed = listen_fds(environ, PID)
    assert passed.fds == () and passed.names == ()
    assert note in passed.note
    assert note in passed.describe()


def test_mismatched_names_leave_a_note():
    passed = listen_fds(env(LISTEN_PID=PID, LISTEN_FDS=2, LISTEN_FDNAMES="web"), PID)
    assert "1 names for 2 sockets" in passed.note
    assert listen_fds(env(LISTEN_PID=PID, LISTEN_FDS=1), PID).note == ""


def test_lookup_by_index_and_name():
    passed = listen_fds(env(LISTEN_PID=PID, LISTEN_FDS=3, LISTEN_FDNAMES="web:admin:web"), PID)
    assert [passed.fd_at(i) for i in range(-1, 4)] == [None, 3, 4, 5, None]
    assert passed.fd_named("web") == 3  # the first of duplicates
    assert passed.fd_named("admin") == 4
    assert passed.fd_named("other") is None
    assert passed.describe() == "3 sockets were passed (fd 3 'web', fd 4 'admin', fd 5 'web')"


def test_describe_unnamed_and_empty():
    assert ListenFDs((3,), (None,)).describe() == "1 socket was passed (fd 3 unnamed)"
    assert ListenFDs().describe() == "no sockets were passed"


def test_reading_leaves_the_environment_alone():
    environ = env(LISTEN_PID=PID, LISTEN_FDS=1, LISTEN_FDNAMES="web")
    before = dict(environ)
    listen_fds(environ, PID)
    assert environ == before


def test_importing_and_parsing_do_not_touch_os_environ():
    # In a fresh interpreter, so that the import really happens with LISTEN_* set.
    code = (
        "import os, greenpoint\n"
        "greenpoint.server_from_string('systemd:domain=INET:index=0')\n"
        "print(os.environ.get('LISTEN_PID'), os.environ.get('LISTEN_FDS'))\n"
    )
    child_env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1", PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
