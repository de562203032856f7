"""In-memory SMTP sessions for transcript tests (protocol.md §8, spool.md §14).

``ScriptTransport`` plays a client that sends its chunks one at a time: chunk
k+1 becomes readable only after the server has written something once chunk k
was delivered (a client waiting for a reply), or when the server blocks for
input (a client that sends anyway).  Several commands in one chunk are a
pipelined TCP segment.  ``Harness`` builds fixture F0 (mx.example.org,
VersionNumb 3.0.1 #1, client 192.0.2.10:40000 without PTR, fixed clock,
a neutral policy, a real spool directory) and runs whole sessions.
"""

from __future__ import annotations

import calendar
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spoolutil import make_postoffice, mask_spoolid, spool_files

from zmailer_smtpd import config as zconfig
from zmailer_smtpd import received
from zmailer_smtpd.session import NeutralPolicy, PolicyAnswer, Session, SessionContext
from zmailer_smtpd.sessionlog import SessionLog
from zmailer_smtpd.spool import Spool
from zmailer_smtpd.stream import SmtpStream
from zmailer_smtpd.zenv import ZEnv

F0_CONFIG = b"PARAM policydb btree /var/db/smtp-policy\n*       ve\n"
F0_CLOCK = float(calendar.timegm((2025, 1, 6, 10, 0, 0, 0, 0, 0)))
F0_GREETING = b"220 mx.example.org ZMailer Server 3.0.1 #1 ESMTP ready at Mon, 6 Jan 2025 10:00:00 +0000\r\n"
TV02 = (
    b"250-mx.example.org Hello client.example.net\r\n"
    b"250-SIZE 0\r\n"
    b"250-8BITMIME\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-DSN\r\n"
    b"250-X-RCPTLIMIT 10000\r\n"
    b"250-ETRN\r\n"
    b"250 HELP\r\n"
)


class ScriptTransport:
    """A lock-step client: see the module docstring."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = [c for c in chunks]
        self.next = 0  # index of the next chunk to deliver
        self.released = 0  # chunks[:released] may be delivered
        self.sent_since_delivery = False
        self.sends: list[bytes] = []
        self.closed_reads = 0

    def fileno(self) -> int:
        return -1

    def _undelivered_released(self) -> bool:
        return self.next < self.released

    def wait_readable(self, timeout: float | None) -> bool:
        if self._undelivered_released() or self.next >= len(self.chunks):
            return True
        if timeout == 0:
            return False
        self.released = self.next + 1  # the client sends without waiting
        return True

    def recv(self, n: int) -> bytes:
        if self.next >= len(self.chunks):
            self.closed_reads += 1
            assert self.closed_reads < 1000, "session keeps reading after EOF"
            return b""
        if not self._undelivered_released():
            self.released = self.next + 1
        chunk = self.chunks[self.next]
        if len(chunk) > n:
            self.chunks[self.next] = chunk[n:]
            return chunk[:n]
        self.next += 1
        self.sent_since_delivery = False
        return chunk

    def send(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        if self.next >= self.released and self.released < len(self.chunks):
            self.released = self.next + 1
        return len(data)

    @property
    def output(self) -> bytes:
        return b"".join(self.sends)


@dataclass
class Result:
    output: bytes
    sends: list[bytes]
    log: list[bytes]
    session: Session
    postoffice: str
    rc: int

    def files(self) -> dict[str, bytes]:
        return {k: v for k, v in spool_files(self.postoffice).items() if not k.startswith(".")}

    @property
    def masked(self) -> bytes:
        return mask_spoolid(self.output)


@dataclass
class Harness:
    """Fixture F0, adjustable per test before ``run()``."""

    tmp: Path
    config_text: bytes = F0_CONFIG
    values: dict[str, Any] = field(default_factory=dict)  # Settings overrides by keyword
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = "daemon"
    network: bool = True
    peer_addr: str | None = "192.0.2.10"
    peer_port: int = 40000
    rhostname: bytes | None = None
    myhostname: bytes = b"mx.example.org"
    policy: Any = field(default_factory=NeutralPolicy)
    rhost_flags: Any = None
    zenv_extra: dict[str, str] = field(default_factory=dict)
    ctx_extra: dict[str, Any] = field(default_factory=dict)
    slept: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.postoffice = make_postoffice(self.tmp / "po")

    def zenv(self) -> ZEnv:
        z = {"POSTOFFICE": self.postoffice, **self.zenv_extra}
        return ZEnv.from_bytes("".join(f"{k}={v}\n" for k, v in z.items()).encode())

    def context(self) -> SessionContext:
        zenv = self.zenv()
        cfg = zconfig.config_from_bytes(self.config_text, zenv)
        settings = cfg.last_group()
        for k, v in self.values.items():
            settings.set(k, v)
        log = SessionLog(None, pid=12345, clock=lambda: F0_CLOCK)
        log.lines = []
        log.syslog_on = False
        spool = Spool(self.postoffice, zenv, hostname="mx.example.org", pid_fn=lambda: 12345)
        ctx = SessionContext(
            options=dict(self.options),
            config=cfg,
            settings=settings,
            zenv=zenv,
            mode=self.mode,
            network=self.network,
            peer_addr=self.peer_addr,
            peer_port=self.peer_port,
            local_port=25,
            log=log,
            policy=self.policy,
            spool=spool,
            myhostname=self.myhostname,
            rhostname=self.rhostname,
            rhost_flags=self.rhost_flags,
            clock=lambda: F0_CLOCK,
            sleep=self.slept.append,
            proctitles=False,
        )
        for k, v in self.ctx_extra.items():
            setattr(ctx, k, v)
        return ctx

    def run(self, *chunks: bytes, transport: Any = None) -> Result:
        ctx = self.context()
        t = transport if transport is not None else ScriptTransport(list(chunks))
        stream = SmtpStream(t, cmd_timeout=5, data_timeout=5)
        sess = Session(ctx, stream)
        rc = sess.run()
        out = t.output if hasattr(t, "output") else b""
        sends = t.sends if hasattr(t, "sends") else []
        return Result(out, sends, ctx.log.lines, sess, self.postoffice, rc)


def crlf(*lines: str | bytes) -> bytes:
    """Reply or command lines joined with CR LF (each line gets one)."""
    out = b""
    for ln in lines:
        out += (ln.encode("latin-1") if isinstance(ln, str) else ln) + b"\r\n"
    return out


def cmds(*lines: str | bytes) -> list[bytes]:
    """One chunk per command line (a client waiting for each reply)."""
    return [crlf(x) for x in lines]


class ScriptedPolicy(NeutralPolicy):
    """A policy with fixed answers per address (tests of the policy replies)."""

    def __init__(self, rcpt: dict[bytes, PolicyAnswer] | None = None,
                 mail: dict[bytes, PolicyAnswer] | None = None,
                 connect: PolicyAnswer | None = None) -> None:
        self._rcpt = rcpt or {}
        self._mail = mail or {}
        self._connect = connect or PolicyAnswer()

    def connect(self, addr: str | None, rhostname: bytes) -> PolicyAnswer:
        return self._connect

    def mail(self, addr: bytes) -> PolicyAnswer:
        return self._mail.get(addr, PolicyAnswer())

    def rcpt(self, addr: bytes) -> PolicyAnswer:
        for k, v in self._rcpt.items():
            if addr.lower().endswith(k):
                return v
        return PolicyAnswer()


def after_greeting(out: bytes) -> bytes:
    """The transcript without the TV-01 greeting (which must be there)."""
    assert out.startswith(F0_GREETING), out[:200]
    return out[len(F0_GREETING):]


def utc_tz() -> None:
    """%T and log dates use local time; the vectors are written for UTC."""
    os.environ["TZ"] = "UTC"
    time.tzset()


__all__ = ["F0_GREETING", "TV02", "Harness", "Result", "ScriptTransport", "ScriptedPolicy", "after_greeting", "cmds",
           "crlf", "received", "utc_tz"]
