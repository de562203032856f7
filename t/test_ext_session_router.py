"""The interactive router through the real session (interfaces.md §1, §8.1).

Sessions run in memory (``sessionkit``); the router is the real stand-in
program t/peers/router.py started by the real RouterClient, and the tests
assert on the bytes it received (its $PEER_LOG).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from peers.support import peer, read_log
from sessionkit import Harness, cmds, crlf

from zmailer_smtpd.router import RouterClient

HI = b"Hi [192.0.2.10], "


def requests(plog: Path) -> list[bytes]:
    return [x["request"].encode("latin-1") for x in read_log(plog) if "request" in x]


def starts(plog: Path) -> int:
    return sum(1 for x in read_log(plog) if "argv" in x)


def harness(tmp: Path, style: str = "veft", answer_timeout: float = 60.0,
            **env: str) -> tuple[Harness, Path]:
    plog = tmp / "router.log"
    h = Harness(tmp)
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n*       %s\n" % style.encode()
    h.values.update({"enable-router": True, "vrfycmd": True, "expncmd": True})
    e = dict(os.environ, PEER_LOG=str(plog), **env)
    rc = RouterClient(peer("router.py"), "/etc/zmailer/zmailer.conf", b"[192.0.2.10]",
                      env=e, start_timeout=10, answer_timeout=answer_timeout)
    h.ctx_extra["router"] = rc
    return h, plog


def replies(out: bytes) -> list[bytes]:
    """The reply lines after the greeting and the EHLO block."""
    lines = out.split(b"\r\n")[:-1]
    i = next(k for k, ln in enumerate(lines) if ln.startswith(b"250 HELP"))
    return lines[i + 1:]


def run(h: Harness, *lines: str | bytes) -> Any:
    return h.run(*cmds("EHLO client.example.net", *lines, "QUIT"))


def test_r2_r5_mail_and_rcpt_through_the_router(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>")
    assert b"250-ETRN\r\n" in r.output
    assert replies(r.output)[:2] == [
        b"250 2.0.0 Ok (routing verified); Ok",
        b"250 2.0.0 Ok (routing verified)",
    ]
    assert requests(plog) == [b"from\talice@example.org\n", b"to\tbob@example.net\n"]
    assert starts(plog) == 1  # one router for the whole session


def test_r3_null_sender(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "MAIL FROM:<>")
    assert replies(r.output)[0] == b"250 2.0.0 Ok (sourcechannel 'error' accepted); Ok"
    assert requests(plog) == [b"from\t\n"]


def test_r4_rcpt_refused_hi_insertion(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "MAIL FROM:<a@example.org>", "RCPT TO:<nosuchuser@mx.example.net>",
            "RCPT TO:<bob@example.net>", "DATA")
    got = replies(r.output)
    assert got[1] == (b"554 5.0.0 " + HI + b"unresolvable address: <nosuchuser@mx.example.net>;"
                      b" nosuchuser; nosuchuser@mx.example.net")
    assert got[2] == b"250 2.0.0 Ok (routing verified)"
    assert got[3].startswith(b"354 ")  # the refused RCPT did not end the transaction


def test_r6_r7_r8_expn_vrfy(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "EXPN staff", "VRFY carol", "VRFY x")
    assert replies(r.output)[:4] == [
        b"250-2.1.5 Alice Example <alice>",
        b"250 2.0.0 smtp delivery to mx.example.org for <bob@example.org>",
        b"550 5.1.1 " + HI + b"no such user: <carol>",
        b"250 ok fine ok fine",
    ]
    assert requests(plog) == [b"expand\tstaff\n", b"verify\tcarol\n", b"verify\tx\n"]


def test_vrfy_expn_without_their_params_are_unknown(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    h.values.update({"vrfycmd": False, "expncmd": False})
    r = run(h, "VRFY carol", "EXPN staff")
    assert replies(r.output)[:2] == [
        b"550 5.5.2 Unknown command 'VRFY carol'",
        b"550 5.5.2 Unknown command 'EXPN staff'",
    ]
    assert requests(plog) == []


def test_vrfy_expn_without_style_flags_skip_the_router(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, style="ft")
    r = run(h, "VRFY carol", "EXPN staff")
    assert replies(r.output)[:2] == [
        b"252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
        b"502 5.4.0 Command not implemented",
    ]
    assert requests(plog) == []


def test_without_enable_router_nothing_is_asked(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    h.values["enable-router"] = False
    r = run(h, "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "VRFY carol")
    got = replies(r.output)
    assert got[0].startswith(b"250 2.1.0 Sender syntax Ok")
    assert got[1].startswith(b"250 2.1.5 Recipient address syntax Ok")
    assert got[2].startswith(b"252 2.5.2 ")
    assert starts(plog) == 0


@pytest.mark.parametrize("local", [
    b"a;rm -rf /",
    b"$(touch /tmp/pwned)",
    b"`id`",
    b"${run{/bin/sh -c id}}",
    b"a|b&c>d<e",
    b"'q'\"q\"",
])
def test_hostile_arguments_reach_the_router_as_literal_bytes(tmp_path: Path, local: bytes) -> None:
    h, plog = harness(tmp_path)
    quote = any(c in local for c in b"\" <>;|&")
    addr = (b"\"" + local.replace(b"\"", b"\\\"") + b"\"@example.org" if quote
            else local + b"@example.org")
    r = h.run(*cmds("EHLO client.example.net", b"MAIL FROM:<" + addr + b">",
                    b"RCPT TO:<" + addr + b">", "QUIT"))
    got = replies(r.output)
    assert got[0] == b"250 2.0.0 Ok (routing verified); Ok", got
    assert got[1] == b"250 2.0.0 Ok (routing verified)"
    assert requests(plog) == [b"from\t" + addr + b"\n", b"to\t" + addr + b"\n"]
    assert not os.path.exists("/tmp/pwned")


def test_xtext_lf_in_orcpt_never_reaches_the_router(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.org>",
                    "RCPT TO:<b@example.net> NOTIFY=SUCCESS ORCPT=rfc822;b+0A+0D+00from+09evil@x",
                    "DATA"), b"Subject: t\r\n\r\nbody\r\n.\r\n", *cmds("QUIT"))
    got = replies(r.output)
    assert got[1] == b"250 2.0.0 Ok (routing verified)"
    assert got[3].startswith(b"250 2.0.0 ")
    # the router saw the address only, one line per request
    assert requests(plog) == [b"from\ta@example.org\n", b"to\tb@example.net\n"]
    # the spool file (read by the router later) keeps ORCPT xtext-encoded on one line
    (name, data), = [(k, v) for k, v in r.files().items() if k.startswith("router/")]
    todsn = [ln for ln in data.split(b"\n") if ln.startswith(b"todsn ")]
    assert len(todsn) == 1 and b"ORCPT=rfc822;b+0A+0D+00from+09evil@x" in todsn[0]
    assert data.count(b"evil") == 1 and b"\tevil" not in data


@pytest.mark.parametrize("word,code", [
    (b"die", b"450 4.5.0 Interactive router EOFed!"),
    (b"garbage", None),
    (b"partial", b"450 4.5.0 Interactive router EOFed!"),
    (b"huge", None),
    (b"flood", None),
])
def test_router_failure_is_4xx_and_the_session_goes_on(tmp_path: Path, word: bytes,
                                                      code: bytes | None) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "MAIL FROM:<a@example.org>", b"RCPT TO:<" + word + b"@example.net>",
            "RCPT TO:<bob@example.net>", "NOOP")
    got = replies(r.output)
    assert got[0] == b"250 2.0.0 Ok (routing verified); Ok"
    if code is not None:
        assert got[1] == code
    assert got[1][:1] == b"4", got
    assert got[2] == b"250 2.0.0 Ok (routing verified)"  # a new router answered
    assert got[3].startswith(b"250 2.0.0 ")
    assert got[-1].startswith(b"221 2.0.0 ")
    assert starts(plog) == 2
    assert any(b"router" in ln for ln in r.log)


def test_router_that_hangs_times_out_4xx(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, answer_timeout=0.5)
    r = run(h, "MAIL FROM:<a@example.org>", "RCPT TO:<hang@example.net>",
            "RCPT TO:<bob@example.net>")
    got = replies(r.output)
    assert got[1] == b"450 4.5.0 Interactive router timed out!"
    assert got[2] == b"250 2.0.0 Ok (routing verified)"


def test_router_that_cannot_start(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, PEER_START="die")
    r = run(h, "MAIL FROM:<a@example.org>", "NOOP")
    got = replies(r.output)
    assert got[0] == b"440 4.4.0 I am sick: Failed to init interactive router subsystem"
    assert got[1].startswith(b"250 2.0.0 ")


def test_r9_silent_router_is_4xx_not_acceptance(tmp_path: Path) -> None:
    # DEVIATIONS (CHANGES): 3.0.1 answered "250 2.7.1 ... letting this thru...".
    h, plog = harness(tmp_path)
    r = run(h, "MAIL FROM:<a@example.org>", "RCPT TO:<silent@example.net>",
            "RCPT TO:<bob@example.net>")
    got = replies(r.output)
    assert got[1] == b"450 4.5.0 Interactive router gave no answer!"
    assert got[2] == b"250 2.0.0 Ok (routing verified)"


def test_r11_helo_with_style_h(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, style="veh")
    h.rhostname = b"client.example.org"
    r = h.run(*cmds("EHLO laptop.local", "QUIT"))
    assert requests(plog) == [b"hello\t[192.0.2.10] client.example.org\n"]
    lines = r.output.split(b"\r\n")
    assert lines[1] == b"250-Hello you at [192.0.2.10] !"
    assert lines[2].startswith(b"250-mx.example.org ")


def test_session_end_stops_the_router(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    run(h, "MAIL FROM:<a@example.org>")
    pid = next(x["pid"] for x in read_log(plog) if "pid" in x)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_crlf_helper() -> None:
    assert crlf("a") == b"a\r\n"


def test_r11_style_h_without_enable_router(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, style="veh")
    h.values["enable-router"] = False
    r = h.run(*cmds("EHLO laptop.local", "MAIL FROM:<a@example.org>", "QUIT"))
    lines = r.output.split(b"\r\n")
    assert lines[1] == b"400 4.4.0 I am sick: Interactive routing subsystem is not enabled"
    assert lines[2].startswith(b"503 ")  # no HELO state change
    assert starts(plog) == 0


@pytest.mark.parametrize("style", ["ve", "veftFT", "veF", "veT"])
def test_f_t_style_flags_gate_mail_and_rcpt(tmp_path: Path, style: str) -> None:
    # spec/README.md: MAIL FROM / RCPT TO checks are switched on by f / t (F / T win).
    h, plog = harness(tmp_path, style=style)
    r = run(h, "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>")
    got = replies(r.output)
    mail_checked = "f" in style and "F" not in style
    rcpt_checked = "t" in style and "T" not in style
    assert got[0].startswith(b"250 2.0.0 Ok (routing verified); Ok" if mail_checked else b"250 2.1.0 ")
    assert got[1].startswith(b"250 2.0.0 Ok (routing verified)" if rcpt_checked else b"250 2.1.5 ")
    want = ([b"from\ta@example.org\n"] if mail_checked else []) + (
        [b"to\tb@example.net\n"] if rcpt_checked else [])
    assert requests(plog) == want


def test_hostile_vrfy_expn_arguments_are_one_literal_line(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    r = run(h, "VRFY $(id) `id` ${run{/bin/sh}} ;|&", "EXPN a\tb")
    got = replies(r.output)
    assert got[0] == b"250 2.1.5 Some User <$(id) `id` ${run{/bin/sh}} ;|&>"
    assert got[1] == b"501 5.5.4 Invalid character in argument"  # a TAB never reaches the router
    assert requests(plog) == [b"verify\t$(id) `id` ${run{/bin/sh}} ;|&\n"]
