"""Apply ``sql/migrations/NNNN_description.sql`` in order, each exactly once.

Each file runs in its own transaction together with its row in
``schema_migrations`` (name, sha256 checksum). A session advisory lock
serialises concurrent migrators: four processes starting together apply each
file once, the others wait and then find nothing left to do. A file whose
checksum changed after it was applied stops the run: migrations are
append-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from importlib import resources

import psycopg

from aiservice.config import Settings
from aiservice.db import connect
from aiservice.errors import MigrationError

log = logging.getLogger(__name__)

# pg_advisory_lock key: the first 8 bytes of sha256("aiservice.migrations").
LOCK_KEY = int.from_bytes(hashlib.sha256(b"aiservice.migrations").digest()[:8], "big", signed=True)
_FILENAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclasses.dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with this version, in order."""
    folder = resources.files("aiservice.sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            if not _FILENAME.match(entry.name):
                raise MigrationError(f"migration file name {entry.name!r} is not NNNN_description.sql")
            found.append(Migration(entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.name)
    numbers = [m.name[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError("two migration files share a number")
    return found


def pending(applied: dict[str, str], migrations: list[Migration]) -> list[Migration]:
    """Migrations not yet applied; raise if an applied one changed since."""
    todo = []
    for migration in migrations:
        checksum = applied.get(migration.name)
        if checksum is None:
            todo.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} changed after it was applied "
                "(checksum differs); add a new migration instead"
            )
    return todo


def migrate(settings: Settings) -> list[str]:
    """Apply every pending migration; return the names applied by this call."""
    migrations = available()
    applied_now = []
    with connect(settings, "aiservice-migrate", autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            conn.execute(_CREATE_TABLE)
            applied = dict(conn.execute("SELECT name, checksum FROM schema_migrations").fetchall())
            for migration in pending(applied, migrations):
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (name, checksum) VALUES (%s, %s)",
                            [migration.name, migration.checksum],
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.name} failed: {exc}") from None
                applied_now.append(migration.name)
                log.info("applied migration %s", migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    if not applied_now:
        log.info("migrations are current (%d applied)", len(migrations))
    return applied_now
