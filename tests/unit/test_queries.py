import pathlib
import re

import pytest

from aiservice.queries import Q, parse

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_named_blocks_are_parsed():
    text = "-- name: one^\n-- what it does\nSELECT 1;\n\n-- name: two\nSELECT 2\n"
    assert parse(text) == {"one": "SELECT 1", "two": "SELECT 2"}


@pytest.mark.parametrize("text", [
    "-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;",  # duplicate
    "-- name: a\n-- only a comment\n",               # empty
    "SELECT 1;\n-- name: a\nSELECT 2;",               # stray SQL
])
def test_bad_files_are_refused(text):
    with pytest.raises(ValueError):
        parse(text)


def test_every_query_the_code_names_exists_and_every_query_is_used():
    code = "\n".join(p.read_text() for p in (ROOT / "aiservice").rglob("*.py"))
    used = set(re.findall(r"\bQ\.([a-z_]+)", code))
    assert used <= Q.names(), used - Q.names()
    assert Q.names() <= used, f"unused queries: {Q.names() - used}"


def test_no_query_is_built_with_string_formatting():
    for path in (ROOT / "aiservice").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"execute\(\s*f[\"']", text), path
