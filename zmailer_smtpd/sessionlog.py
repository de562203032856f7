"""The ``-l`` session log and syslog (protocol.md §6.1, §6.2).

Each line is ``<tag:7><dt:%04d><kind>\\t<text>\\n``, written and flushed at
once, so a log read while the session runs is complete up to now.  ``kind``
is ``r`` (received line), ``w`` (reply line) or ``#`` (internal note).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdefghijklmnopqrstuvwxyz4567890-="
MASTER_TAG = b"0000000"

try:  # syslog is POSIX-only; tests never need it
    import syslog as _syslog
except ImportError:  # pragma: no cover
    _syslog = None  # type: ignore[assignment]


def make_tag(now: float, pid: int) -> bytes:
    """The 7-character session tag: mday-1, hour, min, sec (UTC), then the pid."""
    t = time.gmtime(int(now))
    vals = (t.tm_mday - 1, t.tm_hour, t.tm_min, t.tm_sec, (pid >> 12) & 63, (pid >> 6) & 63, pid & 63)
    return bytes(ALPHABET[v & 63] for v in vals)


_last_date: tuple[object, bytes] = ((), b"")  # (second and zone, text): see rfc822_date


def rfc822_date(now: float) -> bytes:
    """``Mon, 6 Jan 2025 10:00:00 +0000`` in local time, day not padded (§4.2.1).

    The text of the last second asked is kept: the greeting, the Received
    header and the log ask for the same second several times per session,
    and glibc's localtime() checks /etc/localtime each time.
    """
    global _last_date
    key = (int(now), time.tzname, time.timezone)
    if _last_date[0] == key:
        return _last_date[1]
    text = _rfc822_date(now)
    _last_date = (key, text)
    return text


def _rfc822_date(now: float) -> bytes:
    t = time.localtime(int(now))
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off) // 60
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[t.tm_wday]
    mon = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return (
        f"{day}, {t.tm_mday} {mon[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}"
    ).encode("ascii")


class SessionLog:
    """One process's view of the session log (and the syslog copy)."""

    def __init__(
        self,
        path: str | None = None,
        *,
        use_syslog: bool = False,
        pid: int | None = None,
        clock: Callable[[], float] = time.time,
        master: bool = False,
    ) -> None:
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        self.master = master
        self.start = clock()
        self.tag = MASTER_TAG if master else make_tag(self.start, self.pid)
        self.fd: int | None = None
        self.use_syslog = use_syslog
        self.lines: list[bytes] | None = None  # set to [] to keep a copy (tests)
        self.syslog_on = True  # the always-on events; tests switch them off
        if path and path.upper() != "SYSLOG":
            try:
                self.fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY | os.O_CLOEXEC, 0o644)
            except OSError:
                self.fd = None  # silent, as 3.0.1
        elif path and path.upper() == "SYSLOG":
            self.use_syslog = True
        if self.use_syslog and _syslog is not None:
            _syslog.openlog("smtpserver", _syslog.LOG_PID, _syslog.LOG_MAIL)

    @property
    def active(self) -> bool:
        return self.fd is not None or self.use_syslog or self.lines is not None

    def _prefix(self) -> bytes:
        dt = 0 if self.master else int(self.clock() - self.start)
        return self.tag + b"%04d" % dt

    def _emit(self, kind: bytes, text: bytes) -> None:
        if not self.active:
            return
        text = text.replace(b"\n", b" ") if kind != b"#" else text.rstrip(b"\n")
        pre = self._prefix()
        line = pre + kind + b"\t" + text + b"\n"
        if self.lines is not None:
            self.lines.append(line)
        if self.fd is not None:
            try:
                os.write(self.fd, line)
            except OSError:
                pass
        if self.use_syslog and _syslog is not None:
            _syslog.syslog(_syslog.LOG_DEBUG, (pre + b" " + kind + b" " + text).decode("latin-1"))

    def received(self, line: bytes) -> None:
        """A command line as the server saw it (after trimming, up to a NUL)."""
        self._emit(b"r", line)

    def sent(self, line: bytes) -> None:
        """One reply line without its CR LF."""
        self._emit(b"w", line)

    def note(self, text: bytes) -> None:
        """An internal note, formatted like a code-0 reply (``000-…``)."""
        self._emit(b"#", b"000-" + text)

    def raw(self, text: bytes) -> None:
        """A note written without the ``000-`` prefix (policy results, …)."""
        self._emit(b"#", text)

    def syslog(self, priority: int, text: bytes) -> None:
        """An always-on syslog event (unknown command, aborted, accepted, …)."""
        if _syslog is None or not self.syslog_on:
            return
        try:
            _syslog.syslog(priority, text.decode("latin-1"))
        except Exception:  # syslog must never break a session
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


LOG_WARNING = getattr(_syslog, "LOG_WARNING", 4)
LOG_ERR = getattr(_syslog, "LOG_ERR", 3)
LOG_EMERG = getattr(_syslog, "LOG_EMERG", 0)
LOG_INFO = getattr(_syslog, "LOG_INFO", 6)
