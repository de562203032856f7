"""The load-average limit (``-L``, pattern ``maxloadavg``; protocol.md §3.11).

3.0.1 parses both and never checks them; the project decision is to enforce
them: over the limit a session gets ``421 4.3.2`` and is closed.  The value
compared is the integer part of the 1-minute load average, as 3.0.1's
disabled code did (``atoi`` of the first field of /proc/loadavg).
"""

from __future__ import annotations

import time

NO_LIMIT = 999  # the default of -L and of pattern lines: "no limit"

TEXT = b"Sorry, the system is too loaded for email reception at the moment"


def reply(esc: bool = True) -> bytes:
    """The refusal line, with CR LF (ESC only when the group has status codes on)."""
    return b"421 4.3.2 " + TEXT + b"\r\n" if esc else b"421 " + TEXT + b"\r\n"


def current(path: str = "/proc/loadavg") -> int:
    """Integer part of the 1-minute load average; 0 when it cannot be read."""
    try:
        with open(path, "rb") as f:
            first = f.read(64).split(None, 1)[0]
    except (OSError, IndexError):
        return 0
    digits = first.split(b".", 1)[0]
    return int(digits) if digits.isdigit() else 0


def too_loaded(limit: int, path: str = "/proc/loadavg") -> bool:
    """True when ``limit`` is set (not 999) and the load average exceeds it."""
    if limit >= NO_LIMIT or limit <= 0:
        return False
    return current(path) > limit


class LoadCache:
    """The daemon parent checks every connection: read /proc/loadavg at most once a second."""

    def __init__(self, path: str = "/proc/loadavg", ttl: float = 1.0) -> None:
        self.path = path
        self.ttl = ttl
        self._value = 0
        self._when = -1e9

    def value(self) -> int:
        now = time.monotonic()
        if now - self._when >= self.ttl:
            self._value = current(self.path)
            self._when = now
        return self._value

    def too_loaded(self, limit: int) -> bool:
        if limit >= NO_LIMIT or limit <= 0:
            return False
        return self.value() > limit
