"""The documentation agrees with the code: links resolve, key tables show the real defaults."""

from __future__ import annotations

import pathlib
import re

import pytest

from greenpoint._registry import parser_params
from greenpoint.cli._explain import _builtin_parsers, format_value

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
_DOC_PATH = re.compile(r"`(docs/[\w-]+\.md)`")
_HEADING_PREFIX = re.compile(r"`([a-z0-9]+):`")
_SIDE = re.compile(r"\b(client|server)\b", re.IGNORECASE)
_ONE_VALUE = re.compile(r"`([^`]*)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_to_a_page_resolves(page):
    text = page.read_text()
    missing = [
        target
        for target in _LINK.findall(text)
        if "://" not in target and not (page.parent / target).exists()
    ]
    missing += [path for path in _DOC_PATH.findall(text) if not (ROOT / path).exists()]
    assert missing == []


def _defaults() -> dict[tuple[str, str], dict[str, str]]:
    return {
        (side, prefix): {
            param.name: format_value(param, param.default) for param in parser_params(parser)
        }
        for side in ("client", "server")
        for prefix, parser in _builtin_parsers(side).items()
    }


# Pages whose key tables sit under a heading that names no prefix.
_PAGE_PREFIX = {"happy-eyeballs.md": ("client", "tcp"), "haproxy.md": ("server", "haproxy")}


def _table_defaults(page: pathlib.Path):
    """``(line, side, prefix, key, default)`` for each row of a key table with a Default column.

    Only a default written as one code span (`` `30` ``) is a value to compare; words
    ("system roots", "newest") describe what none means.
    """
    side, prefix = _PAGE_PREFIX.get(page.name, (None, None))
    column = None
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("#"):
            found = _HEADING_PREFIX.search(line)
            if found:
                prefix = found.group(1)
                found_side = _SIDE.search(line)
                side = found_side.group(1).lower() if found_side else None
            column = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].lower() == "key":
            headers = [cell.lower() for cell in cells]
            column = headers.index("default") if "default" in headers else None
            continue
        if prefix is None or column is None or not line.startswith("| `"):
            continue
        value = _ONE_VALUE.fullmatch(cells[column]) if len(cells) > column else None
        if value is None:
            continue
        for key in re.findall(r"`(\w+)`", cells[0]):
            yield number, side, prefix, key, value.group(1)


def test_key_tables_in_docs_show_the_defaults_check_shows():
    defaults = _defaults()
    compared, wrong = 0, []
    for page in PAGES:
        for number, side, prefix, key, shown in _table_defaults(page):
            for each_side in [side] if side else ["client", "server"]:
                real = defaults.get((each_side, prefix), {}).get(key)
                if real is None:
                    continue
                compared += 1
                if real != shown:
                    wrong.append(
                        f"{page.name}:{number} {prefix} {key}: {shown!r}, check says {real!r}"
                    )
    assert wrong == []
    assert compared > 10  # the tables were found
