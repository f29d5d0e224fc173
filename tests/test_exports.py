"""The public surface: ``greenpoint`` exports exactly what ``__all__`` says."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import types

import greenpoint
from greenpoint import errors

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_name_in_all_is_importable():
    assert len(greenpoint.__all__) == len(set(greenpoint.__all__)), "duplicates in __all__"
    for name in greenpoint.__all__:
        assert getattr(greenpoint, name, None) is not None, name
    namespace: dict = {}
    exec("from greenpoint import *", namespace)
    assert set(greenpoint.__all__) <= set(namespace)


def test_every_public_attribute_is_in_all():
    public = {
        name
        for name, value in vars(greenpoint).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(greenpoint.__all__)


def test_all_is_sorted():
    assert greenpoint.__all__ == sorted(greenpoint.__all__)


def test_every_error_is_exported():
    assert set(errors.__all__) <= set(greenpoint.__all__)
    for name in errors.__all__:
        assert getattr(greenpoint, name) is getattr(errors, name)


def test_twisted_spellings_are_the_same_functions():
    assert greenpoint.clientFromString is greenpoint.client_from_string
    assert greenpoint.serverFromString is greenpoint.server_from_string
    assert greenpoint.quoteStringArgument is greenpoint.quote_string_argument


def test_importing_does_not_monkey_patch():
    # In a fresh interpreter, so nothing another test imported can hide a patch.
    code = (
        "import socket, gevent.monkey, greenpoint\n"
        "assert not gevent.monkey.is_anything_patched()\n"
        "assert socket.socket.__module__ == 'socket', socket.socket\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=30)
