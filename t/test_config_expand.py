"""$-expansion of PARAM arguments (protocol.md §2.3)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.config import config_from_bytes, dollar_expand
from zmailer_smtpd.zenv import ZEnv

Z = ZEnv.from_bytes(b"MAILVAR=/var/mail\nA=1\nA_B=2\nLONG=" + b"L" * 50 + b"\n"
                    b"odd name=sp\nEMPTY=\n" + b"N" * 79 + b"=seventy-nine\n")


@pytest.mark.parametrize(("text", "want"), [
    (b"$MAILVAR/db", b"/var/mail/db"),
    (b"${MAILVAR}/db", b"/var/mail/db"),
    (b"$(MAILVAR)/db", b"/var/mail/db"),
    (b"$$MAILVAR", b"$MAILVAR"),  # $$ -> $, the result is not rescanned
    (b"$$$A", b"$1"),
    (b"$A_B", b"2"),  # longest [A-Za-z0-9_] run
    (b"$A-B", b"1-B"),
    (b"$UNKNOWN/x", b"$UNKNOWN/x"),  # unknown: left unchanged
    (b"${UNKNOWN}x", b"${UNKNOWN}x"),
    (b"$/x", b"$/x"),  # empty name: unchanged
    (b"${}x", b"${}x"),
    (b"$()x", b"$()x"),
    (b"x$", b"x$"),
    (b"${odd name}", b"sp"),  # a bracketed name is any bytes
    (b"${MAILVAR", b"/var/mail"),  # missing closing bracket: rest of line is the name
    (b"$(MAILVAR}", b"$(MAILVAR}"),  # that whole rest is the (unknown) name
    (b"$EMPTY|", b"|"),
    (b"$A$A", b"11"),
])
def test_expansion(text: bytes, want: bytes) -> None:
    assert dollar_expand(text, Z) == want


def test_process_environment_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/root-from-env")
    assert dollar_expand(b"$HOME", Z) == b"$HOME"


def test_names_truncated_to_79_bytes_for_lookup() -> None:
    assert dollar_expand(b"$" + b"N" * 79, Z) == b"seventy-nine"
    assert dollar_expand(b"$" + b"N" * 85 + b"/", Z) == b"seventy-nine/"


def test_expanded_line_capped_at_buffer() -> None:
    out = dollar_expand(b"$LONG" * 40, Z, cap=120)
    assert out == b"L" * 120
    assert dollar_expand(b"ab$LONG", Z, cap=10) == b"abLLLLLLLL"


def test_expansion_in_param_lines_and_line_cap() -> None:
    c = config_from_bytes(b"PARAM policydb btree $MAILVAR/db/smtp-policy\n"
                          b"PARAM smtp-auth-pipe ${MAILVAR}/x\n", Z)
    s = c.last_group()
    assert s.get("policydb") == ("btree", "/var/mail/db/smtp-policy")
    assert s.get("smtp-auth-pipe") == "/var/mail/x"
    # The whole expanded PARAM line stays within 1023 bytes.
    line = b"PARAM tls-cipher-list " + b"$LONG" * 100 + b"\n"
    got = config_from_bytes(line, Z).last_group().get("tls-cipher-list")
    cap = 1023 - len(b"PARAM tls-cipher-list ")  # 1001
    # 20 expansions fill 1000 bytes; the cut tail keeps one "$" that names nothing.
    assert got == "L" * 1000 + "$" and len(got) == cap


def test_expansion_can_split_tokens() -> None:
    z = ZEnv.from_bytes(b"DB=btree /var/db/p\n")
    c = config_from_bytes(b"PARAM policydb $DB\n", z)
    assert c.errors == []
    assert c.last_group().get("policydb") == ("btree", "/var/db/p")


def test_rest_of_line_keywords_not_expanded() -> None:
    c = config_from_bytes(b"PARAM hdr220 $MAILVAR\nPARAM help ${A}\n", Z)
    s = c.last_group()
    assert s.get("hdr220") == [b"$MAILVAR"]
    assert s.get("help") == [b"${A}"]
