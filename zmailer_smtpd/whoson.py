"""whoson lookup (`-w`, `rcvd-whoson`; interfaces.md §6.2).

Why: a client address logged in through a whoson server (POP-before-SMTP)
may be trusted for relaying (`trust-whoson +`).  3.0.1 calls libwhoson's
`wso_query()`; we speak its wire protocol ourselves (decision Q18): TCP or
UDP to a configured server (default 127.0.0.1:9876),

    >  "QUERY <addr>\r\n\r\n"
    <  "+<data>\r\n\r\n" (logged in) | "-<text>\r\n\r\n" (not) | "*<error>\r\n\r\n"

Session call sequence: daemon session start with `-w`, network connections:

    w = whoson.lookup(peer_addr_without_brackets)   # "::ffff:a.b.c.d" for mapped (T-31)
    w.rc == 0 -> validated (trust-whoson applies); only a real lookup validates (T-33)
    envelope comment / rcvdfrom: ` whoson: "<w.trace>"`; session log: w.stored
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from zmailer_smtpd import helper

DEFAULT_SERVER = ("127.0.0.1", 9876)


@dataclass(frozen=True)
class WhosonResult:
    """rc 0 = logged in (data = user data), 1 = not logged in, -1 = error."""

    rc: int
    data: str

    @property
    def validated(self) -> bool:
        return self.rc == 0

    @property
    def stored(self) -> str:
        """The value 3.0.1 keeps: user data on 0, `-unregistered-` otherwise."""
        return self.data if self.rc == 0 else "-unregistered-"

    @property
    def trace(self) -> str:
        """The ` whoson: "<x>"` value of the trace (§6.2)."""
        if self.rc == 0:
            return self.data
        return "-unregistered-" if self.rc == 1 else "-unavailable-"


def parse_reply(raw: bytes) -> WhosonResult:
    """Map a whoson reply to a result; data is cleaned of control bytes."""
    line = raw.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    body = bytes(b for b in line[1:] if 0x20 <= b <= 0x7E and b != 0x22)
    text = body.decode("ascii")[:256]
    if line.startswith(b"+"):
        return WhosonResult(0, text)
    if line.startswith(b"-"):
        return WhosonResult(1, text)
    return WhosonResult(-1, text)


def lookup(
    addr: str,
    server: tuple[str, int] = DEFAULT_SERVER,
    timeout: float = 5.0,
    transport: str = "tcp",
) -> WhosonResult:
    """Query the whoson server about `addr`; never raises."""
    try:
        helper.check_field(addr.encode())
    except (helper.FieldError, UnicodeError):
        return WhosonResult(-1, "bad address")
    query = b"QUERY " + addr.encode() + b"\r\n\r\n"
    deadline = time.monotonic() + timeout
    try:
        infos = socket.getaddrinfo(
            server[0], server[1], 0,
            socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM,
            0, socket.AI_NUMERICHOST,
        )
        fam, typ, proto, _, sa = infos[0]
        with socket.socket(fam, typ, proto) as s:
            s.settimeout(timeout)
            s.connect(sa)
            s.sendall(query)
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 2048:
                left = deadline - time.monotonic()
                if left <= 0:
                    return WhosonResult(-1, "timeout")
                s.settimeout(left)
                chunk = s.recv(2048)
                if not chunk:
                    break
                buf += chunk
                if transport == "udp":
                    break
    except (OSError, UnicodeError) as e:
        return WhosonResult(-1, str(e))
    if not buf:
        return WhosonResult(-1, "no answer")
    return parse_reply(buf)
