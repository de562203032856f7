"""The configuration variants of protocol.md §8 (fixture F0 and the TV variants)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.config import config_from_bytes
from zmailer_smtpd.zenv import ZEnv

F0 = b"PARAM policydb btree /var/db/smtp-policy\n*       ve\n"
Z = ZEnv.from_bytes(b"")


@pytest.mark.parametrize(("variant", "keyword", "value"), [
    (b"PARAM maxsize 1000000\n", "maxsize", 1000000),  # TV-15
    (b"PARAM max-unknown-commands 3\n", "max-unknown-commands", 3),  # TV-10
    (b"PARAM MaxSameIpSource 1\n", "maxsameipsource", 1),  # TV-26
    (b"PARAM maxsize 100\n", "maxsize", 100),  # TV-31
])
def test_param_variants(variant: bytes, keyword: str, value: int) -> None:
    c = config_from_bytes(variant + F0, Z)
    assert c.errors == [] and c.configured
    assert c.last_group().get(keyword) == value
    assert c.last_group().get("policydb") == ("btree", "/var/db/smtp-policy")


def test_f0_defaults_match_tv02_capabilities() -> None:
    s = config_from_bytes(F0, Z).last_group()
    # TV-02 advertises SIZE 0, 8BITMIME, PIPELINING, CHUNKING, ENHANCEDSTATUSCODES, DSN,
    # X-RCPTLIMIT 10000, ETRN, HELP; not DELIVERBY, STARTTLS, AUTH.
    assert s.get("maxsize") == 0
    for flag in ("8bitmime-ok", "pipelining-ok", "chunking-ok", "enhancedstatuscodes-ok",
                 "dsn-ok", "etrn-ok", "ehlo-ok"):
        assert s.get(flag) is True
    assert s.get("rcptlimitcount") == 10000
    assert s.get("deliverby") == -1 and s.get("use-tls") is False and s.get("smtp-auth") is False
    assert s.get("vrfycmd") is False and s.get("debugcmd") is False  # TV-09


def test_tv22_rejection_line_before_catch_all() -> None:
    c = config_from_bytes(b"PARAM policydb btree /var/db/smtp-policy\n"
                          b"*.bad.example  !Go away\n*       ve\n", Z)
    p = c.find_pattern(b"host.bad.example")
    assert p is not None and p.message == b"Go away"


def test_tv27_without_the_pattern_line_is_not_configured() -> None:
    c = config_from_bytes(b"PARAM policydb btree /var/db/smtp-policy\n", Z)
    assert not c.configured


def test_tv30_style_r() -> None:
    c = config_from_bytes(b"PARAM policydb btree /var/db/smtp-policy\n*  veR\n", Z)
    p = c.find_pattern(b"client.example.net")
    assert p is not None and p.flags == "veR"
