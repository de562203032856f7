"""The engine behind the real session.py (SessionContext.policy = make_session_policy):
policy.md §12 vectors as network transcripts (client 192.0.2.10, no PTR)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import build_db
from sessionkit import F0_GREETING, Harness, cmds, crlf

from zmailer_smtpd.dnsresolve import Resolver, Server
from zmailer_smtpd.policy.dnscheck import SelfAddrs
from zmailer_smtpd.policy.engine import make_session_policy

A = "[192.0.2.10]"


pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def harness(tmp_path: Path, src: str, **kw: object) -> Harness:
    rc, msgs = build_db({"smtp-policy.src": src, "localnames": ""}, tmp_path / "db")
    assert rc == 0, msgs
    h = Harness(tmp_path)
    h.policy = make_session_policy(
        {"policydb": ("btree", str(tmp_path / "db" / "smtp-policy"))},
        myhostname=b"mx.example.org", client_text=A.encode(),
        resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0), selfaddrs=SelfAddrs([]),
    )  # fmt: skip
    for k, v in kw.items():
        setattr(h, k, v)
    return h


def test_tv1_ip_rejection(tmp_path: Path) -> None:
    h = harness(tmp_path, "[192.0.2.0]/24   rejectnet +\n")
    r = h.run(*cmds("HELO client.example", "QUIT"))
    assert r.output == crlf(
        f"550-5.7.1 Hello {A}; If you feel we mistreat you, do contact us.",
        f"550-5.7.1 Hello {A}; Ask HELP for our contact information.",
        f"550 5.7.1 Hello {A}; Your network address is blackholed in our static tables",
        f"550-5.7.1 Hello {A}; Ask HELP for our contact information.",
        "550-5.7.1 If you feel we mistreat you, do contact us.",
        f"550 5.7.1 Hello {A}; you are on our reject-IP-address -list, GO AWAY!",
        "221 2.0.0 mx.example.org Out",
    )


def test_tv7_user_prefix_and_earlier_rejection(tmp_path: Path) -> None:
    h = harness(tmp_path, 'spammer@    message "No mail from spammer" rejectsource +\n')
    r = h.run(*cmds("HELO client.example", "MAIL FROM:<Spammer@Anywhere.Example>",
                    "RCPT TO:<u@x.example>", "MAIL FROM:<friend@anywhere.example>", "QUIT"))
    assert r.output == F0_GREETING + crlf(
        "250 mx.example.org Hello client.example",
        f"553 5.7.1 Hello {A}, for your MAIL FROM address <Spammer@Anywhere.Example> policy analysis reported: No mail from spammer",
        f"550 5.7.1 Hello {A}, access denied by the policy analysis functions by earlier rejection",
        "250 2.1.0 Sender syntax Ok; ",
        "221 2.0.0 mx.example.org Out",
    )


def test_tv11_tv19_relaytarget_routing_postmaster(tmp_path: Path) -> None:
    h = harness(tmp_path, ".                    relaytarget -\nourdomain.example    relaytarget +\n")
    r = h.run(*cmds("HELO client.example", "MAIL FROM:<a@b.example>",
                    "RCPT TO:<u@ourdomain.example>",
                    "RCPT TO:<u%elsewhere.example@ourdomain.example>",
                    "RCPT TO:<Postmaster>", "RCPT TO:<postmaster@elsewhere.example>", "QUIT"))
    assert r.output == F0_GREETING + crlf(
        "250 mx.example.org Hello client.example",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<u@ourdomain.example>",
        f"550 5.7.1 Hello {A}, Policy rejection on the target address: <u%elsewhere.example@ourdomain.example>",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<Postmaster>",
        f"550 5.7.1 Hello {A}, Policy rejection on the target address: <postmaster@elsewhere.example>",
        "221 2.0.0 mx.example.org Out",
    )


def test_tv16_freezenet_goes_to_freezer(tmp_path: Path) -> None:
    h = harness(tmp_path, "[192.0.2.0]/24   freezenet +\n")
    r = h.run(*cmds("HELO client.example", "MAIL FROM:<a@b.example>", "RCPT TO:<u@x.example>",
                    "DATA"), b"Subject: x\r\n\r\nbody\r\n.\r\n", *cmds("QUIT"))
    out = r.masked
    assert b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: accepted into freezer, no explanations; " in out
    assert any(k.startswith("freezer/") for k in r.files()), r.files().keys()


def adapter(tmp_path: Path, src: str, *, client: bytes = b""):  # type: ignore[no-untyped-def]
    rc, msgs = build_db({"smtp-policy.src": src, "localnames": ""}, tmp_path / "db")
    assert rc == 0, msgs
    return make_session_policy(
        {"policydb": ("btree", str(tmp_path / "db" / "smtp-policy"))}, myhostname=b"mx",
        client_text=client, resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0),
        selfaddrs=SelfAddrs([]),
    )  # fmt: skip


def test_adapter_reverse_name_and_freeze_codes(tmp_path: Path) -> None:
    pol = adapter(tmp_path, "stdin rejectnet +\n.freeze.example freezesource +\n"
                  "[198.51.100.0]/24 freezenet +\nq.example freeze +\n")
    assert pol.status == 0
    ans = pol.connect("192.0.2.1", b"stdin")
    assert (ans.result, pol.reject_net, pol.policyresult) == (0, False, -1)  # 220, but refused later
    assert pol.mail(b"a@b.example").result == -1
    pol2 = adapter(tmp_path / "2", ".freeze.example freezesource +\n[198.51.100.0]/24 freezenet +\n"
                   "q.example freeze +\n")
    assert pol2.connect("192.0.2.1", b"[192.0.2.1]").result == 0
    assert (pol2.mail(b"a@freeze.example").freeze, pol2.mail(b"a@b.example").freeze) == (2, 0)
    assert pol2.rcpt(b"u@q.example").freeze == 2
    pol3 = adapter(tmp_path / "3", "[198.51.100.0]/24 freezenet +\n")
    ans = pol3.connect("198.51.100.1", b"[198.51.100.1]")
    assert (ans.result, ans.freeze) == (1, 1)  # policyresult +1, 220 banner
    assert pol3.mail(b"a@b.example").freeze == 1


def test_adapter_postmaster_keeps_message_and_fails_closed(tmp_path: Path) -> None:
    pol = adapter(tmp_path, '[0.0.0.0]/0 rcpt-dns-rbl "_static text"\n. test-rcpt-dns-rbl +\n'
                  "postmaster@ok.example relaytarget +\n")
    pol.connect("192.0.2.1", b"[192.0.2.1]")
    pol.mail(b"a@b.example")
    ans = pol.rcpt(b"postmaster@x.example")
    assert (ans.result, ans.msg) == (-1, b"static text")
    assert (pol.postmaster(b"postmaster@x.example").result,
            pol.postmaster(b"postmaster@x.example").msg) == (-1, b"static text")
    assert pol.rcpt(b"postmaster@ok.example").result == 0
    broken = make_session_policy({"policydb": ("btree", str(tmp_path / "missing"))})
    assert broken.status == 2
    assert make_session_policy({}).status == 1
    assert make_session_policy({"policydb": ("dbm", "/x")}).status == 1
    assert broken.mail(b"a@b.example").result < 0 and broken.rcpt(b"u@x.example").result < 0
