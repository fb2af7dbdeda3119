"""A PostgreSQL cluster of our own, for development and tests.

Uses the server binaries of Debian's postgresql package (``pg_ctl`` on PATH or
under ``/usr/lib/postgresql/N/bin``). ``initdb`` refuses to run as root, so as
root every server command runs as the ``postgres`` user (``runuser``), which
owns the data directory. The server listens on 127.0.0.1 only, no socket file.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

# Settings that trade durability for speed: for the test suite only.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class LocalPostgresError(Exception):
    pass


def find_bindir() -> Path:
    """Where pg_ctl, initdb and postgres live; the newest installed version wins."""
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(os.path.realpath(pg_ctl)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    raise LocalPostgresError(
        "PostgreSQL server binaries not found (no pg_ctl on PATH or in /usr/lib/postgresql/*/bin); "
        "install Debian's postgresql package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reachable_by_server_user(path: str | os.PathLike) -> bool:
    """Whether the server's user can reach ``path`` (as root, it runs as 'postgres')."""
    if os.geteuid() != 0:
        return True
    probe = Path(path).resolve()
    while not probe.exists():
        probe = probe.parent
    return subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(probe)],
                          capture_output=True).returncode == 0


class LocalPostgres:
    """One cluster in ``data_dir`` on 127.0.0.1:``port``."""

    def __init__(self, root: str | os.PathLike, port: int | None = None,
                 settings: dict[str, str] | None = None):
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.logfile = self.root / "postgresql.log"
        self.port = port or free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "",
                         "max_connections": "200", **(settings or {})}
        self.bindir = find_bindir()
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            raise LocalPostgresError(f"{args[0]} failed: {detail}")
        return result

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user:
            try:
                pw = pwd.getpwnam(self._user)
            except KeyError:
                raise LocalPostgresError("running as root needs a 'postgres' user "
                                         "(Debian's postgresql package creates it)") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            for sub in (self.data, self.logfile):
                if sub.exists():
                    os.chown(sub, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)

    def init(self) -> None:
        """initdb once; later calls find the cluster and keep it."""
        self._prepare_root()
        if (self.data / "PG_VERSION").exists():
            return
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C")

    def start(self) -> None:
        options = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in
                           {**self.settings, "port": str(self.port)}.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` unless it exists; return its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                template_sql = sql.SQL(" TEMPLATE {}").format(sql.Identifier(template)) if template else sql.SQL("")
                conn.execute(sql.SQL("CREATE DATABASE {}{}").format(sql.Identifier(name), template_sql))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
