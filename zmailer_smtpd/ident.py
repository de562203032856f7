"""RFC 1413 ident lookup (`-a`, `Z-IDENT`; interfaces.md §6.1).

Why: 3.0.1 records who the client's host says owns the connection, in the
session log, the greeting (`%I` -> `+IDENT`), `identinfo` envelope records
and (with `rcvd-ident`) the Received trace.  The lookup never fails the
session: errors are stored as the 3.0.1 error strings.

Session call sequence: in daemon mode with `-a`, after accept and reverse
DNS, before the greeting:

    ctx.ident = ident.lookup(local_addr, local_port, peer_addr, peer_port)
    # -> str: the user id, or "NO-IDENT-SERVICE", "TIMEDOUT", "IDENT-NONSENSE", ...
Z-IDENT (always available): reply `200 RFC1413 identuser='<value>'`, no ESC.
Not queried: `IDENT-NOT-QUERIED [port <rport>]`; `-i` mode: `uid#<uid>@localhost`.
"""

from __future__ import annotations

import errno
import re
import select
import socket
import time

IDENT_PORT = 113
MAXHOSTNAMELEN = 64

_ANS_RE = re.compile(rb"^([0-9]+),([0-9]+):USERID:[^:]*:(.*)$", re.DOTALL)


def parse_answer(raw: bytes, rport: int, lport: int) -> str:
    """§6.1 answer parsing: blanks and CR removed, ports must match."""
    data = raw.split(b"\n", 1)[0]
    for ch in (b" ", b"\t", b"\r"):
        data = data.replace(ch, b"")
    m = _ANS_RE.match(data)
    if not m:
        return "IDENT-NONSENSE"
    if int(m.group(1)) != rport or int(m.group(2)) != lport:
        return "IDENT-NONSENSE2"
    user = m.group(3)
    # Never let control bytes through into logs, envelope or Received.
    user = bytes(b for b in user if 0x21 <= b <= 0x7E)
    return user.decode("ascii")[:MAXHOSTNAMELEN]


def not_queried(rport: int) -> str:
    return f"IDENT-NOT-QUERIED [port {rport}]"


def lookup(
    local_addr: str,
    local_port: int,
    peer_addr: str,
    peer_port: int,
    timeout: float = 10.0,
    connect_timeout: float = 5.0,
    port: int = IDENT_PORT,
) -> str:
    """Ask the client's ident server who owns peer_port -> local_port."""
    deadline = time.monotonic() + timeout
    try:
        infos = socket.getaddrinfo(
            peer_addr, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):
        return "Unknown_type_of_remote_system_address!"
    fam, typ, proto, _, sa = infos[0]
    try:
        s = socket.socket(fam, typ, proto)
    except OSError:
        return "SOCKFAULT1"
    try:
        if local_addr and local_addr not in ("0.0.0.0", "::"):
            try:
                s.bind((local_addr, 0))
            except OSError:
                pass
        s.setblocking(False)
        rc = s.connect_ex(sa)
        if rc not in (0, errno.EINPROGRESS):
            return "NO-IDENT-SERVICE"
        wait = min(connect_timeout, deadline - time.monotonic())
        try:
            _, w, _ = select.select([], [s], [], max(wait, 0))
        except OSError:
            return "SOCKSELERR"
        if not w:
            return "TIMEDOUT"
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return "NO-IDENT-SERVICE"
        query = f"{peer_port} , {local_port}\r\n".encode()
        try:
            s.send(query)
        except OSError as e:
            if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE):
                return "NO-IDENT-SERVICE[2]"
            return f"SOCKWRITE-{e.errno}"
        buf = b""
        while b"\n" not in buf and len(buf) < 1024:
            left = deadline - time.monotonic()
            if left <= 0:
                return "TIMEDOUT2"
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return "TIMEDOUT2"
            try:
                chunk = s.recv(1024)
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                    return "NO-IDENT-SERVICE[2]"
                return "SOCKREAD"
            if not chunk:
                break
            buf += chunk
        if not buf:
            return "SOCKREAD"
        return parse_answer(buf, peer_port, local_port)
    finally:
        s.close()
