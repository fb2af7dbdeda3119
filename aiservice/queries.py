"""Named SQL blocks from ``sql/queries/*.sql``, parsed once.

Each block opens with ``-- name: NAME`` (an aiosql-style suffix documents the
result: ``^`` one row, ``!`` nothing, none: rows), then comment lines that say
what it does, then the SQL with ``%(param)s`` placeholders.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)([\^!$]?)\s*$", re.MULTILINE)


def parse(text: str, origin: str = "<sql>") -> dict[str, str]:
    """Split a file of named blocks into {name: sql}; raise on duplicates or empty blocks."""
    found: dict[str, str] = {}
    marks = list(_NAME.finditer(text))
    if text[: marks[0].start() if marks else len(text)].strip():
        raise ValueError(f"{origin}: text before the first '-- name:' line")
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        sql_lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        sql = "\n".join(sql_lines).strip().rstrip(";").strip()
        name = mark.group(1)
        if not sql:
            raise ValueError(f"{origin}: query {name!r} is empty")
        if name in found:
            raise ValueError(f"{origin}: query {name!r} is defined twice")
        found[name] = sql
    return found


def load() -> dict[str, str]:
    """Every named query shipped in ``aiservice.sql/queries``."""
    queries: dict[str, str] = {}
    folder = resources.files("aiservice.sql").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse(entry.read_text("utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"{entry.name}: query {name!r} is defined in two files")
            queries[name] = sql
    return queries


class Queries:
    """Attribute access to the loaded queries: ``Q.claim_jobs``."""

    def __init__(self, queries: dict[str, str]):
        self._queries = queries

    def __getattr__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"no SQL query named {name!r}") from None

    def names(self) -> set[str]:
        return set(self._queries)


Q = Queries(load())
