"""The endpoint base classes: ``str(endpoint)`` is a description that rebuilds it."""

from __future__ import annotations

import dataclasses

import pytest

from greenpoint import (
    ClientEndpoint,
    ServerEndpoint,
    _registry,
    client_from_string,
    server_from_string,
)
from greenpoint._params import Param, host, integer, number, port, text
from greenpoint._registry import EndpointParser


@dataclasses.dataclass(eq=True)
class PlaceClient(ClientEndpoint):
    """A stand-in for a transport's client endpoint (no I/O in these tests)."""

    prefix = "place"
    host: str
    port: int
    timeout: float = 30.0
    label: str = ""

    def description_parts(self):
        kwargs = {}
        if self.timeout != 30.0:
            kwargs["timeout"] = self.timeout
        if self.label:
            kwargs["label"] = self.label
        return self.prefix, (self.host, self.port), kwargs


@dataclasses.dataclass(eq=True)
class PlaceServer(ServerEndpoint):
    prefix = "place"
    port: int
    backlog: int = 50
    interface: str = ""

    def description_parts(self):
        kwargs = {"backlog": self.backlog} if self.backlog != 50 else {}
        if self.interface:
            kwargs["interface"] = self.interface
        return self.prefix, (self.port,), kwargs


@pytest.fixture(autouse=True)
def place_parsers(monkeypatch):
    monkeypatch.setattr(_registry._CLIENTS, "registered", dict(_registry._CLIENTS.registered))
    monkeypatch.setattr(_registry._SERVERS, "registered", dict(_registry._SERVERS.registered))
    _registry.register_client_parser(
        "place",
        EndpointParser(
            "place",
            (
                Param("host", host, positional=True),
                Param("port", port, positional=True),
                Param("timeout", number, default=30.0),
                Param("label", text, default=""),
            ),
            PlaceClient,
        ),
    )
    _registry.register_server_parser(
        "place",
        EndpointParser(
            "place",
            (
                Param("port", port, positional=True),
                Param("backlog", integer(0), default=50),
                Param("interface", text, default=""),
            ),
            PlaceServer,
        ),
    )


@pytest.mark.parametrize(
    ("endpoint", "text_"),
    [
        (PlaceClient("example.com", 80), "place:example.com:80"),
        (PlaceClient("::1", 443, timeout=2.5), "place:[::1]:443:timeout=2.5"),
        (PlaceClient("h", 1, label="a:b=c\\[d]"), "place:h:1:label=a\\:b\\=c\\\\\\[d]"),
        (PlaceClient("fe80::1%eth0", 8080), "place:[fe80::1%eth0]:8080"),
    ],
)
def test_client_endpoint_str_round_trips(endpoint, text_):
    assert str(endpoint) == text_
    assert client_from_string(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "text_"),
    [
        (PlaceServer(0), "place:0"),
        (PlaceServer(8080, backlog=5, interface="::"), "place:8080:backlog=5:interface=[::]"),
    ],
)
def test_server_endpoint_str_round_trips(endpoint, text_):
    assert str(endpoint) == text_
    assert server_from_string(str(endpoint)) == endpoint


def test_an_endpoint_without_description_parts_says_so():
    class Unfinished(ClientEndpoint):
        pass

    with pytest.raises(NotImplementedError):
        str(Unfinished())
    with pytest.raises(NotImplementedError):
        Unfinished().open()
