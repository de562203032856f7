"""HELO/EHLO pattern lines and their traps (protocol.md §2.6, §7 traps 16-17, §8)."""

from __future__ import annotations

from zmailer_smtpd.config import Config, config_from_bytes, parse_pattern_line
from zmailer_smtpd.zenv import ZEnv

Z = ZEnv.from_bytes(b"")


def cfg(text: bytes) -> Config:
    return config_from_bytes(text, Z, path="p.conf")


def test_pattern_flags_and_loadavg() -> None:
    p = parse_pattern_line(b"Host.Example  12  veR\n", 3)
    assert (p.pattern, p.maxloadavg, p.flags, p.line) == (b"host.example", 12, "veR", 3)
    assert parse_pattern_line(b"h 1 ve\n", 1).maxloadavg == 2  # values < 2 become 2
    assert parse_pattern_line(b"h ve\n", 1).maxloadavg == 999


def test_flags_are_not_lower_cased() -> None:
    p = parse_pattern_line(b"*.EXAMPLE FTveR\n", 1)
    assert p.pattern == b"*.example" and p.flags == "FTveR"


def test_pattern_alone_keeps_newline_and_never_matches() -> None:
    c = cfg(b"*\n")
    assert c.configured
    assert c.patterns[0].pattern == b"*\n" and c.patterns[0].flags == ""
    assert c.find_pattern(b"anything") is None
    # Without a final newline the lone pattern does match (empty flags).
    c2 = cfg(b"*")
    p = c2.find_pattern(b"anything")
    assert p is not None and p.flags == ""


def test_quoted_pattern_keeps_opening_quote() -> None:
    p = parse_pattern_line(b'"a b" ve\n', 1)
    assert p.pattern == b'"a b' and p.flags == "ve"


def test_rejection_line_tv22() -> None:
    c = cfg(b"PARAM policydb btree /var/db/smtp-policy\n*.bad.example  !Go away\n*       ve\n")
    p = c.find_pattern(b"host.bad.example")
    assert p is not None and p.reject and p.message == b"Go away"
    q = c.find_pattern(b"client.example.net")
    assert q is not None and not q.reject and q.message is None and q.flags == "ve"


def test_first_match_wins_and_match_is_lower_cased() -> None:
    c = cfg(b"*.example.net  veR\n*  ve\n")
    p = c.find_pattern(b"CLIENT.Example.NET")
    assert p is not None and p.flags == "veR"


def test_sample_style_star_star_veR_trap() -> None:
    c = cfg(b"* * veR\n")
    p = c.find_pattern(b"x")
    assert p is not None and p.flags == "* veR" and "R" in p.flags and not p.reject


def test_host_star_bang_message_trap_does_not_reject() -> None:
    c = cfg(b"host * !NO EMAIL\n")
    p = c.find_pattern(b"host")
    assert p is not None
    assert p.flags == "* !NO EMAIL"
    assert not p.reject and p.message is None
    assert "E" in p.flags and "M" in p.flags  # the message letters act as flags


def test_loadavg_then_bang_rejects() -> None:
    p = cfg(b"host 999 !NO EMAIL\n").find_pattern(b"host")
    assert p is not None and p.reject and p.message == b"NO EMAIL" and p.maxloadavg == 999


def test_style_r_pattern_tv30() -> None:
    p = cfg(b"*  veR\n").find_pattern(b"client.example.net")
    assert p is not None and p.flags == "veR"


def test_unconfigured_tv27() -> None:
    c = cfg(b"PARAM policydb btree /var/db/smtp-policy\n")
    assert not c.configured and c.find_pattern(b"client.example.net") is None


def test_loopback_rule_inputs() -> None:
    # The session asks for the pattern matching "127.0.0.1" (§2.6 last paragraph).
    c = cfg(b"127.0.0.1 -\n*  ve\n")
    p = c.find_pattern(b"127.0.0.1")
    assert p is not None and p.flags == "-"


def test_bracket_literal_pattern() -> None:
    c = cfg(b"\\[*\\]  999 ve\n*  veR\n")
    p = c.find_pattern(b"[192.0.2.1]")
    assert p is not None and p.flags == "ve"


def test_trailing_blank_helo_matched_verbatim() -> None:
    c = cfg(b"host  ve\n*  veR\n")
    p = c.find_pattern(b"host \t")
    assert p is not None and p.flags == "veR"
