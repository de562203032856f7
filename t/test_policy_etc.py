"""The shipped etc/ policy is a closed relay (issue 4 acceptance): local domains
accepted, relaying refused from outside, allowed from 127.0.0.1 and ::1."""

from __future__ import annotations

import shutil
from pathlib import Path

from policy_support import ROOT, dnsmasq, run_dialogue

from zmailer_smtpd.policy import builder

DNS = [
    "local=/example/",
    "host-record=sender.example,198.51.100.80",
    "mx-host=mx-other.example,mx.other.example,10",
    "host-record=mx.other.example,198.51.100.25",
    "mx-host=ours.example,mail.ours.example,20",
    "host-record=mail.ours.example,203.0.113.25",
]
FILES = ("smtp-policy.src", "localnames", "smtp-policy.relay", "smtp-policy.mx", "smtp-policy.spam")


def build_etc(tmp: Path) -> str:
    d = tmp / "db"
    d.mkdir()
    for f in FILES:
        shutil.copy(ROOT / "etc" / f, d / f)
    msgs: list[str] = []
    assert builder.build(str(d), err=msgs.append) == 0, msgs
    assert msgs == []
    return str(d / "smtp-policy")


def test_default_policy_is_a_closed_relay(tmp_path: Path) -> None:
    dbpath = build_etc(tmp_path)
    cmds = [
        "EHLO client.example",
        "MAIL FROM:<a@sender.example>",
        "RCPT TO:<postmaster@localhost>",
        "RCPT TO:<u@LocalHost>",
        "RCPT TO:<u@ours.example>",
        "RCPT TO:<u@mx-other.example>",
        "RCPT TO:<u@nx.example>",
        "RCPT TO:<u%mx-other.example@localhost>",
    ]
    with dnsmasq(DNS, tmp_path) as res:
        outside = run_dialogue(dbpath, "192.0.2.10", cmds, network=True, resolver=res,
                               selfaddrs=["203.0.113.25"])
        local4 = run_dialogue(dbpath, "127.0.0.1", cmds[:2] + cmds[5:], network=True,
                              resolver=res, selfaddrs=["203.0.113.25"])
        local6 = run_dialogue(dbpath, "::1", ["EHLO client.example", "MAIL FROM:<you@nowhere.example>",
                                              "RCPT TO:<u@anywhere.example>"],
                              network=True, resolver=res, selfaddrs=["203.0.113.25"])
        badsender = run_dialogue(dbpath, "192.0.2.10", ["EHLO client.example", "MAIL FROM:<a@nx.example>"],
                                 network=True, resolver=res, selfaddrs=["203.0.113.25"])
    a = "[192.0.2.10]"
    assert outside == [
        "S: 220 …",
        "C: EHLO client.example",
        "S: 250-<H> Hello client.example",
        "S: 250-SIZE 0",
        "S: 250 …",
        "C: MAIL FROM:<a@sender.example>",
        "S: 250 2.1.0 Sender syntax Ok; ",
        "C: RCPT TO:<postmaster@localhost>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<postmaster@localhost>",
        "C: RCPT TO:<u@LocalHost>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@LocalHost>",
        "C: RCPT TO:<u@ours.example>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@ours.example>",
        "C: RCPT TO:<u@mx-other.example>",
        f"S: 550 5.7.1 Your IP address {a} is not allowed to relay to email address <u@mx-other.example> via our server; MX rule",
        "C: RCPT TO:<u@nx.example>",
        f"S: 550 5.4.3 Hello {a}, Policy analysis found DNS error on the target domain: <u@nx.example>",
        "C: RCPT TO:<u%mx-other.example@localhost>",
        f"S: 550 5.7.1 Your IP address {a} is not allowed to relay to email address <u%mx-other.example@localhost> via our server; MX rule",
    ]
    assert [x for x in local4 if x.startswith("S: ")][-3:] == [
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@mx-other.example>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@nx.example>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u%mx-other.example@localhost>",
    ]
    assert local6[-1] == "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@anywhere.example>"
    assert badsender[-1] == (
        f"S: 553 5.4.3 Hello {a}, for MAIL FROM address <a@nx.example> the policy analysis"
        " reports DNS error with your source domain."
    )
