"""A non-editable install works: the wheel carries sql/ and schema/ and the code finds them there."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: build with the setuptools of this venv, no download.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [path] = out.glob("aiservice-*.whl")
    return path


def test_the_wheel_holds_every_sql_and_schema_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"aiservice/sql/{p.relative_to(ROOT / 'sql')}" for p in (ROOT / "sql").rglob("*.sql")}
    expected |= {f"aiservice/schema/{p.relative_to(ROOT / 'schema')}" for p in (ROOT / "schema").rglob("*.json")}
    assert "aiservice/sql/migrations/0001_jobs.sql" in expected and len(expected) >= 15
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("sql/", "schema/", "tests/")) for n in names)


def test_code_from_the_wheel_loads_its_own_sql_and_schemas(wheel, tmp_path, database_url):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
import aiservice, aiservice.queries, aiservice.schemas, aiservice.migrations
assert aiservice.__file__.startswith({str(tmp_path)!r}), aiservice.__file__
from aiservice.queries import Q
assert "claim_jobs" in Q.names()
assert "tasks/llm_chat" in aiservice.schemas.Schemas().documents
assert [m.name for m in aiservice.migrations.available()][0] == "0001_jobs.sql"
from aiservice.config import Settings
from aiservice.api.app import create_app
from aiservice import migrations
migrations.migrate(Settings(database_url={database_url!r}))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
