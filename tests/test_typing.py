"""Type checking against greenpoint: a typed user program passes, misuses are caught.

mypy --strict runs once over tests/typing/ (greenpoint's own modules are followed
silently: their errors are `make typecheck`'s business, not a user's).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import greenpoint

ROOT = Path(__file__).resolve().parent.parent
TYPING = Path(__file__).resolve().parent / "typing"


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy not installed: it comes with the lint extra (pip install -e '.[lint]')")
    cache = tmp_path_factory.mktemp("mypy-cache")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(cache),
            str(TYPING),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    errors = {}  # file name -> {(line, code)}
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):(\d+): error: .*\[([a-z-]+)\]$", line)
        if match:
            errors.setdefault(Path(match[1]).name, set()).add((int(match[2]), match[3]))
    return result, errors


def _expected(path: Path) -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = re.search(r"# expect: ([a-z-]+)$", line)
        if match:
            marks.add((number, match[1]))
    return marks


@pytest.mark.timeout(300)
def test_the_typed_user_program_is_accepted(mypy_report):
    result, errors = mypy_report
    assert "user_program.py" not in errors, result.stdout
    assert "contracts_check.py" not in errors, result.stdout
    assert result.returncode == 1  # the misuse file fails, and only it
    assert set(errors) == {"misuse.py"}, result.stdout


@pytest.mark.timeout(300)
def test_each_misuse_is_rejected_with_its_error(mypy_report):
    result, errors = mypy_report
    expected = _expected(TYPING / "misuse.py")
    assert len(expected) == 5
    assert errors.get("misuse.py") == expected, result.stdout


@pytest.mark.timeout(60)
def test_the_typed_user_program_runs():
    result = subprocess.run(
        [sys.executable, str(TYPING / "user_program.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "typed hello\n"


def test_the_package_says_it_is_typed():
    assert (Path(greenpoint.__file__).parent / "py.typed").is_file()


def test_real_streams_and_listeners_meet_the_contracts_at_run_time(tmp_path):
    import socket

    from greenpoint import Listener, PreparingListener, Stream, server_from_string
    from greenpoint._tls_listener import TLSListener

    listener = server_from_string("tcp:0:interface=127.0.0.1").bind()
    try:
        assert isinstance(listener, Listener)
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        with client, accepted:
            assert isinstance(accepted, Stream)
    finally:
        listener.close()
    assert issubclass(TLSListener, PreparingListener)
    assert not isinstance(object(), Stream)
