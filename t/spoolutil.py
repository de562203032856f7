"""Helpers for tests that look at spool files: build a POSTOFFICE, read it, mask
what varies (inode names, hash letters, client ports, spool ids) so files compare
byte for byte with spool.md §14, and receive the router's NEW datagram.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterable
from pathlib import Path

SPOOLID_RE = re.compile(rb"S\d+[A-Za-z0-9=\-]{8}(?:[A-Za-z0-9=\-]{5})?")
_RPORT_RE = re.compile(rb"(\]):\d+ ")


def make_postoffice(
    root: Path | str,
    *,
    routerdirs: Iterable[str] = (),
    hashed: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> str:
    """Create public/, router/, freezer/ (+ the named dirs); ``hashed`` dirs get A..Z."""
    po = Path(root)
    for d in ("public", "router", "freezer", "postman", *routerdirs, *extra):
        (po / d).mkdir(parents=True, exist_ok=True)
    for d in hashed:
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            (po / d / c).mkdir(parents=True, exist_ok=True)
    return str(po)


def spool_files(postoffice: str | Path) -> dict[str, bytes]:
    """Every regular file under POSTOFFICE (relative path -> bytes); sockets skipped."""
    out: dict[str, bytes] = {}
    base = Path(postoffice)
    for dirpath, _dirs, files in os.walk(base):
        for f in files:
            p = Path(dirpath) / f
            if stat.S_ISREG(p.lstat().st_mode):
                out[str(p.relative_to(base))] = p.read_bytes()
    return out


def mask_name(rel: str) -> str:
    """Mask what varies in a spool path.

    ``router4/W/2163014`` -> ``router4/<X>/<ino>``; ``freezer/12policy-1`` ->
    ``freezer/<ino>policy-1``; ``public/mx.example:4242b`` -> ``public/<host>:<pid>``.
    """
    m = re.fullmatch(r"public/[^/:]{1,19}:\d+[a-z]?", rel)
    if m:
        return "public/<host>:<pid>"
    rel = re.sub(r"/[A-Z]/(\d+)", r"/<X>/\1", rel)
    return re.sub(r"(^|/)\d+", r"\1<ino>", rel)


def mask_content(data: bytes) -> bytes:
    """Replace the client port of ``rcvdfrom``/``comment`` lines with ``<rport>``."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if line == b"env-end":
            break
        if line.startswith((b"rcvdfrom ", b"comment ")):
            lines[i] = _RPORT_RE.sub(rb"\1:<rport> ", line, count=1)
    return b"\n".join(lines)


def mask_spoolid(text: bytes) -> bytes:
    return SPOOLID_RE.sub(b"<spoolid>", text)


def listing(text: str) -> bytes:
    """A spec listing (one record/line per text line) as file bytes, every line LF-ended."""
    return "".join(line + "\n" for line in text.strip("\n").split("\n")).encode("utf-8")


def split_spool(data: bytes) -> tuple[list[tuple[bytes, bytes | None]], bytes]:
    """(envelope records, message) as the router would split them (§6.1)."""
    head, sep, msg = data.partition(b"env-end\n")
    assert sep, "no env-end record"
    recs: list[tuple[bytes, bytes | None]] = []
    for line in head.split(b"\n")[:-1]:
        kw, sp, val = line.partition(b" ")
        recs.append((kw, val if sp else None))
    return recs, msg


class NotifySocket:
    """The router's end of ``.router.notify``: a bound AF_UNIX datagram socket."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def drain(self) -> list[bytes]:
        """Datagrams already queued (the sender is synchronous: no waiting needed)."""
        got = []
        while True:
            try:
                got.append(self.sock.recv(2048))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# spool.md §14.2 (vector 2), shared by the writer-level and the session-level tests:
# the DATA input (its head, the bare line ends 3.0.1 stored, the end) and the stored
# file up to its first body line.
V2_RAW_HEAD = (
    b"From alice Mon Jan  1 00:00:00 2024\r\n"
    b"Received: from x by y;\r\n"
    b"  Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Precedence: bulk\r\n"
    b"Subject: caf\xc3\xa9\r\n"
    b"\r\n"
    b".leading dot\r\n"
)
V2_RAW_BARE = b"bare\nLF line\r\nlone\rCR\r\nend-with-cr\r\r\n"
V2_RAW_END = b"\r\n.\r\n"
V2_STORED_HEAD = (
    b"external\n"
    b'rcvdfrom localhost ([127.0.0.1]:<rport> "EHLO [127.0.0.1]" rhost-flags-OK-OK-OK-FAIL)\n'
    b'comment localhost [127.0.0.1]:<rport> "EHLO [127.0.0.1]" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)\n'
    b"bodytype 8BITMIME\n"
    b"with ESMTP\n"
    b"channel error\n"
    b"envid QQ+2B123\n"
    b"notaryret hdrs\n"
    b"todsn NOTIFY=success,failure ORCPT=rfc822;Bob+40example.net INRCPT=rfc822;bob@example.net INFROM=rfc822;\n"
    b"to <bob@example.net>\n"
    b'todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;"carol+20smith"@example.net INRCPT=rfc822;"carol+20smith"@example.net INFROM=rfc822;\n'
    b'to <"carol smith"@example.net>\n'
    b"todsn NOTIFY=NEVER ORCPT=rfc822;dave@example.net INRCPT=rfc822;dave@example.net INFROM=rfc822;\n"
    b"to <dave@example.net>\n"
    b"env-end\n"
    b"Received: from x by y;\n"
    b"  Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"Precedence: bulk\n"
    b"Subject: caf\xc3\xa9\n"
    b"\n"
    b"leading dot\n"
)


# The stored files of spool.md §13's vectors 1, 4 and 5 (<rport> stands for the port):
# the writer-level tests (test_spool_vectors) and the session-level ones
# (test_session_spool) must produce the same bytes.
V1_FILE = listing("""
external
rcvdfrom localhost ([127.0.0.1]:<rport> "EHLO client.example.org" rhost-flags-OK-OK-OK-FAIL)
comment localhost [127.0.0.1]:<rport> "EHLO client.example.org" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)
with ESMTP
from <alice@example.org>
todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.net INRCPT=rfc822;bob@example.net INFROM=rfc822;alice@example.org
to <bob@example.net>
env-end
Subject: test
From: alice@example.org

Hello
.dot line
""")
V4_FILE = listing("""
external
comment smtp-auth: "joe"
rcvdfrom localhost ([127.0.0.1]:<rport> "EHLO client.example.org" smtp-auth: "joe" rhost-flags-OK-OK-OK-FAIL)
comment localhost [127.0.0.1]:<rport> "EHLO client.example.org" smtp-auth: "joe" TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)
bodytype 8BITMIME
with ESMTPA
from <joe@example.org>
todsn NOTIFY=NEVER ORCPT=rfc822;bob@example.net INRCPT=rfc822;bob@example.net INFROM=rfc822;joe@example.org
to <bob@example.net>
env-end
From: joe@example.org
Subject: chunked

.leading dot kept
body
""")
V5_FILE = listing("""
external
rcvdfrom localhost ([127.0.0.1]:<rport> "EHLO client.example.org" rhost-flags-OK-OK-OK-FAIL)
comment localhost [127.0.0.1]:<rport> "EHLO client.example.org" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)
with ESMTP
from <alice@example.org>
comment policytest() reported freeze state
todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.net INRCPT=rfc822;bob@example.net INFROM=rfc822;alice@example.org
to <bob@example.net>
comment policytest() reported freeze state 1
todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;spam@frozen.example INRCPT=rfc822;spam@frozen.example INFROM=rfc822;alice@example.org
to <spam@frozen.example>
comment policytest() reported freeze state 1
env-end
Subject: freeze me

body
""")
