"""The daemon's pidfile and the "kill previous" step (protocol.md §3.4, §3.4.1).

3.0.1 (``lib/killprev.c``) sends SIGTERM to whatever pid the file names.  A
stale file can name an unrelated process that got the pid later, so we only
signal a process whose command line shows it is an smtpserver (ours or the C
one).  The file is written atomically (temporary name, rename) and removed on
a clean exit only while it still names us, so a successor's file survives.

Path: ``-I`` is relative to POSTOFFICE as in 3.0.1; an absolute ``-I`` is
honoured (3.0.1 prefixes POSTOFFICE even then: a documented deviation).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TextIO

DEFAULT_NAME = ".pid.smtpserver"

# argv[0] (or the script run by an interpreter) names that count as an smtpserver
_PROGRAM_NAMES = ("smtpserver", "zmailer-smtpserver")
_MODULE_PREFIX = "zmailer_smtpd"


def pidfile_path(postoffice: str, name: str | None) -> str:
    """Where the pidfile lives: ``name`` under POSTOFFICE unless it is absolute."""
    name = name or DEFAULT_NAME
    if os.path.isabs(name):
        return name
    return os.path.join(postoffice, name)


def parse_pid(data: bytes) -> int | None:
    """The first decimal integer of the file, as fscanf("%d") would read it."""
    text = data.lstrip(b" \t\r\n\v\f")
    i = 0
    if text[:1] in (b"+", b"-"):
        i = 1
    j = i
    while j < len(text) and 0x30 <= text[j] <= 0x39:
        j += 1
    if j == i:
        return None
    return int(text[:j])


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process from /proc, or None when there is none."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None  # zombie or kernel thread
    return [a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")]


def is_smtpserver(pid: int) -> bool:
    """True when ``pid`` runs an smtpserver: its program (or interpreted script) says so."""
    argv = process_cmdline(pid)
    if not argv:
        return False
    candidates = [argv[0]]
    first = os.path.basename(argv[0])
    if first.startswith("python") and len(argv) > 1:
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2].startswith(_MODULE_PREFIX)
        candidates.append(argv[1])
    return any(_looks_like_smtpserver(os.path.basename(c)) for c in candidates)


def _looks_like_smtpserver(base: str) -> bool:
    """A copy installed under another name reads another config (§2.1); accept *smtpserver*."""
    return any(n in base for n in _PROGRAM_NAMES)


def pid_alive(pid: int) -> bool:
    """Whether the process still exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the first field after the parenthesised command name
    rest = stat[stat.rfind(b")") + 2 :]
    return not rest.startswith((b"Z", b"X"))


class PidFile:
    """The pidfile of one daemon (gunicorn's pidfile.py is the model)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid: int | None = None

    def read(self) -> int | None:
        """The pid the file names, or None (no file, unreadable, not a number)."""
        try:
            with open(self.path, "rb") as f:
                return parse_pid(f.read(64))
        except OSError:
            return None

    def kill_previous(
        self,
        wait: float = 5.0,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> int | None:
        """SIGTERM the daemon the file names (§3.4.1); return its pid if it was signalled.

        Waits up to ``wait`` seconds for it to exit (3.0.1 sleeps 5 s
        unconditionally) so that its listeners are gone before we bind.
        """
        out = out or sys.stdout
        err = err or sys.stderr
        try:
            with open(self.path, "rb") as f:
                data = f.read(64)
        except OSError:
            return None
        pid = parse_pid(data)
        if pid is None:
            err.write(f"couln't make sense of contents of {self.path}!\n")
            return None
        if pid == os.getpid():
            out.write("was about to commit suicide\n")
            return None
        if pid <= 1:
            err.write(f"pidfile {self.path} names pid {pid}; not killed\n")
            return None
        if not is_smtpserver(pid):
            if pid_alive(pid):
                err.write(
                    f"pidfile {self.path} names pid {pid}, which is not an smtpserver; not killed\n"
                )
            return None
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return None
        out.write(f"killed previous daemon, pid = {pid}\n")
        out.flush()
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pid

    def write(self, pid: int) -> bool:
        """Atomically make the file hold ``pid``; False when it could not be written."""
        directory = os.path.dirname(self.path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError:
            return False
        try:
            try:
                data = f"{pid}\n".encode()
                if os.write(fd, data) != len(data):
                    raise OSError("short write")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.pid = pid
        return True

    def remove(self) -> None:
        """Unlink the file, but only while it still names us."""
        if self.pid is None:
            return
        if self.read() == self.pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.pid = None
