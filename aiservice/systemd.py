"""sd_notify without a dependency: a datagram to ``$NOTIFY_SOCKET`` (gunicorn does the same).

Outside systemd (no NOTIFY_SOCKET) every call is a no-op. The watchdog
interval comes from ``WATCHDOG_USEC`` (set by ``WatchdogSec=``); the worker pings
it from its dispatcher loop, so a stuck loop stops the pings and systemd
restarts the unit.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ=os.environ) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``, ``STATUS=...``); True if sent."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval(environ=os.environ) -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
