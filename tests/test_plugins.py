"""greenpoint.plugins: a description plugin written against the public module only."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _wait_helpers import wait_until

import greenpoint
import greenpoint.plugins as plugins
from greenpoint import _registry, client_from_string, server_from_string
from greenpoint.cli._explain import explain, format_explanation

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(_registry._CLIENTS, "registered", dict(_registry._CLIENTS.registered))
    monkeypatch.setattr(_registry._SERVERS, "registered", dict(_registry._SERVERS.registered))


# -- the plugin: uses nothing but greenpoint.plugins (and the public endpoints) ---------


@dataclasses.dataclass
class GreetingClientEndpoint(plugins.ClientEndpoint):
    """Connect with ``endpoint`` and send ``greeting`` first, ``times`` times."""

    endpoint: Any
    greeting: str = "hello"
    times: int = 1
    loud: bool = False
    prefix = "greet"

    def open(self, timeout: float | None = None) -> Any:
        stream = self.endpoint.open(timeout)
        text = self.greeting.upper() if self.loud else self.greeting
        stream.sendall(text.encode() * self.times)
        return stream

    def description_parts(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        keys: dict[str, Any] = {"endpoint": plugins.Bracketed(str(self.endpoint))}
        if self.greeting != "hello":
            keys["greeting"] = self.greeting
        if self.times != 1:
            keys["times"] = self.times
        if self.loud:
            keys["loud"] = 1
        return ("greet", (), keys)


def _client(value: str) -> Any:
    return client_from_string(value)


GREET = plugins.EndpointParser(
    "greet",
    (
        plugins.Param("endpoint", _client, help="where to connect, a client description"),
        plugins.Param("greeting", plugins.text, "hello", positional=True, help="first words"),
        plugins.Param("times", plugins.integer(1, 10), 1, help="how often to say them"),
        plugins.Param("loud", plugins.boolean, False, help="shout"),
        plugins.Param("mood", plugins.choice("calm", "busy"), "calm", help="unused"),
    ),
    lambda endpoint, greeting, times, loud, mood: GreetingClientEndpoint(
        endpoint, greeting, times, loud
    ),
    "send a greeting before anything else",
)


def test_public_module_exports_what_plugins_need():
    assert plugins.Param is greenpoint._params.Param
    assert plugins.EndpointParser is _registry.EndpointParser
    for name in plugins.__all__:
        assert getattr(plugins, name) is not None


def test_registered_plugin_connects_and_round_trips(tmp_path):
    plugins.register_client_parser("greet", GREET)
    received = []

    def record(stream, address):
        with stream:
            received.append(stream.recv(100))

    with server_from_string("tcp:0:interface=127.0.0.1").serve(record) as port:
        text = f"greet:hi:times=2:loud=yes:endpoint=[{port.client_description()}]"
        endpoint = client_from_string(text)
        assert client_from_string(str(endpoint)) == endpoint
        with endpoint.open(timeout=5):
            pass
        wait_until(lambda: received, what="the server to receive")
    assert received == [b"HIHI"]


@pytest.mark.parametrize(
    ("text", "parameter", "words"),
    [
        ("greet:hi:times=0:endpoint=[tcp:127.0.0.1:1]", "times", "at least 1"),
        ("greet:hi:loud=perhaps:endpoint=[tcp:127.0.0.1:1]", "loud", "loud"),
        ("greet:hi:mood=sad:endpoint=[tcp:127.0.0.1:1]", "mood", "calm, busy"),
        ("greet:hi:tims=2:endpoint=[tcp:127.0.0.1:1]", "tims", "did you mean 'times'"),
    ],
)
def test_plugin_errors_name_the_key(text, parameter, words):
    plugins.register_client_parser("greet", GREET)
    with pytest.raises(plugins.DescriptionError) as info:
        client_from_string(text)
    assert info.value.parameter == parameter
    assert words in str(info.value)


def test_greenpoint_check_explains_the_plugin():
    plugins.register_client_parser("greet", GREET)
    shown = format_explanation(explain("greet:hi:endpoint=[tcp:127.0.0.1:80]", "client"))
    assert "send a greeting before anything else" in shown
    assert "greeting  hi" in shown
    assert "times     1" in shown and "(default)" in shown
