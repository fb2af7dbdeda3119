"""The systemd units verify, score well on exposure, and the processes speak sd_notify."""

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from aiservice.config import variables
from aiservice.localpg import free_port
from tests.fakes import FakeProvider

ROOT = pathlib.Path(__file__).resolve().parents[2]
UNITS = sorted(p for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".timer", ".target"))


@pytest.fixture(scope="module")
def installed_units(tmp_path_factory):
    """The units as they would be installed, pointing at this venv's aiservice (verify wants it to exist)."""
    out = tmp_path_factory.mktemp("units")
    exe = shutil.which("aiservice", path=os.path.dirname(sys.executable))
    assert exe, "aiservice is not installed in this venv"
    for unit in UNITS:
        text = unit.read_text().replace("/opt/aiservice/venv/bin/aiservice", exe)
        (out / unit.name).write_text(text)
    (out / "aiservice-worker@1.service").write_text((out / "aiservice-worker@.service").read_text())
    return out


def test_every_unit_is_there():
    names = {u.name for u in UNITS}
    assert {"aiservice-api.service", "aiservice-worker@.service", "aiservice-workers.target",
            "aiservice-migrate.service", "aiservice-prune.service", "aiservice-prune.timer"} <= names


def test_systemd_analyze_verify_finds_nothing(installed_units):
    names = [p.name for p in installed_units.iterdir() if p.name != "aiservice-worker@.service"]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=installed_units,
                            capture_output=True, text=True, timeout=60)
    # verify exits 0 even for "ignoring" warnings: any output is a finding.
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


@pytest.mark.parametrize("unit", ["aiservice-api.service", "aiservice-worker@1.service",
                                  "aiservice-migrate.service", "aiservice-prune.service"])
def test_exposure_is_low(installed_units, unit):
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit],
                            cwd=installed_units, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-800:]


def test_the_stop_timeouts_outlast_the_graceful_periods():
    api = (ROOT / "systemd" / "aiservice-api.service").read_text()
    worker = (ROOT / "systemd" / "aiservice-worker@.service").read_text()
    conf = (ROOT / "aiservice" / "gunicorn_conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", conf, re.M).group(1))
    assert int(re.search(r"^TimeoutStopSec=(\d+)", api, re.M).group(1)) > graceful
    assert int(re.search(r"^TimeoutStopSec=(\d+)", worker, re.M).group(1)) > 30  # WORKER_SHUTDOWN_GRACE


def test_the_environment_example_documents_every_variable():
    text = (ROOT / "systemd" / "aiservice.env.example").read_text()
    for var in variables():
        assert re.search(rf"^#?{var}=", text, re.M), var


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []

    def collect(self, until, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
            if until(self.messages):
                return True
        return False


def test_the_worker_says_ready_pings_the_watchdog_and_says_stopping(tmp_path, database_url):
    notify = NotifySocket(tmp_path / "notify")
    provider = FakeProvider()
    env = {**os.environ, "DATABASE_URL": database_url, "LLM_BASE_URL": provider.url + "/v1",
           "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000", "WORKER_POLL_INTERVAL": "10s"}
    proc = subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert notify.collect(lambda m: any(x.startswith("READY=1") for x in m), 15)
        # Idle with a 10 s poll interval, the loop still comes round to ping every 0.2 s.
        assert notify.collect(lambda m: m.count("WATCHDOG=1") >= 5, 5)
        proc.send_signal(signal.SIGTERM)
        assert notify.collect(lambda m: "STOPPING=1" in m, 10)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        provider.close()


def test_no_watchdog_pings_without_a_watchdog(tmp_path, database_url):
    notify = NotifySocket(tmp_path / "notify")
    provider = FakeProvider()
    env = {**os.environ, "DATABASE_URL": database_url, "LLM_BASE_URL": provider.url + "/v1",
           "NOTIFY_SOCKET": notify.path}
    env.pop("WATCHDOG_USEC", None)
    proc = subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert notify.collect(lambda m: any(x.startswith("READY=1") for x in m), 15)
        notify.collect(lambda m: False, 1)
        assert "WATCHDOG=1" not in notify.messages
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        provider.close()


def test_the_api_says_ready(tmp_path, database_url):
    notify = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "DATABASE_URL": database_url, "NOTIFY_SOCKET": notify.path,
           "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(free_port()), "HTTP_WORKERS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "aiservice", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert notify.collect(lambda m: any("READY=1" in x for x in m), 20), notify.messages
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
