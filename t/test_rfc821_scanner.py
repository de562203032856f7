"""Unit tests of the RFC 821 scanner beyond the golden cases (protocol.md §5)."""

from __future__ import annotations

import string

from zmailer_smtpd import rfc821
from zmailer_smtpd.rfc821 import ScanState

# ---------------------------------------------------------------- §5.2 classes

ATOM_PUNCT = bytes.fromhex("21 23 24 25 26 27 2A 2B 2D 2F 3D 3F 5E 5F 60 7B 7C 7D 7E")
LETTERS_DIGITS = (string.ascii_letters + string.digits).encode()


def _one_char_local_part_ok(b: int) -> bool:
    st = ScanState()
    buf = bytearray(b"<" + bytes([b]) + b"@x.example>")
    return rfc821.path(st, buf, 0, True) == len(buf)


def test_c_class_is_letters_digits_and_19_punctuation_bytes() -> None:
    assert len(ATOM_PUNCT) == 19
    allowed = {b for b in range(256) if _one_char_local_part_ok(b)}
    assert allowed == set(LETTERS_DIGITS) | set(ATOM_PUNCT)


def test_atom_class_equals_c_class() -> None:
    for b in range(1, 256):
        st = ScanState()
        ok = rfc821.atom(st, bytes([b]), 0) == 1
        assert ok == (b in LETTERS_DIGITS or b in ATOM_PUNCT), hex(b)


def test_xchar_class() -> None:
    for b in range(0, 256):
        st = ScanState()
        ok = rfc821.xtext(st, bytes([b]), 0) == 1
        assert ok == (0x21 <= b <= 0x7E and b not in (0x2B, 0x3D)), hex(b)


def test_backslash_escapes_any_7bit_byte_in_local_part() -> None:
    for b in range(1, 128):
        st = ScanState()
        buf = bytearray(b"<a\\" + bytes([b]) + b"@x.example>")
        assert rfc821.path(st, buf, 0, True) == len(buf), hex(b)
    st = ScanState()
    buf = bytearray(b"<a\\\x80@x.example>")
    assert rfc821.path(st, buf, 0, True) == 0


def test_qtext_class() -> None:
    for b in range(1, 128):
        st = ScanState()
        buf = bytearray(b'<"' + bytes([b]) + b'"@x.example>')
        ok = rfc821.path(st, buf, 0, True) == len(buf)
        assert ok == (b not in (0x0A, 0x0D, 0x22, 0x5C)), hex(b)


# ---------------------------------------------------------------- state


def test_reset_clears_both_fields() -> None:
    st = ScanState()
    rfc821.path(st, bytearray(b"<a@b.>"), 0, False)
    assert st.error_text is not None and st.error_pos is not None
    st.reset()
    assert st.error_text is None and st.error_pos is None


def test_fresh_state_is_unset() -> None:
    st = ScanState()
    assert st.error_text is None and st.error_pos is None


def test_success_leaves_diagnostics_within_one_command() -> None:
    # "a.@b" is valid even in strict mode, but records a position (§5.3);
    # a later failure in the same command that sets no position reuses it.
    st = ScanState()
    line = bytearray(b"MAIL FROM:<a.@b.example> BY=x")
    end = rfc821.path(st, line, 10, True)
    assert end == 24
    assert st.error_pos == 13
    assert st.error_text == b"Had characters unsuitable for an rfc821-string"
    # the BY= caret of §4.9 shows "whatever the scanner last recorded"
    assert rfc821.caret_line(501, b"5.5.4", st.error_pos, True) == b"501-5.5.4    ^"


def test_failure_that_sets_nothing_keeps_earlier_text_of_same_command() -> None:
    # Sloppy RCPT runs path() first, then path2() on the same line (§4.7.3).
    st = ScanState()
    line = bytearray(b'RCPT TO:<"')
    assert rfc821.path(st, line, 8, False) == 8
    assert st.error_text is None  # the quoted-string failure records nothing
    assert rfc821.path2(st, line, 9, False) == 9
    assert st.error_text is None
    assert rfc821.error_message(st) == rfc821.FALLBACK_ERROR
    st2 = ScanState()
    line2 = bytearray(b"RCPT TO:<a@b.>")
    rfc821.path(st2, line2, 8, False)
    rfc821.path2(st2, line2, 9, False)
    assert st2.error_text == b"Spurious dot (.) at the end of the domain name"
    assert st2.error_pos == 12


def test_reset_between_commands_hides_stale_errors() -> None:
    st = ScanState()
    rfc821.path(st, bytearray(b"MAIL FROM:<a@b.>"), 10, False)
    st.reset()  # the session does this before each command's scan
    assert rfc821.helo_check(st, bytearray(b"EHLO"), 5) is False
    assert st.error_text == b"RFC821: No input"
    assert st.error_pos is None
    assert rfc821.caret_line(250, b"", st.error_pos, True) == b"250- ^"


# ---------------------------------------------------------------- path edits


def test_path_deletes_blanks_before_gt_in_place() -> None:
    st = ScanState()
    buf = bytearray(b"RCPT TO:<a@b.example \t \t> NOTIFY=NEVER")
    end = rfc821.path(st, buf, 8, False)
    assert bytes(buf) == b"RCPT TO:<a@b.example> NOTIFY=NEVER"
    assert end == 21
    assert buf[end:] == b" NOTIFY=NEVER"


def test_path_deletes_blanks_even_when_it_fails() -> None:
    st = ScanState()
    buf = bytearray(b"MAIL FROM:<a@b.example x>")
    assert rfc821.path(st, buf, 10, False) == 10
    assert bytes(buf) == b"MAIL FROM:<a@b.examplex>"


def test_path2_does_not_edit() -> None:
    st = ScanState()
    buf = bytearray(b"MAIL FROM:a@b.example   ")
    assert rfc821.path2(st, buf, 10, False) == 21
    assert bytes(buf) == b"MAIL FROM:a@b.example   "


def test_nul_ends_the_scan_like_a_c_string() -> None:
    st = ScanState()
    buf = bytearray(b"<a@b.example\x00>")
    assert rfc821.path(st, buf, 0, False) == 0
    assert st.error_text == b'Missing ">" at end'
    assert st.error_pos == 12


def test_strict_only_adds_checks() -> None:
    st = ScanState()
    assert rfc821.mailbox(st, b"postmaster", 0, False) == 10
    assert rfc821.mailbox(ScanState(), b"postmaster", 0, True) == 0
    assert rfc821.mailbox(ScanState(), b"a..b@c.example", 0, False) == 14
    assert rfc821.mailbox(ScanState(), b"a..b@c.example", 0, True) == 0


# ---------------------------------------------------------------- caret


def test_caret_cap_is_200_spaces() -> None:
    p = b"501-5.1.7 "
    for pos, spaces in ((210, 200), (211, 200), (5000, 200), (209, 199), (10, 0), (11, 1)):
        line = rfc821.caret_line(501, b"5.1.7", pos, True)
        assert line == p + b" " * spaces + b"^", pos
    line = rfc821.caret_line(501, b"5.1.7", 300, False)
    assert line == b"501- " + b" " * 200 + b"^"


def test_caret_never_multiline_and_no_crlf() -> None:
    for pos in (None, 0, 3, 100, 10_000):
        line = rfc821.caret_line(553, b"5.1.3", pos, True)
        assert b"\r" not in line and b"\n" not in line
        assert line.endswith(b"^") and line.count(b"^") == 1


def test_caret_lines_honours_no_multiline_replies() -> None:
    assert rfc821.caret_lines(501, b"5.1.7", 27, True, False) == []
    assert rfc821.caret_lines(501, b"5.1.7", 27, True, True) == [b"501-5.1.7" + b" " * 18 + b"^"]


def test_caret_code_is_three_digits() -> None:
    assert rfc821.caret_line(0, b"", None, True) == b"000- ^"


# ---------------------------------------------------------------- session helpers


def test_error_message_truncates_to_200() -> None:
    st = ScanState()
    st.error_text = b"x" * 300
    assert rfc821.error_message(st) == b"x" * 200
    assert rfc821.path_data(st) == b"Path data: " + b"x" * 200


def test_path_data_never_null() -> None:
    st = ScanState()
    assert b"(null)" not in rfc821.path_data(st)
    assert rfc821.path_data(st) == b"Path data: " + rfc821.FALLBACK_ERROR


def test_strip_source_route_tv28() -> None:
    assert rfc821.strip_source_route(b"@relay.example:alice@example.net", False) == (
        b"alice@example.net",
        b", source route ignored",
    )
    assert rfc821.strip_source_route(b"@relay.example,@r2.example:bob@example.org", False) == (
        b"bob@example.org",
        b", source route ignored",
    )


def test_strip_source_route_allowed_or_absent() -> None:
    route = b"@relay.example:alice@example.net"
    assert rfc821.strip_source_route(route, True) == (route, b"")
    assert rfc821.strip_source_route(b"alice@example.net", False) == (b"alice@example.net", b"")
    assert rfc821.strip_source_route(b"", False) == (b"", b"")


def test_quote_local_part() -> None:
    assert rfc821.quote_local_part(b"a\\ b@x") == b'"a\\ b"@x'
    assert rfc821.quote_local_part(b"a\\@b@x") == b'"a\\@b"@x'
    assert rfc821.quote_local_part(b'"a\\ b"@x') == b'"a\\ b"@x'
    assert rfc821.quote_local_part(b"plain@x") == b"plain@x"
    assert rfc821.quote_local_part(b"a\\ b") == b'"a\\ b"'


def test_xtext_decode() -> None:
    assert rfc821.xtext_decode(b"abc+2Bdef") == b"abc+def"
    assert rfc821.xtext_decode(b"a+3Db+20") == b"a=b "
    assert rfc821.xtext_decode(b"a+2") == b"a+2"
    assert rfc821.xtext_decode(b"+zz") == b"+zz"
    assert rfc821.xtext_decode(b"") == b""


def test_ipv6_hex_values_up_to_ffff_with_leading_zeros() -> None:
    for lit, ok in (
        (b"[IPv6:ffff::]", True),
        (b"[IPv6:FFFF::]", True),
        (b"[IPv6:0000ffff::]", True),
        (b"[IPv6:1ffff::]", False),
    ):
        st = ScanState()
        assert (rfc821.domain(st, lit, 0, True) == len(lit)) is ok, lit
