"""ProcessEndpoint's uid, gid, use_pty and child_fds, with real child processes."""

from __future__ import annotations

import os
import sys

import pytest
from _net_helpers import read_all

from greenpoint import ConnectError, ProcessEndpoint
from greenpoint._child_setup import check_child_fds, credential_error, popen_user

pytestmark = pytest.mark.timeout(30)

NOBODY = 65534


def python(code: str, **options) -> ProcessEndpoint:
    return ProcessEndpoint(sys.executable, (sys.executable, "-c", code), **options)


# -- pure checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "gid", "euid", "egid", "words"),
    [
        (None, None, 1000, 1000, None),
        (1000, 1000, 1000, 1000, None),  # ourselves: nothing to change
        (0, None, 1000, 1000, "uid=0 needs root: this process runs as uid 1000"),
        (None, 0, 1000, 1000, "gid=0 needs root"),
        (NOBODY, NOBODY, 0, 0, None),
    ],
)
def test_credential_error_says_what_needs_root(uid, gid, euid, egid, words):
    error = credential_error(uid, gid, euid, egid)
    if words is None:
        assert error is None
    else:
        assert words in error


@pytest.mark.parametrize(
    ("child_fds", "words"),
    [
        ({1: 5}, "stdin, stdout or stderr"),
        ({3: "r"}, "'r'/'w' pipes are not supported"),
        ({3: -1}, "must map"),
        ({"3": 4}, "must map"),
    ],
)
def test_bad_child_fds_are_refused_by_name(child_fds, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")) as info:
        ProcessEndpoint("true", child_fds=child_fds)
    assert "child_fds" in str(info.value)
    assert check_child_fds({3: 7, 9: 3}) == {3: 7, 9: 3}


def test_bad_ids_are_refused():
    with pytest.raises(ValueError, match="uid must be an int of 0 or more, not -1"):
        ProcessEndpoint("true", uid=-1)
    with pytest.raises(TypeError, match="gid must be an int of 0 or more, not str 'wheel'"):
        ProcessEndpoint("true", gid="wheel")


def test_popen_user_defaults_the_group_to_the_users_own():
    assert popen_user(None, None) == {}
    keywords = popen_user(0, None)
    assert keywords["user"] == 0 and keywords["group"] == 0


# -- real children --------------------------------------------------------------------

IDS = "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()))"


@pytest.mark.skipif(os.geteuid() != 0, reason="running a child as another user needs root")
def test_child_runs_as_the_given_user_and_group_without_our_groups():
    # id(1), not Python: the user nobody may not be allowed into our virtualenv.
    script = "id -u; id -g; id -G"
    with ProcessEndpoint("sh", ("sh", "-c", script), uid=NOBODY, gid=NOBODY).open() as stream:
        uid, gid, groups = read_all(stream).decode().split("\n")[:3]
    assert (int(uid), int(gid)) == (NOBODY, NOBODY)
    assert "0" not in groups.split()  # root's groups are not kept


@pytest.mark.skipif(os.geteuid() == 0, reason="as root every uid is allowed")
def test_another_uid_without_root_is_a_clear_error():
    with pytest.raises(ConnectError, match=r"uid=0 needs root: this process runs as uid \d+"):
        python(IDS, uid=0).open()


def test_as_root_or_not_the_error_path_is_reached_for_someone_else(monkeypatch):
    # Whoever runs the tests: pretend not to be root, and the child is never forked.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    with pytest.raises(ConnectError) as info:
        python(IDS, uid=NOBODY).open()
    assert "uid=65534 needs root: this process runs as uid 1000" in str(info.value)


def test_use_pty_gives_the_child_a_controlling_terminal():
    code = (
        "import os, sys\n"
        "print(os.isatty(0), os.isatty(1), os.isatty(2))\n"
        "fd = os.open('/dev/tty', os.O_RDWR)\n"  # only works with a controlling terminal
        "os.write(fd, b'via-tty\\n')\n"
        "print(sys.stdin.readline().strip()[::-1])\n"
    )
    with python(code, use_pty=True).open() as stream:
        assert stream.pty
        stream.sendall(b"olleh\n")
        output = read_all(stream)  # ends with EIO on the terminal: end-of-file
    lines = output.replace(b"\r\n", b"\n").split(b"\n")
    assert b"True True True" in lines
    assert b"via-tty" in lines
    assert b"hello" in lines  # what we typed, read by the child from its terminal


def test_child_fds_give_the_child_extra_descriptors():
    read_end, write_end = os.pipe()
    other_read, other_write = os.pipe()
    try:
        code = "import os\nos.write(5, b'on five')\nos.close(5)\nprint(os.read(3, 100).decode())\n"
        # Swapped on purpose: the child's 3 is our other_read, its 5 our write_end.
        endpoint = python(code, child_fds={3: other_read, 5: write_end})
        os.write(other_write, b"on three")
        with endpoint.open() as stream:
            assert read_all(stream).strip() == b"on three"
            stream.wait(10)
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 100) == b"on five"
    finally:
        for fd in (read_end, write_end, other_read, other_write):
            if fd >= 0:
                os.close(fd)


def test_child_fds_that_are_not_open_are_a_clear_error():
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(ConnectError, match=f"our descriptor {read_end} is not open"):
        python("pass", child_fds={3: read_end}).open()
