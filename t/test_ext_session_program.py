"""Issue 6 end to end through the real program: `smtpserver -n` on a loopback
TCP connection (and `-i -T` for whoson) with the stand-in router, content
filter, whoson server and a hosts.deny file (interfaces.md §1, §2, §6)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from peers.support import peer, read_log, server
from progkit import PROG, inetd_launch, make_site, program_env, read_reply, stop
from sessionkit import crlf

SIDRE = re.compile(rb"S\d+[A-Za-z0-9=\-]{8}(?:[A-Za-z0-9=\-]{5})?")
BODY = b"Subject: t\r\n\r\nbody\r\nPEER-SCRIPT\r\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_site(tmp_path, empty_db=True,
                     zextra=b"MAILBIN=%s\nTRUSTEDUSER=root\n" % bytes(tmp_path / "nobin"))




def conversation(site: Path, conf: bytes, *args: str, chunks: list[bytes],
                 e: dict[str, str] | None = None) -> bytes:
    """`smtpserver -n` on a loopback connection; each chunk waits for its reply; all it said."""
    (site / "smtpserver.conf").write_bytes(b"PARAM policydb btree $MAILVAR/db/smtp-policy\n" + conf)
    client, proc = inetd_launch("-n", "-Z", str(site / "z.conf"), *args, env=e, timeout=60)
    try:
        buf = read_reply(client, 65536)
        if buf.startswith(b"220"):
            for c in chunks:
                client.sendall(c)
                buf += read_reply(client, 65536)
        while chunk := client.recv(65536):
            buf += chunk
        assert proc.wait(timeout=60) == 0
        return SIDRE.sub(b"<sid>", buf)
    finally:
        client.close()
        stop(proc)


def lines(*cmds: str) -> list[bytes]:
    return [crlf(c) for c in cmds]


def test_router_through_the_program(site: Path) -> None:
    plog = site / "router.log"
    out = conversation(
        site, b"PARAM enable-router\nPARAM vrfycmd\nPARAM expncmd\n*  veft\n", "-R", peer("router.py"),
        chunks=lines("EHLO client.example.net", "MAIL FROM:<\"$(id)`id`\"@example.org>",
                     "RCPT TO:<nosuchuser@mx.example.net>", "RCPT TO:<die@example.net>",
                     "RCPT TO:<bob@example.net>", "EXPN staff", "QUIT"),
        e=program_env(PEER_LOG=str(plog)))
    assert b"\r\n250 2.0.0 Ok (routing verified); Ok\r\n" in out
    assert (b"\r\n554 5.0.0 Hi [127.0.0.1], unresolvable address: <nosuchuser@mx.example.net>;"
            b" nosuchuser; nosuchuser@mx.example.net\r\n") in out
    assert b"\r\n450 4.5.0 Interactive router EOFed!\r\n" in out
    assert b"\r\n250 2.0.0 Ok (routing verified)\r\n250-2.1.5 Alice Example <alice>\r\n" in out
    assert out.endswith(b"\r\n221 2.0.0 " + out.split(b"\r\n221 2.0.0 ")[1])
    reqs = [x["request"] for x in read_log(plog) if "request" in x]
    assert reqs == ["from\t\"$(id)`id`\"@example.org\n", "to\tnosuchuser@mx.example.net\n",
                    "to\tdie@example.net\n", "to\tbob@example.net\n", "expand\tstaff\n"]
    starts = [x for x in read_log(plog) if "argv" in x]
    assert len(starts) == 2 and starts[0]["argv"][1:] == [
        "-Z", str(site / "z.conf"), "-io-i", "-Ismtpserver"]
    assert starts[0]["env"]["SMTPSERVER"] == "y"


def test_content_filter_through_the_program(site: Path) -> None:
    plog = site / "filter.log"
    conf = b"PARAM contentfilter %s\n*  ve\n" % peer("contentfilter.py").encode()
    msg = "EHLO client.example.net", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"
    out = conversation(
        site, conf,
        chunks=lines(*msg) + [BODY + b"-1 550 5.7.1 Spam\r\n.\r\n"]
        + lines(*msg[1:]) + [BODY + b"1 250 2.7.1 Held\r\n.\r\n"]
        + lines(*msg[1:]) + [BODY + b"0 250 2.6.0 fine\r\n.\r\n"] + lines("QUIT"),
        e=program_env(PEER_LOG=str(plog)))
    assert b"\r\n550 5.7.1 Content-Policy reject msg: Spam; <sid>\r\n" in out
    assert b"\r\n250 2.7.1 Content-Policy accept-into-freezer-1 msg: Held; <sid>\r\n" in out
    assert b"\r\n250 2.6.0 fine; <sid>\r\n" in out
    assert len(list((site / "po" / "router").iterdir())) == 1
    frozen = list((site / "po" / "freezer").iterdir())
    assert len(frozen) == 1 and frozen[0].name == f"{frozen[0].stat().st_ino}policy-1"
    assert list((site / "po" / "public").iterdir()) == []
    assert sum(1 for x in read_log(plog) if "argv" in x) == 1
    start = next(x for x in read_log(plog) if "argv" in x)
    assert start["cwd"] == str(site / "po")


def test_tcp_wrapper_through_the_program(site: Path) -> None:
    (site / "hosts.deny").write_text("smtp-receiver: 127.0.0.1\n")
    conf = b"PARAM use-tcp-wrapper\nPARAM tcp-wrapper-files %s %s\n*  ve\n" % (
        str(site / "hosts.allow").encode(), str(site / "hosts.deny").encode())
    out = conversation(site, conf, chunks=lines("EHLO client.example.net"))
    assert re.fullmatch(rb"421 \S+ ZMailer Server [^\r\n]+ WILL NOT TALK TO YOU at [^\r\n]+\r\n", out), out


def test_whoson_through_the_program(site: Path) -> None:
    plog = site / "whoson.log"
    with server("whosond.py", "192.0.2.1=alice", env=program_env(PEER_LOG=str(plog))) as (port, _):
        (site / "smtpserver.conf").write_bytes(
            b"PARAM policydb btree $MAILVAR/db/smtp-policy\nPARAM rcvd-whoson\n"
            b"PARAM whoson-server 127.0.0.1 %d\n*  ve\n" % port)
        r = subprocess.run([sys.executable, PROG, "-i", "-w", "-T", "[192.0.2.1]", "-Z", str(site / "z.conf")],
                           input=crlf("EHLO client.example", "MAIL FROM:<a@example.org>",
                                      "RCPT TO:<b@example.net>", "DATA")
                           + b"Subject: t\r\n\r\nx\r\n.\r\n" + crlf("QUIT"),
                           capture_output=True, timeout=60, env=program_env(), check=False)
    assert r.returncode == 0, r.stderr
    assert read_log(plog) == [{"query": "QUERY 192.0.2.1\r\n\r\n"}]
    (f,) = list((site / "po" / "router").iterdir())
    rcvd = [ln for ln in f.read_bytes().split(b"\n") if ln.startswith(b"rcvdfrom ")]
    assert b' whoson: "alice" ' in rcvd[0]
