import os
import subprocess
import sys

import psycopg
import pytest

from aiservice import migrations
from aiservice.config import Settings
from aiservice.errors import MigrationError


def _applied(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT name, checksum FROM schema_migrations ORDER BY name").fetchall()


def test_migrate_applies_every_file_once(empty_database):
    url = empty_database()
    settings = Settings(database_url=url)
    first = migrations.migrate(settings)
    assert first == [m.name for m in migrations.available()]
    assert migrations.migrate(settings) == []
    assert _applied(url) == [(m.name, m.checksum) for m in migrations.available()]


def test_four_processes_starting_together_apply_each_file_exactly_once(empty_database):
    url = empty_database()
    env = {**os.environ, "DATABASE_URL": url}
    procs = [subprocess.Popen([sys.executable, "-m", "aiservice", "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = [line.rsplit(" ", 1)[1] for _, err in outputs for line in err.splitlines()
               if "applied migration " in line]
    assert sorted(applied) == [m.name for m in migrations.available()]
    assert len(_applied(url)) == len(migrations.available())


def test_a_changed_migration_is_refused(empty_database):
    url = empty_database()
    migrations.migrate(Settings(database_url=url))
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = '0001_jobs.sql'")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrations.migrate(Settings(database_url=url))


def test_migrate_without_a_database_url_says_so():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-m", "aiservice", "migrate"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("aiservice: DATABASE_URL is not set")


def test_migrate_against_an_unreachable_database_fails_cleanly(pg_cluster):
    env = {**os.environ, "DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x", "DB_CONNECT_TIMEOUT": "1s"}
    result = subprocess.run([sys.executable, "-m", "aiservice", "migrate"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "migrations failed on postgresql://127.0.0.1:1/x" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
