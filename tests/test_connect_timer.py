"""connect_address: its own connect loop and timer behave as gevent's connect did."""

from __future__ import annotations

import socket as stdsocket

import gevent
import pytest
from _net_helpers import black_hole
from gevent import socket as gsocket

from greenpoint._socket import connect_address
from greenpoint.errors import ConnectError, ConnectRefusedError, ConnectTimeoutError

pytestmark = pytest.mark.timeout(20)


def active_watchers() -> int:
    return gevent.get_hub().loop.activecnt


def test_a_timed_out_connect_names_the_address_and_leaves_no_timer_running():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port:
        before = active_watchers()
        with pytest.raises(ConnectTimeoutError) as caught:
            connect_address(stdsocket.AF_INET, ("127.0.0.1", port), timeout=0.05)
        assert "127.0.0.1" in str(caught.value)
        assert active_watchers() == before


def test_a_connect_that_succeeds_leaves_no_timer_and_a_blocking_socket():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        before = active_watchers()
        sock = connect_address(stdsocket.AF_INET, listener.getsockname(), timeout=5)
        try:
            assert active_watchers() == before
            assert sock.gettimeout() is None
            assert sock.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b"hello")
                assert sock.recv(5) == b"hello"
        finally:
            sock.close()
    finally:
        listener.close()


def test_a_process_wide_default_timeout_does_not_stay_on_the_socket():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    old = stdsocket.getdefaulttimeout()
    stdsocket.setdefaulttimeout(0.5)
    try:
        sock = connect_address(stdsocket.AF_INET, listener.getsockname(), timeout=5)
        with sock:
            assert sock.gettimeout() is None
    finally:
        stdsocket.setdefaulttimeout(old)
        listener.close()


def test_a_refused_connect_is_a_connect_refused_error():
    probe = gsocket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # bound, never listening: the port refuses
    with pytest.raises(ConnectRefusedError):
        connect_address(stdsocket.AF_INET, ("127.0.0.1", port), timeout=5)


def test_an_outer_gevent_timeout_propagates_unchanged_and_stops_the_inner_timer():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port:
        before = active_watchers()
        outer = gevent.Timeout(0.05)
        with pytest.raises(gevent.Timeout) as caught, outer:
            connect_address(stdsocket.AF_INET, ("127.0.0.1", port), timeout=30)
        assert caught.value is outer
        assert active_watchers() == before


def test_killing_the_connecting_greenlet_closes_it_and_stops_its_timer():
    with black_hole(stdsocket.AF_INET, "127.0.0.1") as port:
        before = active_watchers()
        connecting = gevent.spawn(
            connect_address, stdsocket.AF_INET, ("127.0.0.1", port), timeout=30
        )
        gevent.idle()  # every greenlet has run: the connect waits, its timer started
        assert active_watchers() > before
        connecting.kill()
        assert isinstance(connecting.exception, gevent.GreenletExit) or connecting.successful()
        assert active_watchers() == before


def test_a_unix_path_that_nobody_listens_on_is_a_connect_error(tmp_path):
    with pytest.raises(ConnectError):
        connect_address(stdsocket.AF_UNIX, str(tmp_path / "none.sock"), timeout=5)
