"""Content filter client against a real stand-in filter (interfaces.md §2, §8.2)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from peers.support import peer, read_log

from zmailer_smtpd import contentfilter
from zmailer_smtpd.contentfilter import ContentFilter, FilterVerdict
from zmailer_smtpd.router import ReplyLine

SID = b"S2162999AbmK1HA0BPTLx"


def fmt(lines: list[ReplyLine], enhanced: bool = True) -> bytes:
    out = b""
    for i, ln in enumerate(lines):
        sep = b" " if i == len(lines) - 1 else b"-"
        enh = ln.enh + b" " if enhanced and ln.enh else b""
        out += b"%03d" % ln.code + sep + enh + ln.text + b"\r\n"
    return out


@pytest.fixture
def po(tmp_path: Path) -> Path:
    (tmp_path / "public").mkdir()
    return tmp_path


@pytest.fixture
def plog(tmp_path: Path) -> Path:
    return tmp_path / "peer.log"


@pytest.fixture
def cf(po: Path, plog: Path):  # type: ignore[no-untyped-def]
    logs: list[str] = []
    c = ContentFilter(peer("contentfilter.py"), log=logs.append, debug=True,
                      env=dict(os.environ, PEER_LOG=str(plog), IFS=" "), cwd=str(po),
                      start_timeout=5, answer_timeout=0.5)
    c.logs = logs  # type: ignore[attr-defined]
    yield c
    c.close()


def message(po: Path, script: bytes, name: str = "mx.example.net:4242") -> str:
    p = po / "public" / name
    p.write_bytes(b"env-end\nSubject: t\n\nbody\nPEER-SCRIPT\n" + script)
    return str(p)


def test_f1_accept_with_text(cf: ContentFilter, po: Path, plog: Path) -> None:
    path = message(po, b"0 250 2.6.0 Message OK!\n")
    v = cf.verdict(path)
    assert v.disposition == "accept"
    assert fmt(v.reply(SID)) == b"250 2.6.0 Message OK!; " + SID + b"\r\n"
    log = read_log(plog)
    assert log[0]["argv"][1:] == []  # argv = [PATH]
    assert log[0]["cwd"] == str(po)
    assert log[0]["env"]["SMTPSERVER"] == "y" and "IFS" not in log[0]["env"]
    assert [x["path"] for x in log if "path" in x] == [path]
    assert v.log_text == (
        "Content-policy analysis ordered message acceptance. (code=0); msg='250 2.6.0 Message OK!'"
    )


def test_f2_reject_multiline(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"-1 550 5.7.1 Spam detected\rSee http://www.example.org/why\n"))
    assert v.disposition == "reject"
    assert fmt(v.reply(SID)) == (
        b"550-5.7.1 Content-Policy msg: Spam detected; " + SID + b"\r\n"
        b"550-5.7.1 msg: See http://www.example.org/why\r\n"
        b"550 5.7.1 Content-Policy analysis rejected this message\r\n"
    )


def test_f3_freeze(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"1 250 2.7.1 Held for review\n"))
    assert v.disposition == "freeze" and v.freezer_suffix() == "policy-1"
    assert v.freezer_suffix(bdat=True) == "policy"
    assert fmt(v.reply(SID)) == (
        b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: Held for review; " + SID + b"\r\n"
    )


def test_f4_seed_grammar_without_code(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"-3 Multiple occurrances of unique RFC822 header: 'From'\n"))
    assert v.verdict == -3
    assert fmt(v.reply(SID)) == (
        b"552 5.7.1 Content-Policy reject msg: Multiple occurrances of unique RFC822"
        b" header: 'From'; " + SID + b"\r\n"
    )


def test_f5_bare_verdict(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"-1\n"))
    assert fmt(v.reply(SID)) == (
        b"552 5.7.1 Content-Policy reject msg: rejected, no further explanations; "
        + SID + b"\r\n"
    )


def test_f6_last_valid_line_wins(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"# scanning\n0 250 2.6.0 first\ngarbage\n-1 554 5.7.1 second\n"))
    assert fmt(v.reply(SID)) == b"554 5.7.1 Content-Policy reject msg: second; " + SID + b"\r\n"
    assert any("garbage" in x for x in cf.logs)  # type: ignore[attr-defined]


def test_f7_long_enhanced_code(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"-1 550 5.7.10 Bad\n"))
    assert fmt(v.reply(SID)) == b"550 5.7.1 Content-Policy reject msg: 0 Bad; " + SID + b"\r\n"


def test_f8_filter_dies_freezer_and_restart(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"!die\n"))
    # Decision: EOF sends the message to the freezer (3.0.1 accepted it).
    assert v.disposition == "freeze" and v.failure
    assert fmt(v.reply(SID)) == (
        b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: accepted into freezer,"
        b" no explanations; " + SID + b"\r\n"
    )
    assert any("EOFed" in x for x in cf.logs)  # type: ignore[attr-defined]
    assert cf.pid is None
    v = cf.verdict(message(po, b"0 250 2.6.0 fine\n"))
    assert v.disposition == "accept" and cf.starts == 2


def test_no_valid_line_freezes(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"nothing useful\n# debug\n"))
    assert v.disposition == "freeze"
    v = cf.verdict(message(po, b""))
    assert v.disposition == "freeze"


def test_never_answers_times_out_to_freezer(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"!hang\n"))
    assert v.disposition == "freeze"
    assert any("timed out" in x for x in cf.logs)  # type: ignore[attr-defined]
    assert cf.pid is None


def test_verdict_without_hungry_times_out(cf: ContentFilter, po: Path) -> None:
    v = cf.verdict(message(po, b"!nohungry\n"))
    assert v.disposition == "freeze"


@pytest.mark.parametrize("kind", [b"!flood\n", b"!floodlines\n"])
def test_ten_megabytes_bounded(cf: ContentFilter, po: Path, kind: bytes) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    v = cf.verdict(message(po, kind))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 8 * 1024  # 10 MB were written; far less was ever held
    assert v.disposition == "freeze"
    assert cf.pid is None  # killed: it cannot be resynchronised
    assert cf.verdict(message(po, b"0 250 2.6.0 ok\n")).disposition == "accept"


def test_start_failure_freezes(po: Path, tmp_path: Path) -> None:
    c = ContentFilter(str(tmp_path / "missing"), start_timeout=0.3)
    v = c.verdict(message(po, b"0\n"))
    assert v.disposition == "freeze" and v.failure
    noexec = tmp_path / "noexec"
    noexec.write_text("#!/bin/sh\n")
    noexec.chmod(0o644)
    c = ContentFilter(str(noexec), start_timeout=0.3)
    assert c.verdict(message(po, b"0\n")).disposition == "freeze"


def test_path_with_lf_never_sent(cf: ContentFilter, po: Path, plog: Path) -> None:
    v = cf.verdict(str(po / "public" / "evil\nname"))
    assert v.disposition == "freeze"
    assert [x for x in read_log(plog) if "path" in x] == []


def test_socket_filter(po: Path, tmp_path: Path, plog: Path) -> None:
    sock = tmp_path / "cf.sock"
    srv = subprocess.Popen([sys.executable, peer("contentfilter.py"), "--socket", str(sock)],
                           stdout=subprocess.PIPE, env=dict(os.environ, PEER_LOG=str(plog)))
    try:
        assert srv.stdout is not None and srv.stdout.readline() == b"READY\n"
        c = ContentFilter(str(sock), start_timeout=5, answer_timeout=5)
        v = c.verdict(message(po, b"1 Held\n"))
        assert v.disposition == "freeze" and v.segments == [b"Held"]
        v = c.verdict(message(po, b"0\n"))
        assert v.disposition == "accept"
        c.close()
    finally:
        srv.kill()
        srv.wait()


def test_grammar_table() -> None:
    p = contentfilter.parse_line
    assert p(b"-1") == (-1, None)
    assert p(b"0 ") == (0, None)
    assert p(b"2 Suspicious attachment") == (2, b"Suspicious attachment")
    assert p(b"+1 x") is None and p(b"0x10 y") is None and p(b"#1") is None
    assert p(b"1\tx") is None
    assert p(b"99999999999 x") is None
    s = contentfilter.parse_statcode
    assert s(b"450 temporary") == (450, None, b"temporary")
    assert s(b"700 5.1.1 x") == (None, b"5.1.1", b"x")
    assert s(b"250\t2.6.0\tok") == (250, b"2.6.0", b"ok")


def test_reject_default_enh_follows_verdict() -> None:
    v = FilterVerdict.from_text(-1, b"450 temporary")
    assert fmt(v.reply(SID)) == b"450 5.7.1 Content-Policy reject msg: temporary; " + SID + b"\r\n"
    v = FilterVerdict.from_text(0, b"550 5.7.1 no")  # queued, client told 550
    assert v.disposition == "accept" and v.code == 550


def test_segments_capped_no_raw_cr() -> None:
    v = FilterVerdict.from_text(0, b"250 2.0.0 " + b"\r".join(b"s%d" % i for i in range(30)))
    lines = v.reply(SID)
    assert len(lines) == contentfilter.MAX_SEGMENTS + 1
    assert all(b"\r" not in x.text for x in lines)
    assert fmt(lines).endswith(b"250 2.0.0 Content-Policy accepted this message; " + SID + b"\r\n")


def test_freezer_multi_and_lmtp() -> None:
    v = FilterVerdict.from_text(2, b"250 2.7.1 a\rb")
    first = fmt(v.reply(SID))
    assert first == (
        b"250-2.7.1 Content-Policy msg: a; " + SID + b"\r\n"
        b"250-2.7.1 msg: b\r\n"
        b"250 2.7.1 Content-Policy accepted this message into freezer-2; " + SID + b"\r\n"
    )
    reps = v.lmtp_replies(SID, 2)
    assert len(reps) == 2 and fmt(reps[0]) == first
    assert fmt(reps[1]) == (
        b"250-2.7.1 a; " + SID + b"\r\n250-2.7.1 b\r\n"
        b"250 2.7.1 Content-Policy accepted this message into freezer-2; " + SID + b"\r\n"
    )


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to switch users")
def test_filter_runs_as_trusted_user_in_postoffice() -> None:
    import shutil
    import tempfile

    from zmailer_smtpd import helper

    top = Path(tempfile.mkdtemp(prefix="zm-cf-"))
    try:
        top.chmod(0o777)
        (top / "public").mkdir()
        (top / "public").chmod(0o777)
        plog = top / "peer.log"
        path = message(top, b"0\n")
        os.chown(path, 1, 1)
        os.chmod(path, 0o600)
        c = ContentFilter(peer("contentfilter.py"), env=dict(os.environ, PEER_LOG=str(plog)),
                          cwd=str(top), preexec=helper.drop_to(1, 1), start_timeout=5,
                          answer_timeout=5)
        assert c.verdict(path).disposition == "accept"
        c.close()
        start = read_log(plog)[0]
        assert (start["uid"], start["euid"], start["cwd"]) == (1, 1, str(top))
    finally:
        shutil.rmtree(top)
