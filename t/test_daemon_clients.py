"""Real clients against the real daemon on loopback (issue 2's acceptance).

bin/smtpserver runs detached with the shipped etc/smtpserver.conf, a generated
zmailer.conf and a policy database built by the real builder from the shipped
etc/ sources (or, to show refusals, from a test-specific source).  Clients are
Python's smtplib, raw sockets (PIPELINING, BDAT) and swaks; `smtpserver -i`
gets a BSMTP batch on stdin.  Spool files are compared byte for byte after
masking what varies (client port, spool id).  Every wait is a bounded poll.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from spoolutil import SPOOLID_RE, mask_content, mask_spoolid, split_spool
from test_daemon_parent import (
    child_pids_of,
    free_port,
    read_reply,
    session_pids_of,
    talk,
    wait_for,
)

from zmailer_smtpd import spool
from zmailer_smtpd.hostname import myhostname
from zmailer_smtpd.pidfile import pid_alive
from zmailer_smtpd.policy import builder

REPO = Path(__file__).resolve().parent.parent
ETC = REPO / "etc"
PROGRAM = [sys.executable, str(REPO / "bin" / "smtpserver")]
POLICY_FILES = ("smtp-policy.src", "smtp-policy.relay", "smtp-policy.mx", "smtp-policy.spam",
                "localnames")
SMUGGLE_550 = b"550 5.5.2 Bare LF or bare CR in message data; only CR LF line ends are accepted\r\n"


def build_policy(dbdir: Path, src: str | None = None) -> Path:
    """The shipped policy sources (``src`` replaces smtp-policy.src) through the real builder."""
    dbdir.mkdir(parents=True, exist_ok=True)
    for name in POLICY_FILES:
        shutil.copyfile(ETC / name, dbdir / name)
    if src is not None:
        (dbdir / "smtp-policy.src").write_text(src)
    msgs: list[str] = []
    assert builder.build(str(dbdir), "smtp-policy", "btree", err=msgs.append) == 0, msgs
    return dbdir / "smtp-policy"


class Smtpd:
    """One detached bin/smtpserver: POSTOFFICE, ZENV, shipped conf, real policy DB, log."""

    def __init__(self, tmp: Path, policy_src: str | None = None) -> None:
        self.tmp = tmp
        self.po = tmp / "postoffice"
        for d in ("public", "router", "freezer", "postman", "transport", "deferred", "queue"):
            (self.po / d).mkdir(parents=True, exist_ok=True)
        build_policy(tmp / "db", policy_src)
        self.zenv = tmp / "zmailer.conf"
        self.zenv.write_text(f"POSTOFFICE={self.po}\nMAILVAR={tmp}\nMAILSHARE={tmp}\n"
                             "TRUSTEDUSER=root\n")
        self.port = free_port()
        self.conf = tmp / "smtpserver.conf"
        self.conf.write_text((ETC / "smtpserver.conf").read_text()
                             + f"PARAM BindSmtp [127.0.0.1] {self.port}\n")
        self.log = tmp / "smtp.log"
        self.pid = 0

    def argv(self, *extra: str) -> list[str]:
        return [*PROGRAM, "-Z", str(self.zenv), "-C", str(self.conf), "-P", str(self.po),
                "-l", str(self.log), *extra]

    def log_bytes(self) -> bytes:
        try:
            return self.log.read_bytes()
        except OSError:
            return b""

    def wait_log(self, needle: bytes) -> None:
        wait_for(lambda: needle in self.log_bytes(), f"log {needle!r}")

    def start(self, *extra: str) -> None:
        p = subprocess.run(self.argv(*extra), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stderr == "", p.stderr  # the shipped configuration has no diagnostics
        self.wait_started(self.po / ".pid.smtpserver")

    def wait_started(self, pf: Path) -> int:
        """The pid in ``pf`` once the daemon has logged its start (bounded wait)."""
        def ready() -> int:
            try:
                pid = int(pf.read_text())
            except (OSError, ValueError):
                return 0
            return pid if b"started server pid %d " % pid in self.log_bytes() else 0
        pid = wait_for(ready, "daemon start")
        assert isinstance(pid, int)
        self.pid = pid
        return pid

    def stop(self) -> None:
        if not self.pid:
            return
        for c in child_pids_of(self.pid):
            try:
                os.kill(c, signal.SIGKILL)
            except OSError:
                pass
        if pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(self.pid), "daemon death")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def router_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (self.po / "router").iterdir()}

    def spool_left(self) -> list[str]:
        """Whatever is in public/, router/ or freezer/ (a refused message leaves nothing)."""
        return sorted(f"{d}/{p.name}" for d in ("public", "router", "freezer")
                      for p in (self.po / d).iterdir())

    def sessions_done(self) -> None:
        """Every session has ended (so its spool work is over); children may wait idle."""
        wait_for(lambda: not session_pids_of(self.pid), "sessions to end")


@pytest.fixture
def smtpd(tmp_path: Path) -> Iterator[Callable[..., Smtpd]]:
    made: list[Smtpd] = []

    def make(policy_src: str | None = None, *extra: str) -> Smtpd:
        d = tmp_path / f"d{len(made)}"
        d.mkdir()
        s = Smtpd(d, policy_src)
        made.append(s)
        s.start(*extra)
        return s

    yield make
    for s in made:
        s.stop()


ME = myhostname().encode()


def read_replies(s: socket.socket, n: int) -> list[bytes]:
    """The next `n` whole replies (each up to its final line), in arrival order."""
    buf = b""
    while True:
        replies: list[bytes] = []
        start = 0
        for m in re.finditer(rb"^\d{3} [^\r\n]*\r\n", buf, re.M):
            replies.append(buf[start:m.end()])
            start = m.end()
        if len(replies) >= n:
            assert len(replies) == n and start == len(buf), buf
            return replies
        chunk = s.recv(65536)
        assert chunk, f"EOF after {buf!r}"
        buf += chunk


def rcvd(helo: bytes, with_: bytes = b"ESMTP") -> bytes:
    """The envelope head of a session from 127.0.0.1 without a PTR name (spool.md §5.3)."""
    return (
        b"external\n"
        b'rcvdfrom [127.0.0.1] ([127.0.0.1]:<rport> "' + helo + b'" rhost-flags-FAIL-FAIL-OK-FAIL)\n'
        b'comment [127.0.0.1] [127.0.0.1]:<rport> "' + helo + b'" smtp-auth: <none>'
        b" TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-FAIL-FAIL-OK-FAIL)\n"
        b"with " + with_ + b"\n"
    )


def envelope(sender: bytes, *rcpts: bytes) -> bytes:
    out = b"from <" + sender + b">\n"
    for r in rcpts:
        out += (b"todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;%s INRCPT=rfc822;%s INFROM=rfc822;%s\n"
                b"to <%s>\n" % (r, r, sender, r))
    return out + b"env-end\n"


def check_spooled(d: Smtpd, reply: bytes) -> bytes:
    """The router/ file named by the 250's spool id: inode name, id = spoolid(stat); its bytes."""
    m = SPOOLID_RE.search(reply)
    assert m, reply
    sid = m.group(0).decode()
    ino = re.match(r"S(\d+)", sid).group(1)  # type: ignore[union-attr]
    path = d.po / "router" / ino
    st = path.stat()
    assert st.st_ino == int(ino)
    assert spool.spoolid(st) == sid
    assert st.st_mode & 0o777 == 0o600
    return mask_content(path.read_bytes())


MSG = (b"From: alice@example.net\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\n"
       b"line one\r\n.a line that starts with a dot\r\n..two dots\r\n\r\nlast line\r\n")
MSG_STORED = (b"From: alice@example.net\nTo: bob@example.org\nSubject: hello\n\n"
              b"line one\n.a line that starts with a dot\n..two dots\n\nlast line\n")


def test_smtplib_sendmail_spool_file_byte_for_byte(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example.net", timeout=30) as c:
        code, text = c.ehlo()
        assert code == 250 and b"PIPELINING" in text.split(b"\n") and b"CHUNKING" in text.split(b"\n")
        assert c.mail("alice@example.net") == (250, b"2.1.0 Sender syntax Ok;")
        assert c.rcpt("bob@example.org") == (
            250, b"2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>")
        assert c.rcpt("carol@example.com") == (
            250, b"2.1.5 Recipient address syntax Ok; rcpt=<carol@example.com>")
        code, text = c.data(MSG)
        assert code == 250 and mask_spoolid(text) == b"2.0.0 accepted; <spoolid>"
        assert c.quit()[0] == 221
    (name,) = d.router_files()
    data = check_spooled(d, b"250 " + text)
    assert data == (rcvd(b"ehlo client.example.net")
                    + envelope(b"alice@example.net", b"bob@example.org", b"carol@example.com")
                    + MSG_STORED)
    assert split_spool(data)[1] == MSG_STORED
    assert list((d.po / "public").iterdir()) == []


def test_smtplib_several_messages_on_one_connection(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example.net", timeout=30) as c:
        for i in range(3):
            body = b"Subject: message %d\r\n\r\nbody %d\r\n" % (i, i)
            assert c.sendmail(f"s{i}@example.net", [f"r{i}@example.org"], body) == {}
            assert c.noop() == (250, b"2.0.0 Ok")
    files = d.router_files()
    assert len(files) == 3
    got = sorted(mask_content(v) for v in files.values())
    want = sorted(rcvd(b"ehlo client.example.net")
                  + envelope(b"s%d@example.net" % i, b"r%d@example.org" % i)
                  + b"Subject: message %d\n\nbody %d\n" % (i, i) for i in range(3))
    assert got == want


def test_smtplib_data_reply_names_the_file(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example.net", timeout=30) as c:
        c.ehlo()
        replies = []
        for i in range(2):
            c.mail("alice@example.net")
            c.rcpt("bob@example.org")
            code, text = c.data(b"Subject: %d\r\n\r\nx\r\n" % i)
            assert code == 250
            replies.append(b"250 " + text)
    for i, r in enumerate(replies):
        assert split_spool(check_spooled(d, r))[1] == b"Subject: %d\n\nx\n" % i


def test_pipelined_batch_replies_in_order(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    s = d.connect()
    assert read_reply(s).startswith(b"220 " + ME + b" ZMailer Server ")
    assert b"250-PIPELINING\r\n" in talk(s, b"EHLO client.example.net")
    s.sendall(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
              b"RCPT TO:<carol@example.com>\r\nDATA\r\n")
    assert read_replies(s, 4) == [
        b"250 2.1.0 Sender syntax Ok; \r\n",
        b"250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>\r\n",
        b"250 2.1.5 Recipient address syntax Ok; rcpt=<carol@example.com>\r\n",
        b"354 Start mail input; end with <CRLF>.<CRLF>\r\n",
    ]
    # the payload, its end and the next commands in one write too
    s.sendall(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\nMAIL FROM:<x@example.net>\r\nRSET\r\nNOOP\r\n")
    r = read_replies(s, 4)
    assert mask_spoolid(r[0]) == b"250 2.0.0 accepted; <spoolid>\r\n"
    assert r[1:] == [b"250 2.1.0 Sender syntax Ok; \r\n",
                     b"250 2.0.0 Reset processed, now waiting for MAIL command\r\n",
                     b"250 2.0.0 Ok\r\n"]
    assert talk(s, b"QUIT") == b"221 2.0.0 " + ME + b" Out\r\n"
    s.close()
    assert check_spooled(d, r[0]) == (
        rcvd(b"EHLO client.example.net")
        + envelope(b"alice@example.net", b"bob@example.org", b"carol@example.com") + MSG_STORED)


def test_bdat_chunking_stores_dot_lines_literally(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    s = d.connect()
    read_reply(s)
    assert b"250-CHUNKING\r\n" in talk(s, b"EHLO client.example.net")
    chunk1 = b"Subject: chunks\r\n\r\nfirst\r\n.\r\nnot the end\r\n"
    chunk2 = b"..stays two dots\r\n.\r\n"
    s.sendall(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
              + b"BDAT %d\r\n" % len(chunk1) + chunk1
              + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"NOOP\r\n")
    r = read_replies(s, 5)
    assert r[:3] == [b"250 2.1.0 Sender syntax Ok; \r\n",
                     b"250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>\r\n",
                     b"250 2.0.0 Received %d bytes\r\n" % len(chunk1)]
    assert re.fullmatch(
        rb"250 2\.0\.0 S\d+\S+ Roger, got %d bytes in the last chunk, stored \d+ bytes into spool\r\n"
        % len(chunk2), r[3]), r[3]
    assert r[4] == b"250 2.0.0 Ok\r\n"
    s.close()
    m = re.match(rb"250 2\.0\.0 (\S+) ", r[3])
    data = check_spooled(d, b"250 2.0.0 " + m.group(1))  # type: ignore[union-attr]
    stored = b"Subject: chunks\n\nfirst\n.\nnot the end\n..stays two dots\n.\n"
    assert data == (rcvd(b"EHLO client.example.net")
                    + envelope(b"alice@example.net", b"bob@example.org") + stored)
    size = int(re.search(rb"stored (\d+) bytes", r[3]).group(1))  # type: ignore[union-attr]
    (path,) = (d.po / "router").iterdir()
    assert size == path.stat().st_size


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r"])
def test_smuggling_through_the_daemon_is_550_and_nothing_spooled(
        smtpd: Callable[..., Smtpd], fake_end: bytes) -> None:
    d = smtpd()
    s = d.connect()
    read_reply(s)
    talk(s, b"EHLO client.example.net")
    s.sendall(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert read_replies(s, 3)[2].startswith(b"354 ")
    s.sendall(b"Subject: a\r\n\r\nbody" + fake_end
              + b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
              b"forged\r\n.\r\nNOOP\r\n")
    assert read_replies(s, 2) == [SMUGGLE_550, b"250 2.0.0 Ok\r\n"]
    assert talk(s, b"QUIT").startswith(b"221 ")
    assert s.recv(10) == b""
    s.close()
    d.sessions_done()
    assert d.spool_left() == []


# The shipped policy trusts 127.0.0.0/8 (fulltrustnet, relaying allowed); every
# client here connects from 127.0.0.1, so refusals need a policy without that.
UNTRUSTED_SRC = "".join(
    ln for ln in (ETC / "smtp-policy.src").read_text().splitlines(keepends=True)
    if not ln.startswith(("[127.0.0.0]/8", "[ipv6.::1]/128")))
RELAY_550 = (b"550 5.7.1 Your IP address [127.0.0.1] is not allowed to relay to email address"
             b" <bob@example.org> via our server; MX rule")


def swaks(d: Smtpd, *args: str, port: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """swaks against the daemon (``port``: another of its listeners)."""
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port or d.port}", "--timeout", "30",
                           "--helo", "swaks.example.net", *args],
                          capture_output=True, timeout=90)


def test_swaks_pipeline_body_with_dot_lines(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd()
    body = "first line\n.one dot\n..two dots\n.\nafter a lone dot"
    p = swaks(d, "--pipeline", "--from", "alice@example.net", "--to", "bob@example.org,carol@example.com",
              "--body", body)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    # --pipeline: MAIL, both RCPTs and DATA go out before the first of their replies
    sent = out.index(b" -> DATA\n")
    assert out.index(b" -> MAIL FROM:<alice@example.net>\n") < sent < out.index(b"<-  250 2.1.0 ")
    assert b"<-  250 2.1.5 Recipient address syntax Ok; rcpt=<carol@example.com>\n" in out
    m = re.search(rb"<-  250 2\.0\.0 accepted; (\S+)\n", out)
    assert m, out
    data = check_spooled(d, m.group(0))
    recs, msg = split_spool(data)
    assert data.startswith(rcvd(b"EHLO swaks.example.net")
                           + envelope(b"alice@example.net", b"bob@example.org", b"carol@example.com"))
    # swaks ends its DATA with two empty lines of its own
    assert msg.endswith(b"\n\nfirst line\n.one dot\n..two dots\n.\nafter a lone dot\n\n\n")
    assert b"\nX-Mailer: swaks" in msg and b"\nTo: bob@example.org,carol@example.com\n" in msg
    assert b"\r" not in msg


def test_swaks_relaying_refused_nothing_spooled(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd(UNTRUSTED_SRC)
    p = swaks(d, "--pipeline", "--from", "alice@example.net", "--to", "bob@example.org")
    assert p.returncode == 24, p.stdout + p.stderr  # swaks: every recipient was refused
    assert b"<** " + RELAY_550 + b"\n" in p.stdout
    assert b"<** 503 5.5.2 Hi [127.0.0.1], Waiting for RCPT command\n" in p.stdout
    d.sessions_done()
    assert d.spool_left() == []
    # the same policy accepts a local recipient (localnames): the refusal is the relaying
    p = swaks(d, "--from", "alice@example.net", "--to", "postmaster@localhost", "--body", "ok")
    assert p.returncode == 0, p.stdout + p.stderr
    (name,) = d.router_files()
    assert b"\nto <postmaster@localhost>\nenv-end\n" in (d.po / "router" / name).read_bytes()


def test_refused_recipient_leaves_no_trace_in_accepted_file(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd(UNTRUSTED_SRC)
    s = d.connect()
    read_reply(s)
    talk(s, b"EHLO client.example.net")
    s.sendall(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
              b"RCPT TO:<postmaster@localhost>\r\nDATA\r\n")
    r = read_replies(s, 4)
    assert r[1] == RELAY_550 + b"\r\n" and r[3].startswith(b"354 ")
    s.sendall(b"Subject: mixed\r\n\r\nbody\r\n.\r\n")
    (ok,) = read_replies(s, 1)
    s.close()
    assert check_spooled(d, ok) == (rcvd(b"EHLO client.example.net")
                                    + envelope(b"alice@example.net", b"postmaster@localhost")
                                    + b"Subject: mixed\n\nbody\n")


def test_oversized_message_refused_nothing_spooled(smtpd: Callable[..., Smtpd]) -> None:
    d = smtpd(None, "-M", "1000")
    s = d.connect()
    read_reply(s)
    assert b"250-SIZE 1000\r\n" in talk(s, b"EHLO client.example.net")
    s.sendall(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert read_replies(s, 3)[2].startswith(b"354 ")
    s.sendall(b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" + b"y" * 78 * 20 + b"\r\n.\r\nNOOP\r\n")
    r = read_replies(s, 2)
    assert r == [b"552 5.3.4 Size of this message exceeds the fixed maximum size of  1000  chars"
                 b" for received email \r\n", b"250 2.0.0 Ok\r\n"]
    assert talk(s, b"QUIT").startswith(b"221 ")
    assert s.recv(10) == b""
    s.close()
    d.sessions_done()
    assert d.spool_left() == []


BATCH = (b"EHLO batch.example.net\r\n"
         b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
         + MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n"
         b"MAIL FROM:<carol@example.com>\r\nRCPT TO:<dave@example.org>\r\n"
         b"BDAT 20 LAST\r\nSubject: bdat\r\n\r\n.\r\n"
         b"QUIT\r\n")


def test_interactive_bsmtp_batch_from_file(tmp_path: Path) -> None:
    d = Smtpd(tmp_path)  # the same files as the daemon; no daemon needed
    batch = tmp_path / "batch.bsmtp"
    batch.write_bytes(BATCH)
    with batch.open("rb") as f:
        p = subprocess.run(d.argv("-i"), stdin=f, capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    out = mask_spoolid(p.stdout)
    greeting, rest = out.split(b"\r\n", 1)
    assert greeting.startswith(b"220 " + ME + b" ZMailer Server ")
    assert rest.startswith(b"250-" + ME + b" Hello batch.example.net\r\n")
    tail = rest.split(b"250 HELP\r\n", 1)[1]
    assert re.fullmatch(
        rb"250 2\.1\.0 Sender syntax Ok; \r\n"
        rb"250 2\.1\.5 Recipient address syntax Ok; rcpt=<bob@example\.org>\r\n"
        rb"354 Start mail input; end with <CRLF>\.<CRLF>\r\n"
        rb"250 2\.0\.0 accepted; <spoolid>\r\n"
        rb"250 2\.1\.0 Sender syntax Ok; \r\n"
        rb"250 2\.1\.5 Recipient address syntax Ok; rcpt=<dave@example\.org>\r\n"
        rb"250 2\.0\.0 <spoolid> Roger, got 20 bytes in the last chunk, stored \d+ bytes into spool\r\n"
        rb"221 2\.0\.0 " + re.escape(ME) + rb" Out\r\n", tail), tail
    ids = [SPOOLID_RE.search(r) for r in p.stdout.split(b"\r\n") if r.startswith(b"250 2.0.0 ")]
    assert len(ids) == 2 and all(ids)
    # -i: no external/rcvdfrom/comment (spool.md §3.6, T-16)
    first = check_spooled(d, ids[0].group(0))  # type: ignore[union-attr]
    assert first == b"with ESMTP\n" + envelope(b"alice@example.net", b"bob@example.org") + MSG_STORED
    second = check_spooled(d, ids[1].group(0))  # type: ignore[union-attr]
    assert second == (b"with ESMTP\n" + envelope(b"carol@example.com", b"dave@example.org")
                      + b"Subject: bdat\n\n.\n")
    assert d.spool_left() == sorted(f"router/{n}" for n in d.router_files())
