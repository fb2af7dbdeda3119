"""Time-ordered ids (UUIDv7, RFC 9562) made in Python.

Ordering by id is ordering by creation time, so lists paginate on the primary
key alone and ``min(id)`` finds the oldest job; batches get their ids without
a round trip. Within one millisecond a 12-bit counter keeps ids of this process
increasing (RFC 9562, method 1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # more than ~3000 ids in one ms: borrow the next ms
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand)


def uuid_from_text(text: str) -> uuid.UUID | None:
    """The UUID written in ``text``, or None when it is not one."""
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None
