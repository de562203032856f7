"""LMTP mode (LHLO, one reply per accepted recipient after DATA, the port rule
of protocol.md §3.3 step 6) and DELIVERBY (BY= into todsn, spool.md §5.3),
through the real session and, for the port rule, the real program."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from peers.support import peer
from progkit import inetd_launch, make_site, read_reply, stop
from sessionkit import F0_CLOCK, Harness, cmds, crlf

from zmailer_smtpd.contentfilter import ContentFilter

SIDRE = re.compile(rb"S\d+[A-Za-z0-9=\-]{8}(?:[A-Za-z0-9=\-]{5})?")
BODY = b"Subject: t\r\n\r\nbody\r\n"


def lmtp(tmp: Path, mode: str = "daemon", port: int = 2525) -> Harness:
    h = Harness(tmp)
    h.mode = mode
    h.values.update({"lmtp-mode": True, "bindport": port, "bindport-set": True})
    return h


def after_data(out: bytes) -> list[bytes]:
    lines = SIDRE.sub(b"<sid>", out).split(b"\r\n")[:-1]
    i = next(k for k, ln in enumerate(lines) if ln.startswith(b"354 "))
    return lines[i + 1:-1]


def test_lhlo_accepted_helo_ehlo_unknown(tmp_path: Path) -> None:
    h = lmtp(tmp_path)
    r = h.run(*cmds("EHLO a.example", "HELO a.example", "LHLO client.example.net", "QUIT"))
    assert r.output.split(b"\r\n")[1:4] == [
        b"550 5.5.2 Unknown command 'EHLO a.example'",
        b"550 5.5.2 Unknown command 'HELO a.example'",
        b"250 mx.example.org Hello client.example.net",  # one line, no capabilities
    ]


def test_one_reply_per_accepted_recipient(tmp_path: Path) -> None:
    h = lmtp(tmp_path)
    h.values["rcptlimitcount"] = 100
    r = h.run(*cmds("LHLO client.example.net", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>",
                    "RCPT TO:<bad", "RCPT TO:<c@example.net>", "RCPT TO:<d@example.net>", "DATA"),
              BODY + b".\r\n", *cmds("QUIT"))
    assert after_data(r.output) == [b"250 2.0.0 accepted; <sid>"] * 3
    assert len([k for k in r.files() if k.startswith("router/")]) == 1


def test_port_25_keeps_smtp(tmp_path: Path) -> None:
    h = lmtp(tmp_path, port=25)
    r = h.run(*cmds("LHLO client.example.net", "EHLO client.example.net", "QUIT"))
    lines = r.output.split(b"\r\n")
    assert lines[1] == b"550 5.5.2 Unknown command 'LHLO client.example.net'"
    assert lines[2] == b"250-mx.example.org Hello client.example.net"


def test_port_not_set_keeps_smtp(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.values["lmtp-mode"] = True
    r = h.run(*cmds("LHLO client.example.net", "QUIT"))
    assert r.output.split(b"\r\n")[1] == b"550 5.5.2 Unknown command 'LHLO client.example.net'"


def test_interactive_mode_any_port(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.mode = "interactive"
    h.network = False
    h.values["lmtp-mode"] = True
    r = h.run(*cmds("LHLO client.example.net", "QUIT"))
    assert r.output.split(b"\r\n")[1] == b"250 mx.example.org Hello client.example.net"


def filter_harness(tmp: Path, answer: bytes) -> Harness:
    prog = tmp / "filter"
    prog.write_text(
        f"#!{sys.executable}\nimport sys\nw = sys.stdout.buffer\nw.write(b'#hungry\\n'); w.flush()\n"
        f"for line in sys.stdin.buffer:\n    w.write({answer!r} + b'\\n#hungry\\n'); w.flush()\n")
    prog.chmod(0o755)
    h = lmtp(tmp)
    h.ctx_extra["contentfilter"] = ContentFilter(str(prog), cwd=h.postoffice)
    return h


def two_rcpts(h: Harness) -> list[bytes]:
    r = h.run(*cmds("LHLO client.example.net", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>",
                    "RCPT TO:<c@example.net>", "DATA"), BODY + b".\r\n", *cmds("NOOP", "QUIT"))
    got = after_data(r.output)
    assert got[-1].startswith(b"250 2.0.0 ")  # NOOP: the session is in step
    return got[:-1]


def test_filter_reject_is_repeated_per_recipient(tmp_path: Path) -> None:
    got = two_rcpts(filter_harness(tmp_path, b"-1 550 5.7.1 Spam"))
    assert got == [b"550 5.7.1 Content-Policy reject msg: Spam; <sid>"] * 2


def test_filter_freeze_is_repeated_per_recipient(tmp_path: Path) -> None:
    got = two_rcpts(filter_harness(tmp_path, b"1 250 2.7.1 Held\rfor review"))
    assert got == [
        b"250-2.7.1 Content-Policy msg: Held; <sid>",
        b"250-2.7.1 msg: for review",
        b"250 2.7.1 Content-Policy accepted this message into freezer-1; <sid>",
        # the repeated copy loses the prefixes (interfaces.md §2.6)
        b"250-2.7.1 Held; <sid>",
        b"250-2.7.1 for review",
        b"250 2.7.1 Content-Policy accepted this message into freezer-1; <sid>",
    ]


def test_filter_accept_is_repeated_per_recipient(tmp_path: Path) -> None:
    got = two_rcpts(filter_harness(tmp_path, b"0 250 2.6.0 fine"))
    assert got == [b"250 2.6.0 fine; <sid>"] * 2


def test_too_large_is_answered_per_recipient(tmp_path: Path) -> None:
    h = lmtp(tmp_path)
    h.values["maxsize"] = 10
    got = two_rcpts(h)
    assert len(got) == 2 and all(x.startswith(b"552 5.3.4 ") for x in got)


# ------------------------------------------------------------------ DELIVERBY


def todsn(files: dict[str, bytes]) -> list[bytes]:
    (data,) = [v for k, v in files.items() if k.startswith("router/")]
    return [ln for ln in data.split(b"\n") if ln.startswith(b"todsn ")]


def by_session(h: Harness, mail: str, *rcpts: str) -> tuple[bytes, dict[str, bytes]]:
    r = h.run(*cmds("EHLO client.example.net", mail, *rcpts, "DATA"), BODY + b".\r\n", *cmds("QUIT"))
    return r.output, r.files()


def test_deliverby_advertised(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.values["deliverby"] = 0
    r = h.run(*cmds("EHLO client.example.net", "QUIT"))
    assert b"\r\n250-DELIVERBY\r\n" in r.output
    h2 = Harness(tmp_path / "b")
    h2.values["deliverby"] = 600
    assert b"\r\n250-DELIVERBY 600\r\n" in h2.run(*cmds("EHLO x.example", "QUIT")).output
    h3 = Harness(tmp_path / "c")
    assert b"DELIVERBY" not in h3.run(*cmds("EHLO x.example", "QUIT")).output


def test_by_stored_in_todsn(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.values["deliverby"] = 0
    out, files = by_session(h, "MAIL FROM:<a@example.org> BY=3600;RT",
                            "RCPT TO:<b@example.net> NOTIFY=SUCCESS", "RCPT TO:<c@example.net>")
    epoch = b"%d" % (int(F0_CLOCK) + 3600)
    assert todsn(files) == [
        b"todsn NOTIFY=SUCCESS,TRACE BY=" + epoch + b";RT ORCPT=rfc822;b@example.net"
        b" INRCPT=rfc822;b@example.net INFROM=rfc822;a@example.org",
        b"todsn NOTIFY=FAILURE,DELAY,TRACE BY=" + epoch + b";RT ORCPT=rfc822;c@example.net"
        b" INRCPT=rfc822;c@example.net INFROM=rfc822;a@example.org",
    ]


def test_by_notify_mode_adds_delay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.values["deliverby"] = 0
    out, files = by_session(h, "MAIL FROM:<a@example.org> BY=-60;N",
                            "RCPT TO:<b@example.net> NOTIFY=SUCCESS",
                            "RCPT TO:<c@example.net> NOTIFY=NEVER")
    epoch = b"%d" % (int(F0_CLOCK) - 60)
    got = todsn(files)
    assert got[0].startswith(b"todsn NOTIFY=SUCCESS,DELAY BY=" + epoch + b";N ")
    assert got[1].startswith(b"todsn NOTIFY=NEVER BY=" + epoch + b";N ")


def test_by_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.values["deliverby"] = 600
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.org> BY=0;R",
                    "MAIL FROM:<a@example.org> BY=100;R", "MAIL FROM:<a@example.org> BY=700;R", "QUIT"))
    lines = r.output.split(b"\r\n")
    i = lines.index(b"250 HELP")
    assert lines[i + 1] == b"501 5.5.4 The strict delivery deadline is already past: BY=0;R"
    assert lines[i + 2] == b"553 5.7.1 Too small short delivery deadline value given: 100"
    assert lines[i + 3].startswith(b"250 2.1.0 ")


def test_by_without_deliverby_is_unknown(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.org> BY=3600;R", "QUIT"))
    reply = r.output.split(b"\r\n")[-3]
    assert reply.startswith(b"555 ") or reply.startswith(b"501 "), reply


# ------------------------------------------------------------------ the real program


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_site(tmp_path, empty_db=True)


def inetd(site: Path, conf: bytes, *args: str, script: list[bytes], rest: bytes = b"") -> list[bytes]:
    """Run `smtpserver -n` on a loopback TCP connection; one reply per script line,
    then `rest` is sent and everything up to the end of the connection is the last item."""
    (site / "smtpserver.conf").write_bytes(b"PARAM policydb btree $MAILVAR/db/smtp-policy\n" + conf)
    client, proc = inetd_launch("-n", "-Z", str(site / "z.conf"), *args)
    out = []
    try:
        out.append(read_reply(client))
        for line in script:
            client.sendall(line)
            out.append(read_reply(client))
        if rest:
            client.sendall(rest)
            buf = b""
            while chunk := client.recv(65536):
                buf += chunk
            out.append(buf)
        assert proc.wait(timeout=30) == 0
    finally:
        client.close()
        stop(proc)
    return out


def test_program_lmtp_on_port_2525(site: Path) -> None:
    out = inetd(site, b"PARAM lmtp-mode\n*  ve\n", "-p", "2525", script=[
        crlf("LHLO client.example.net"), crlf("MAIL FROM:<a@example.org>"), crlf("RCPT TO:<b@example.net>"),
        crlf("RCPT TO:<c@example.net>"), crlf("DATA")], rest=BODY + b".\r\nQUIT\r\n")
    assert out[1] == b"250 mx.example.org Hello client.example.net\r\n" or (
        out[1].startswith(b"250 ") and b" Hello client.example.net\r\n" in out[1])
    tail = SIDRE.sub(b"<sid>", out[-1]).split(b"\r\n")
    assert tail[:2] == [b"250 2.0.0 accepted; <sid>"] * 2
    assert tail[2].startswith(b"221 2.0.0 ")
    assert len(list((site / "po" / "router").iterdir())) == 1


def test_program_lmtp_without_port_is_smtp(site: Path) -> None:
    out = inetd(site, b"PARAM lmtp-mode\n*  ve\n", script=[crlf("LHLO client.example.net"), crlf("QUIT")])
    assert out[2].startswith(b"221 ")
    assert out[1] == b"550 5.5.2 Unknown command 'LHLO client.example.net'\r\n"


def test_peer_path() -> None:
    assert os.path.exists(peer("router.py"))
