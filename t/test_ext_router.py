"""Interactive router client against a real stand-in router (interfaces.md §1, §8.1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from peers.support import peer, read_log

from zmailer_smtpd import router
from zmailer_smtpd.router import ReplyLine, RouterClient

ADDR = b"[192.0.2.7]"
ZCONFIG = "/etc/zmailer/zmailer.conf"


def fmt(lines: list[ReplyLine], enhanced: bool = True) -> bytes:
    """§0.5 formatting, as the session's reply function does it."""
    out = b""
    for i, ln in enumerate(lines):
        sep = b" " if i == len(lines) - 1 else b"-"
        enh = ln.enh + b" " if enhanced and ln.enh else b""
        out += b"%03d" % ln.code + sep + enh + ln.text + b"\r\n"
    return out


@pytest.fixture
def plog(tmp_path: Path) -> Path:
    return tmp_path / "peer.log"


@pytest.fixture
def rc(plog: Path):  # type: ignore[no-untyped-def]
    logs: list[str] = []
    env = dict(os.environ, PEER_LOG=str(plog), LOGNAME="x", USER="y")
    c = RouterClient(peer("router.py"), ZCONFIG, ADDR, log=logs.append, env=env,
                     start_timeout=5, answer_timeout=0.5)
    c.logs = logs  # type: ignore[attr-defined]
    yield c
    c.close()


def requests(plog: Path) -> list[str]:
    return [x["request"] for x in read_log(plog) if "request" in x]


def test_r1_startup_argv_env(rc: RouterClient, plog: Path) -> None:
    assert rc.argv() == ["router", "-Z", ZCONFIG, "-io-i", "-Ismtpserver"]
    a = rc.check("from", b"alice@example.org")
    assert a.ok
    start = read_log(plog)[0]
    assert start["argv"][1:] == ["-Z", ZCONFIG, "-io-i", "-Ismtpserver"]
    env = start["env"]
    assert env["SMTPSERVER"] == "y"
    assert env["SHELL"] == "/bin/sh"
    assert "LOGNAME" not in env and "USER" not in env
    # banner lines (stdout and the merged stderr) were skipped, not answers
    assert fmt(a.lines) == b"250 2.0.0 Ok (routing verified); Ok\r\n"


def test_helper_gets_no_extra_descriptors(rc: RouterClient, plog: Path) -> None:
    r, w = os.pipe()  # inheritable-looking descriptors must not leak
    try:
        rc.check("to", b"bob@example.net")
        pid = rc.pid
        assert pid is not None
        fds = sorted(int(x) for x in os.listdir(f"/proc/{pid}/fd"))
        assert fds == [0, 1, 2]
    finally:
        os.close(r)
        os.close(w)


def test_r2_mail_from_accepted(rc: RouterClient, plog: Path) -> None:
    a = rc.check("from", b"alice@example.org")
    assert requests(plog) == ["from\talice@example.org\n"]
    assert fmt(a.lines) == b"250 2.0.0 Ok (routing verified); Ok\r\n"
    # T-4: the router's enhanced code stays in the text without ENHANCEDSTATUSCODES
    assert fmt(a.lines, enhanced=False) == b"250 2.0.0 Ok (routing verified); Ok\r\n"


def test_r3_null_sender(rc: RouterClient, plog: Path) -> None:
    a = rc.check("from", b"")
    assert requests(plog) == ["from\t\n"]
    assert fmt(a.lines) == b"250 2.0.0 Ok (sourcechannel 'error' accepted); Ok\r\n"


def test_r4_rcpt_rejected(rc: RouterClient, plog: Path) -> None:
    a = rc.check("to", b"nosuchuser@mx.example.net")
    assert requests(plog) == ["to\tnosuchuser@mx.example.net\n"]
    assert not a.ok
    assert fmt(a.lines) == (
        b"554 5.0.0 Hi [192.0.2.7], unresolvable address: <nosuchuser@mx.example.net>;"
        b" nosuchuser; nosuchuser@mx.example.net\r\n"
    )


def test_r5_rcpt_accepted(rc: RouterClient, plog: Path) -> None:
    a = rc.check("to", b"bob@example.net")
    assert requests(plog) == ["to\tbob@example.net\n"]
    assert a.ok and fmt(a.lines) == b"250 2.0.0 Ok (routing verified)\r\n"


def test_r6_expn_two_lines(rc: RouterClient, plog: Path) -> None:
    a = rc.check("expand", b"staff")
    assert requests(plog) == ["expand\tstaff\n"]
    assert fmt(a.lines) == (
        b"250-2.1.5 Alice Example <alice>\r\n"
        b"250 2.0.0 smtp delivery to mx.example.org for <bob@example.org>\r\n"
    )


def test_r7_vrfy_unknown(rc: RouterClient, plog: Path) -> None:
    a = rc.check("verify", b"carol")
    assert requests(plog) == ["verify\tcarol\n"]
    assert fmt(a.lines) == b"550 5.1.1 Hi [192.0.2.7], no such user: <carol>\r\n"


def test_r8_line_without_enh(rc: RouterClient) -> None:
    a = rc.check("verify", b"x")
    assert fmt(a.lines) == b"250 ok fine ok fine\r\n"
    assert fmt(a.lines, enhanced=False) == b"250 ok fine\r\n"


def test_r9_silent_router_is_4xx(rc: RouterClient, plog: Path) -> None:
    # Decision (README, External programs): a helper failure is never an
    # acceptance; 3.0.1 answered "250 2.7.1 ... letting this thru...".
    a = rc.check("to", b"silent@example.net")
    assert not a.ok and a.failed
    assert a.lines[-1].code // 100 == 4
    pid = rc.pid
    assert rc.check("to", b"bob@example.net").ok  # still in sync, same router
    assert rc.pid == pid


def test_r10_timeout_single_reply_and_restart(rc: RouterClient, plog: Path) -> None:
    a = rc.check("verify", b"hang")
    assert fmt(a.lines) == b"450 4.5.0 Interactive router timed out!\r\n"  # first only (T-7)
    assert rc.pid is None and rc.failures == 1
    assert any("timed out" in x for x in rc.logs)  # type: ignore[attr-defined]
    b = rc.check("verify", b"carol")
    assert b.lines[-1].code == 550 and rc.starts == 2


def test_r11_hello(rc: RouterClient, plog: Path) -> None:
    arg = router.prepare_hello(ADDR, b"client.example.org")
    a = rc.check("hello", arg)
    assert requests(plog) == ["hello\t[192.0.2.7] client.example.org\n"]
    assert a.ok
    assert fmt(a.lines + [ReplyLine(250, b"", b"HELP")]) == (
        b"250-Hello you at [192.0.2.7] !\r\n250 HELP\r\n"
    )


def test_hello_args_cut_and_defaults() -> None:
    assert router.prepare_hello(b"", b"") == b"[0.0.0.0] [0.0.0.0]"
    assert router.prepare_hello(ADDR, b"n" * 150) == ADDR + b" " + b"n" * 99


def test_multiline_mail_keeps_continuations(rc: RouterClient) -> None:
    a = rc.check("from", b"multi@example.org")
    assert fmt(a.lines) == b"250-2.0.0 first\r\n250 second; Ok\r\n"


def test_router_dies_then_restarts(rc: RouterClient) -> None:
    a = rc.check("to", b"die@example.org")
    assert fmt(a.lines) == b"450 4.5.0 Interactive router EOFed!\r\n"
    assert rc.failures == 1 and rc.pid is None
    assert rc.check("to", b"bob@example.net").ok
    assert rc.starts == 2


def test_partial_line_then_eof(rc: RouterClient) -> None:
    a = rc.check("to", b"partial@example.org")
    assert a.lines[-1].code == 450 and a.failed


@pytest.mark.parametrize("who", [b"garbage", b"huge", b"flood", b"nocode"])
def test_garbage_is_4xx_and_restart(rc: RouterClient, who: bytes) -> None:
    a = rc.check("to", who + b"@example.org")
    assert a.failed and not a.ok
    assert a.lines == [router.LOST_SYNC]
    assert rc.logs  # type: ignore[attr-defined]
    assert rc.check("to", b"bob@example.net").ok


def test_start_without_hungry(plog: Path) -> None:
    env = dict(os.environ, PEER_LOG=str(plog), PEER_START="nohungry")
    c = RouterClient(peer("router.py"), ZCONFIG, ADDR, env=env, start_timeout=0.3)
    try:
        a = c.check("to", b"bob@example.net")
        assert fmt(a.lines) == (
            b"440 4.4.0 I am sick: Failed to init interactive router subsystem\r\n"
        )
        assert c.pid is None
        a = c.check("to", b"bob@example.net")  # retried on next need
        assert c.starts == 2 and a.lines[-1].code == 440
    finally:
        c.close()


@pytest.mark.parametrize("start", ["die"])
def test_start_dies(plog: Path, start: str) -> None:
    env = dict(os.environ, PEER_LOG=str(plog), PEER_START=start)
    c = RouterClient(peer("router.py"), ZCONFIG, ADDR, env=env, start_timeout=5)
    a = c.check("from", b"a@b")
    assert a.lines == [router.START_FAILED]
    c.close()


def test_no_mailbin_and_bad_exec(tmp_path: Path) -> None:
    logs: list[str] = []
    c = RouterClient(None, ZCONFIG, ADDR, log=logs.append)
    assert c.check("to", b"a@b").lines == [router.START_FAILED]
    assert any("MAILBIN unspecified in zmailer.conf" in x for x in logs)
    c = RouterClient(str(tmp_path / "nonexistent"), ZCONFIG, ADDR)
    assert c.check("to", b"a@b").lines == [router.START_FAILED]


def test_too_many_failures(plog: Path) -> None:
    env = dict(os.environ, PEER_START="die")
    c = RouterClient(peer("router.py"), ZCONFIG, ADDR, env=env)
    for _ in range(21):
        c.check("to", b"a@b")
    assert c.too_many_failures


HOSTILE = [
    b"$(touch /tmp/pwned)@example.org",
    b"`id`@example.org",
    b"${run{/bin/sh -c id}}@example.org",
    b"a;rm -rf /|b&c>d<e'f\"g\\h@example.org",
    b"*?[x]~!#%^@example.org",
]


@pytest.mark.parametrize("arg", HOSTILE)
def test_hostile_bytes_reach_router_literally(rc: RouterClient, plog: Path, arg: bytes) -> None:
    rc.check("to", arg)
    assert requests(plog) == ["to\t" + arg.decode() + "\n"]


@pytest.mark.parametrize("bad", [b"a\nb@x", b"a\rb@x", b"a\tb@x", b"a\0b@x", b"x\r\nto\tevil@x"])
def test_control_bytes_never_reach_router(rc: RouterClient, plog: Path, bad: bytes) -> None:
    a = rc.check("to", bad)
    assert fmt(a.lines) == b"501 5.5.4 Invalid character in argument\r\n"
    assert requests(plog) == []
    assert rc.pid is None  # not even started


def test_xtext_decoded_lf_refused(rc: RouterClient, plog: Path) -> None:
    # ORCPT=rfc822;a+0Ab@x decodes to "a\nb@x": never sent to any program
    decoded = b"a+0Ab@x".replace(b"+0A", b"\n")
    assert rc.check("to", decoded).lines[0].code == 501
    assert requests(plog) == []


def test_render_line_quirks() -> None:
    r = router.render_line
    assert r(b"250", ADDR) == ReplyLine(250, b"", b"250")
    assert r(b"250 2.1.5 x y", ADDR) == ReplyLine(250, b"2.1.5", b"x y")
    assert r(b"250-2.1.5 x", ADDR) == ReplyLine(250, b"2.1.5", b"x")
    assert r(b"550 nope", ADDR) == ReplyLine(550, b"nope", b"Hi [192.0.2.7], nope")


def test_prepare_address() -> None:
    p = router.prepare_address
    assert p(b"@a,@b:user@dom") == b"user@dom"
    assert p(b"@a,@b:user@dom", allow_source_route=True) == b"@a,@b:user@dom"
    assert p(b"foo\\ bar@x") == b'"foo\\ bar"@x'
    assert p(b'"foo\\ bar"@x') == b'"foo\\ bar"@x'
    assert p(b"plain@x") == b"plain@x"


def test_close_reaps(rc: RouterClient) -> None:
    rc.check("to", b"bob@example.net")
    pid = rc.pid
    assert pid is not None
    rc.close()
    assert rc.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root")
def test_router_runs_as_root_from_trusted_session(tmp_path: Path) -> None:
    # The session runs with effective uid = trusted user; the router gets root (§0.3).
    plog = tmp_path / "r.log"
    c = RouterClient(peer("router.py"), ZCONFIG, ADDR, env=dict(os.environ, PEER_LOG=str(plog)))
    os.seteuid(1)
    try:
        a = c.check("to", b"bob@example.net")
    finally:
        os.seteuid(0)
    c.close()
    assert a.ok
    assert read_log(plog)[0]["euid"] == 0


def test_router_killed_between_requests(rc: RouterClient) -> None:
    import signal

    assert rc.check("to", b"bob@example.net").ok
    pid = rc.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    a = rc.check("to", b"bob@example.net")  # write or read fails: EOF case, never silence
    assert a.failed and a.lines == [router.EOFED]
    assert rc.check("to", b"bob@example.net").ok and rc.starts == 2
