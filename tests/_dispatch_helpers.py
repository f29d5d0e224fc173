"""Run a test module's listen() servers in both dispatch modes.

``from _dispatch_helpers import dispatch_mode`` in a test module makes every test of
it run twice: with ``listen()``'s default set to ``"greenlet"`` (a greenlet per
connection) and to ``"loop"`` (callbacks from the event loop, one dispatcher
greenlet), so that one contract is checked against both transports.
"""

from __future__ import annotations

import pytest

from greenpoint import _callback_port


@pytest.fixture(autouse=True, params=["greenlet", "loop"])
def dispatch_mode(request, monkeypatch):
    monkeypatch.setattr(_callback_port, "DEFAULT_DISPATCH", request.param)
    return request.param
