"""trust-whoson (policy.md §9.2): the engine with a real policy DB, and the real
session set-up (cli.complete_context: whoson lookup first, then the policy)
with the stand-in whosond on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from peers.support import server
from policy_support import build_db
from sessionkit import Harness, ScriptTransport, cmds, crlf

from zmailer_smtpd import cli, received
from zmailer_smtpd.dnsresolve import Resolver, Server
from zmailer_smtpd.policy.dnscheck import SelfAddrs
from zmailer_smtpd.policy.engine import PolicySession, SessionPolicy, open_policy
from zmailer_smtpd.session import Session
from zmailer_smtpd.stream import SmtpStream

A = b"[192.0.2.10]"


pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def engine(tmp: Path, src: str, whoson: bool) -> PolicySession:
    rc, msgs = build_db({"smtp-policy.src": src, "localnames": ""}, tmp / "db")
    assert rc == 0, msgs
    db, status = open_policy("btree", str(tmp / "db" / "smtp-policy"))
    return PolicySession(db, status, resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0),
                         selfaddrs=SelfAddrs([]), myhostname=b"mx.example.org", client_text=A,
                         whoson=whoson)


# relaytarget - refuses the other domain at once (no DNS), unless RCPT is trusted
BASE = "elsewhere.example  relaytarget -\n"


def rcpt_ok(ps: PolicySession) -> bool:
    """The session's RCPT answer: 0 accepts, -1 is the 550 "Policy rejection"."""
    v = SessionPolicy(ps).rcpt(b"u@elsewhere.example")
    assert v.result in (0, -1), v
    return v.result == 0


@pytest.mark.parametrize("whoson, trusted", [(True, True), (False, False)])
def test_ip_entry_with_whoson_trusts_recipients(tmp_path: Path, whoson: bool, trusted: bool) -> None:
    ps = engine(tmp_path, BASE + "[192.0.2.0]/24  trust-whoson +\n", whoson)
    assert ps.connect("192.0.2.10").result == 0
    assert ps.trust_recipients is trusted
    assert ps.mail_from(b"a@sender.example").result == 0
    assert rcpt_ok(ps) is trusted
    # an IP-entry grant lasts the whole session
    assert ps.mail_from(b"b@sender.example").result == 0
    assert rcpt_ok(ps) is trusted


def test_mail_level_grant_is_withdrawn_at_the_next_mail(tmp_path: Path) -> None:
    ps = engine(tmp_path, BASE + "friends.example  trust-whoson +\nvip@other.example  trust-whoson +\n", True)
    ps.connect("192.0.2.10")
    assert not ps.trust_recipients
    assert ps.mail_from(b"a@friends.example").result == 0  # domain level
    assert rcpt_ok(ps)
    assert ps.mail_from(b"a@stranger.example").result == 0  # withdrawn
    assert not rcpt_ok(ps)
    assert ps.mail_from(b"vip@other.example").result == 0  # user level
    assert rcpt_ok(ps)
    assert ps.mail_from(b"<>"[1:1]).result == 0  # null sender: withdrawn, not requested
    assert not rcpt_ok(ps)


def test_mail_level_needs_valid_whoson(tmp_path: Path) -> None:
    ps = engine(tmp_path, BASE + "friends.example  trust-whoson +\n", False)
    ps.connect("192.0.2.10")
    assert ps.mail_from(b"a@friends.example").result == 0
    assert not rcpt_ok(ps)


def test_ip_minus_cancels_whoson_validity(tmp_path: Path) -> None:
    ps = engine(tmp_path, BASE + "[192.0.2.0]/24  trust-whoson -\nfriends.example  trust-whoson +\n", True)
    ps.connect("192.0.2.10")
    assert not ps.whoson_valid
    assert ps.mail_from(b"a@friends.example").result == 0
    assert not rcpt_ok(ps)


def test_rejected_sender_gets_no_grant(tmp_path: Path) -> None:
    ps = engine(tmp_path, BASE + "friends.example  rejectsource + trust-whoson +\n", True)
    ps.connect("192.0.2.10")
    assert ps.mail_from(b"a@friends.example").result == -1
    assert not ps.trust_recipients


def test_init_trace_shows_whoson_validity(tmp_path: Path) -> None:
    lines: list[str] = []
    open_policy("btree", str(tmp_path / "none"), debug=lines.append, whoson=True)
    assert lines[0] == f"000-Policyinit call starts: submission mode: 0, valid whoson: 1, dbpath: {tmp_path / 'none'}"


# ------------------------------------------------------------------ the real set-up


def setup_session(tmp: Path, whosond_args: list[str]) -> bytes:
    """cli.complete_context does the whoson lookup (-w) and then builds the policy."""
    rc, msgs = build_db({"smtp-policy.src": "[127.0.0.1]/32  trust-whoson +\nelsewhere.example  relaytarget -\n",
                         "localnames": ""}, tmp / "db")
    assert rc == 0, msgs
    h = Harness(tmp)
    h.peer_addr = "127.0.0.1"
    h.policy = None
    h.rhost_flags = received.RhostFlags()  # reverse DNS is not this test's business
    h.config_text = b"PARAM policydb btree " + str(tmp / "db" / "smtp-policy").encode() + b"\n*  ve\n"
    opts = cli.Options()
    opts.whoson = True
    with server("whosond.py", *whosond_args, env=dict(os.environ, PEER_LOG=str(tmp / "w.log"))) as (port, _):
        h.values["whoson-server"] = f"127.0.0.1 {port} tcp"
        ctx = h.context()
        ctx.local_addr = "127.0.0.1"
        cli.complete_context(ctx, opts, h.zenv())
    assert ctx.extra["whoson"].validated is bool(whosond_args)
    ctx.myhostname = b"mx.example.org"
    ctx.policy.ps.myhostname = b"mx.example.org"
    t = ScriptTransport(cmds("HELO c.example", "MAIL FROM:<a@b.example>", "RCPT TO:<u@elsewhere.example>", "QUIT"))
    Session(ctx, SmtpStream(t, cmd_timeout=5, data_timeout=5)).run()
    return t.output


def test_session_with_whosond_logged_in(tmp_path: Path) -> None:
    out = setup_session(tmp_path, ["127.0.0.1=alice"])
    assert out.endswith(crlf("250 2.1.0 Sender syntax Ok; ", "250 2.1.5 Recipient address syntax Ok; rcpt=<u@elsewhere.example>",
                             "221 2.0.0 mx.example.org Out"))


def test_session_with_whosond_not_logged_in(tmp_path: Path) -> None:
    out = setup_session(tmp_path, [])
    assert b"550 5.7.1 Hello [127.0.0.1], Policy rejection on the target address: <u@elsewhere.example>\r\n" in out
    assert out.startswith(b"220 ")
