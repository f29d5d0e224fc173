"""The prefix registry: registration, lookup, errors and entry-point plugins."""

from __future__ import annotations

import dataclasses
import itertools
import sys
import types

import pytest

from greenpoint import (
    Description,
    DescriptionError,
    _registry,
    client_from_string,
    clientFromString,
    register_client_parser,
    register_server_parser,
    server_from_string,
    serverFromString,
)
from greenpoint._params import Param, host, number, port
from greenpoint._registry import (
    ENTRY_POINT_GROUP,
    EndpointParser,
    client_parsers,
    reset_plugin_cache,
    server_parsers,
)


@dataclasses.dataclass(frozen=True)
class FakeClient:
    host: str
    port: int
    timeout: float = 30.0


FAKE_CLIENT = EndpointParser(
    "fake",
    (
        Param("host", host, positional=True),
        Param("port", port, positional=True),
        Param("timeout", number, default=30.0),
    ),
    FakeClient,
    "a client for tests",
)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Each test starts from the real tables and leaves them as they were."""
    monkeypatch.setattr(_registry._CLIENTS, "registered", dict(_registry._CLIENTS.registered))
    monkeypatch.setattr(_registry._SERVERS, "registered", dict(_registry._SERVERS.registered))
    reset_plugin_cache()
    yield
    reset_plugin_cache()


def test_registered_parser_builds_the_endpoint():
    register_client_parser("fake", FAKE_CLIENT)
    assert client_from_string("fake:example.com:80") == FakeClient("example.com", 80)
    assert client_from_string("fake:h:1:timeout=0.25") == FakeClient("h", 1, 0.25)
    assert clientFromString is client_from_string


def test_prefix_lookup_is_case_insensitive_both_ways():
    register_client_parser("Fake", FAKE_CLIENT)
    assert client_from_string("FAKE:h:1") == FakeClient("h", 1)
    assert client_from_string("fake:h:1") == FakeClient("h", 1)


def test_bytes_descriptions_work():
    register_client_parser("fake", FAKE_CLIENT)
    assert client_from_string(b"fake:[::1]:443") == FakeClient("::1", 443)


def test_a_parsed_description_is_accepted_too():
    register_client_parser("fake", FAKE_CLIENT)
    assert client_from_string(Description("fake", ("h", "1"))) == FakeClient("h", 1)


def test_client_and_server_tables_are_separate():
    register_server_parser("fake", FAKE_CLIENT)
    assert server_from_string("fake:h:1") == FakeClient("h", 1)
    assert serverFromString is server_from_string
    with pytest.raises(DescriptionError, match="'fake' is a server type, not a client one"):
        client_from_string("fake:h:1")


@pytest.mark.parametrize(
    ("description", "words", "parameter"),
    [
        ("fake:h", ["fake: missing port"], "port"),
        ("fake:h:70000", ["fake: bad port='70000'", "at most 65535"], "port"),
        ("fake:h:eighty", ["fake: bad port='eighty'", "whole number"], "port"),
        ("fake:h:80:timeout=x", ["fake: bad timeout='x'"], "timeout"),
        ("fake:h:80:prot=1", ["'prot' is not a parameter of fake: did you mean 'port'?"], "prot"),
    ],
)
def test_bad_values_name_prefix_and_parameter(description, words, parameter):
    register_client_parser("fake", FAKE_CLIENT)
    with pytest.raises(DescriptionError) as info:
        client_from_string(description)
    for word in words:
        assert word in str(info.value)
    assert info.value.prefix == "fake"
    assert info.value.parameter == parameter


def test_unknown_prefix_suggests_a_near_one_and_lists_the_known():
    register_client_parser("fakeproto", FAKE_CLIENT)
    with pytest.raises(DescriptionError) as info:
        client_from_string("fakeprot:h:1")
    message = str(info.value)
    assert "unknown client endpoint type 'fakeprot': did you mean 'fakeproto'?" in message
    assert "tcp" in message and "unix" in message  # the built-ins are listed
    assert info.value.prefix == "fakeprot"
    assert info.value.suggestion == "fakeproto"


def test_unknown_prefix_without_a_near_one():
    with pytest.raises(DescriptionError, match=r"unknown server endpoint type 'qqqqqqq' \(known:"):
        server_from_string("qqqqqqq:1")


def test_parser_in_twisted_style_gets_args_and_kwargs():
    calls = []

    def parse_stream_client(*args, **kwargs):
        calls.append((args, kwargs))
        return "endpoint"

    register_client_parser("twisty", parse_stream_client)
    assert client_from_string("twisty:a:b=c:d") == "endpoint"
    assert calls == [(("a", "d"), {"b": "c"})]


def test_parser_with_parse_gets_the_whole_description():
    seen = []

    class Nested:
        def parse(self, description):
            seen.append(description)
            return client_from_string(description.rest)

    register_client_parser("fake", FAKE_CLIENT)
    register_client_parser("wrap", Nested())
    assert client_from_string("wrap:fake:h:1:timeout=2") == FakeClient("h", 1, 2.0)
    assert seen[0].rest == "fake:h:1:timeout=2"


@pytest.mark.parametrize(
    "error", [TypeError, KeyError, IndexError, AttributeError, ValueError, ZeroDivisionError]
)
def test_whatever_a_parser_raises_becomes_a_description_error(error):
    def broken(*args, **kwargs):
        raise error("inner detail")

    register_server_parser("broken", broken)
    with pytest.raises(DescriptionError) as info:
        server_from_string("broken:1")
    assert str(info.value).startswith("broken: ")
    assert "inner detail" in str(info.value)
    assert info.value.prefix == "broken"
    assert isinstance(info.value.__cause__, error)


def test_a_twisted_style_parser_called_with_a_wrong_keyword():
    def parse_stream_server(port, backlog="50"):
        return (port, backlog)

    register_server_parser("strict", parse_stream_server)
    assert server_from_string("strict:80:backlog=5") == ("80", "5")
    with pytest.raises(DescriptionError, match="strict: TypeError: .*'bogus'"):
        server_from_string("strict:80:bogus=1")


def test_endpoint_parser_is_callable_twisted_style():
    assert FAKE_CLIENT("h", "1", timeout="3") == FakeClient("h", 1, 3.0)


def test_registering_twice_needs_replace():
    register_client_parser("fake", FAKE_CLIENT)
    with pytest.raises(ValueError, match="already registered"):
        register_client_parser("FAKE", lambda *a: None)
    register_client_parser("fake", lambda *a, **k: "replaced", replace=True)
    assert client_from_string("fake:x") == "replaced"


def test_builtin_prefixes_are_protected_unless_replaced():
    with pytest.raises(ValueError, match="'tcp' is already registered"):
        register_client_parser("tcp", FAKE_CLIENT)
    register_client_parser("tcp", FAKE_CLIENT, replace=True)
    assert client_from_string("tcp:h:1") == FakeClient("h", 1)


@pytest.mark.parametrize("prefix", ["", "a:b", "a=b", "1tcp", "my proxy", "[x]", None, b"tcp"])
def test_register_refuses_a_bad_prefix(prefix):
    with pytest.raises(ValueError, match="an endpoint prefix is a name"):
        register_client_parser(prefix, FAKE_CLIENT)


def test_register_refuses_something_that_is_no_parser():
    with pytest.raises(TypeError, match="must be callable or have .parse"):
        register_server_parser("thing", 42)


def test_builtins_are_imported_from_their_module_on_first_use(monkeypatch):
    module = types.ModuleType("greenpoint_test_builtin")
    module.CLIENT_PARSERS = {"builtinfake": FAKE_CLIENT}
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(_registry._CLIENTS.builtin_modules, "builtinfake", module.__name__)
    monkeypatch.setitem(_registry._CLIENTS.builtin_modules, "missing", module.__name__)
    assert client_from_string("builtinfake:h:1") == FakeClient("h", 1)
    with pytest.raises(LookupError, match="defines no client parser for 'missing'"):
        client_from_string("missing:h:1")


def test_parser_listings_include_registered_parsers(monkeypatch):
    # Keep the listing to what this test controls: no built-in modules are imported.
    monkeypatch.setattr(_registry._CLIENTS, "builtin_modules", {})
    monkeypatch.setattr(_registry._SERVERS, "builtin_modules", {})
    register_client_parser("fake", FAKE_CLIENT)
    assert client_parsers() == {"fake": FAKE_CLIENT}
    assert server_parsers() == {}


# Plugins, found through entry points of installed distributions. A fake distribution
# is a *.dist-info directory on sys.path; importlib.metadata reads it like any other.

_names = itertools.count()


def install_plugin(tmp_path, monkeypatch, dist, entries, source):
    """Write a distribution ``dist`` whose module holds ``source``; return its module name.

    ``entries`` maps entry-point names to attribute names in that module.
    """
    module = f"greenpoint_test_plugin_{next(_names)}"
    root = tmp_path / dist
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [
        f"{name} = {module}:{attr}" for name, attr in entries.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    reset_plugin_cache()
    return module


PLUGIN_SOURCE = """
import dataclasses

from greenpoint._params import Param, port
from greenpoint._registry import EndpointParser


@dataclasses.dataclass
class Thing:
    port: int
    side: str


class plugin:
    client = EndpointParser("thing", (Param("port", port, positional=True),),
                            lambda port: Thing(port, "client"))
    server = EndpointParser("thing", (Param("port", port, positional=True),),
                            lambda port: Thing(port, "server"))


class server_only:
    server = staticmethod(lambda *args, **kwargs: ("server_only", args, kwargs))
"""


def test_plugin_from_an_entry_point(tmp_path, monkeypatch):
    module = install_plugin(
        tmp_path, monkeypatch, "thing-plugin", {"thing": "plugin"}, PLUGIN_SOURCE
    )
    client = client_from_string("THING:8080")
    assert (client.port, client.side) == (8080, "client")
    assert server_from_string("thing:80").side == "server"
    assert type(client).__module__ == module
    with pytest.raises(DescriptionError, match="thing: bad port='x'"):
        client_from_string("thing:x")


def test_plugin_for_one_side_only(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "half-plugin", {"half": "server_only"}, PLUGIN_SOURCE)
    assert server_from_string("half:a:k=v") == ("server_only", ("a",), {"k": "v"})
    with pytest.raises(
        DescriptionError, match="'half' \\(from half-plugin\\) has no client parser"
    ):
        client_from_string("half:a")


def test_two_plugins_for_one_prefix_are_an_error_naming_both(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "first-dist", {"thing": "plugin"}, PLUGIN_SOURCE)
    install_plugin(tmp_path, monkeypatch, "second-dist", {"thing": "plugin"}, PLUGIN_SOURCE)
    with pytest.raises(DescriptionError) as info:
        client_from_string("thing:80")
    message = str(info.value)
    assert "more than one plugin" in message
    assert "first-dist" in message and "second-dist" in message
    assert info.value.prefix == "thing"
    # Registering one explicitly settles it.
    register_client_parser("thing", FAKE_CLIENT)
    assert client_from_string("thing:h:1") == FakeClient("h", 1)


def test_a_conflict_on_one_side_only_is_no_conflict(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "full-dist", {"thing": "plugin"}, PLUGIN_SOURCE)
    install_plugin(tmp_path, monkeypatch, "server-dist", {"thing": "server_only"}, PLUGIN_SOURCE)
    assert client_from_string("thing:1").side == "client"
    with pytest.raises(DescriptionError, match="full-dist and server-dist"):
        server_from_string("thing:1")


def test_a_broken_plugin_is_reported_and_harms_no_other_prefix(tmp_path, monkeypatch):
    install_plugin(
        tmp_path, monkeypatch, "broken-dist", {"broken": "missing_attribute"}, PLUGIN_SOURCE
    )
    install_plugin(tmp_path, monkeypatch, "good-dist", {"thing": "plugin"}, PLUGIN_SOURCE)
    with pytest.raises(DescriptionError) as info:
        client_from_string("broken:1")
    assert "plugin for endpoint type 'broken' (broken-dist" in str(info.value)
    assert "failed to load" in str(info.value)
    assert isinstance(info.value.__cause__, AttributeError)
    assert client_from_string("thing:1").port == 1
    # Unknown prefixes still get their message (plugins are listed, not imported).
    with pytest.raises(DescriptionError, match="unknown client endpoint type 'nope'"):
        client_from_string("nope:1")


def test_only_the_plugin_asked_for_is_imported(tmp_path, monkeypatch):
    module = install_plugin(tmp_path, monkeypatch, "lazy-dist", {"lazy": "plugin"}, PLUGIN_SOURCE)
    with pytest.raises(DescriptionError):
        client_from_string("nope:1")
    assert module not in sys.modules
    client_from_string("lazy:1")
    assert module in sys.modules


def test_plugins_are_read_once_until_the_cache_is_reset(tmp_path, monkeypatch):
    with pytest.raises(DescriptionError, match="unknown client endpoint type 'later'"):
        client_from_string("later:1")
    root = tmp_path / "later"
    # install without resetting: the cached discovery does not see it
    module = f"greenpoint_test_plugin_{next(_names)}"
    info = root / "later-dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: later-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nlater = {module}:plugin\n")
    (root / f"{module}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(DescriptionError, match="unknown client endpoint type 'later'"):
        client_from_string("later:1")
    reset_plugin_cache()
    assert client_from_string("later:1").port == 1


def test_registered_and_builtin_prefixes_win_over_plugins(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, "shadow-dist", {"fake": "plugin"}, PLUGIN_SOURCE)
    register_client_parser("fake", FAKE_CLIENT)
    assert client_from_string("fake:h:1") == FakeClient("h", 1)
