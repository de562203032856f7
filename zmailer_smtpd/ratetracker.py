"""The per-client message counter behind ``ratelimitmsgs`` (policy.md §9.3).

3.0.1 kept this counter in a rate-tracker sub-daemon; this implementation
has no sub-daemons (spec/README.md), so the daemon parent owns the counter
and serves it from its accept loop.  The session children of one daemon ask
it over a Unix datagram socket in the abstract namespace (nothing on disk to
clean up), one short exchange per question:

    child  → parent   ``MSGS 4:7f000001 10,20 MAIL 0,0``   (query at MAIL FROM)
    parent → child    ``200 3``                            (messages in the window)
    child  → parent   ``RCPT 4:7f000001 10,20 DATA 1,2``   (an accepted message)
    child  → parent   ``EXCESS 4:7f000001 10,20 MAIL 1,0`` (a refusal, statistics)

The window is 3.0.1's: eight slots of 450 s (one hour, sliding by slot).
The parent never blocks: it reads what is queued and answers with
``MSG_DONTWAIT``; a child that gets no answer within its short timeout
treats the tracker as unreachable, and then nothing is limited.  Only
senders with the daemon's own user id (or root) are answered.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

SLOTCOUNT = 8
SLOTINTERVAL = 3600 // SLOTCOUNT  # seconds per slot (3.0.1 subdaemon-trk.c)
CLIENT_TIMEOUT = 2.0  # seconds a child waits for the parent's answer
MAX_DATAGRAM = 512
SERVE_BATCH = 64  # questions answered per wake-up of the parent loop
_UCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid
_LABEL = re.compile(rb"^(4:[0-9a-fA-F]{8}|6:[0-9a-fA-F]{32})$")
_INT = re.compile(rb"^\s*([+-]?\d+)")


def rate_label(ip: str) -> str:
    """§6.2 step 1: ``4:`` + 8 lower-case hex digits, or ``6:`` + 32 for IPv6."""
    import ipaddress

    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return ("4:" if a.version == 4 else "6:") + a.packed.hex()


def _atoi(b: bytes) -> int:
    """C ``atoi``: leading blanks, optional sign, digits; anything else is 0."""
    m = _INT.match(b)
    return int(m.group(1)) if m else 0


class _Entry:
    __slots__ = ("slots", "rcpts", "excesses", "afails", "age")

    def __init__(self) -> None:
        self.slots = [0] * SLOTCOUNT
        self.rcpts = 0
        self.excesses = 0
        self.afails = 0  # failed AUTH attempts in the current hour (3.0.1's afails)
        self.age = 0  # slot changes seen; afails start again after SLOTCOUNT of them


class RateTable:
    """The counting itself: per label, eight time slots summed over the window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.index = 0
        self.next_change = clock() + SLOTINTERVAL
        self.entries: dict[str, _Entry] = {}

    def _rotate(self) -> None:
        """Move to the next slot for every interval passed; forget all-zero entries."""
        now = self.clock()
        steps = 0
        while now >= self.next_change and steps < SLOTCOUNT:
            self.index = (self.index + 1) % SLOTCOUNT
            for e in self.entries.values():
                e.slots[self.index] = 0
                e.age += 1
                if e.age > SLOTCOUNT:
                    e.afails = e.age = 0
            self.next_change += SLOTINTERVAL
            steps += 1
        if now >= self.next_change:  # idle for longer than the whole window
            self.next_change = now + SLOTINTERVAL
        if steps:
            for k in [k for k, e in self.entries.items()
                      if not any(e.slots) and not e.excesses and not e.afails]:
                del self.entries[k]

    def count(self, label: str, incr: int) -> int:
        """Add ``incr`` messages to the current slot; the total over the window."""
        self._rotate()
        e = self.entries.get(label)
        if e is None:
            if incr == 0:
                return 0
            e = self.entries[label] = _Entry()
        e.slots[self.index] += incr
        return sum(e.slots)

    def answer(self, line: bytes) -> bytes:
        """One protocol line in, one reply line out (3.0.1's text protocol)."""
        words = line.split()
        words += [b""] * (5 - len(words))
        action, label, _limit, _what, counts = words[:5]
        first, _, second = counts.partition(b",")
        n, n2 = _atoi(first), _atoi(second)
        if not _LABEL.match(label) or action not in (b"MSGS", b"RCPT", b"EXCESS", b"AUTHF"):
            return b"500 bad input; unsupported mode; act='%s', ip='%s'\n" % (action[:8], label[:40])
        key = label.decode("ascii").lower()
        if action == b"MSGS":
            return b"200 %d\n" % self.count(key, n)
        if action == b"RCPT":  # an accepted message with its recipients
            total = self.count(key, 1 if n > 0 else 0)
            e = self.entries.get(key)
            if e is not None:
                e.rcpts += max(n2, 0)
            return b"200 %d\n" % total
        self.count(key, 0)
        e = self.entries.setdefault(key, _Entry())
        if action == b"AUTHF":  # failed AUTH attempts this hour (interfaces.md §3.3)
            e.afails += max(n, 0)
            return b"200 %d\n" % e.afails
        e.excesses += 1
        return b"200 %d\n" % e.excesses


class TrackerServer:
    """The parent's end: a non-blocking abstract datagram socket and its table."""

    def __init__(self, name: bytes | None = None, table: RateTable | None = None) -> None:
        self.address = name or b"\0zmailer-smtpd-ratetracker-" + secrets.token_hex(8).encode()
        self.table = table or RateTable()
        self.allowed = {0, os.geteuid()}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.bind(self.address)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def serve(self, batch: int = SERVE_BATCH) -> int:
        """Answer what is queued now (at most ``batch``); never blocks.  Returns the count."""
        done = 0
        while done < batch:
            try:
                data, anc, _flags, peer = self.sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            done += 1
            uid = -1
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(cdata) >= _UCRED.size:
                    uid = _UCRED.unpack_from(cdata)[1]
            if uid not in self.allowed or not peer:
                continue
            reply = self.table.answer(data.split(b"\n", 1)[0])
            try:
                self.sock.sendto(reply, socket.MSG_DONTWAIT, peer)
            except OSError:
                pass  # the child gave up or its queue is full: it treats us as unreachable
        return done

    def close(self) -> None:
        self.sock.close()


def open_server(note: Callable[[bytes], Any] | None = None) -> TrackerServer | None:
    """The daemon parent's tracker, or None (then nothing is limited) when it cannot be made."""
    try:
        return TrackerServer()
    except OSError as e:
        if note is not None:
            note(b"rate tracker not available: %s" % str(e).encode(errors="replace"))
        return None


class TrackerClient:
    """A session child's end: one fresh socket per question, bounded wait."""

    def __init__(self, address: bytes, timeout: float = CLIENT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout

    def ask(self, line: str) -> str | None:
        """Send one question; its reply line, or None when the tracker does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.bind("")  # autobind: an abstract reply address of our own
                s.settimeout(self.timeout)
                s.sendto(line.encode("latin-1") + b"\n", self.address)
                data = s.recv(MAX_DATAGRAM)
        except OSError:
            return None
        return data.split(b"\n", 1)[0].decode("latin-1", "replace")

    def count(self, line: str) -> int | None:
        """The first number of a reply (``%*s %d``): 0 if unparsable, None if unreachable."""
        reply = self.ask(line)
        if reply is None:
            return None
        words = reply.split()
        if len(words) < 2:
            return 0
        return _atoi(words[1].encode())
