"""The HELO-pattern glob (lib/strmatch.c; protocol.md §2.6)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.strmatch import strmatch


@pytest.mark.parametrize(("pattern", "subject", "want"), [
    (b"*", b"", True),
    (b"*", b"anything.example", True),
    (b"*.example", b"host.example", True),
    (b"*.example", b"host.example.net", False),
    (b"host", b"host", True),
    (b"host", b"hostx", False),
    (b"host", b"HOST", False),  # case-sensitive: config.py lower-cases
    (b"h?st", b"host", True),
    (b"h?st", b"hst", False),
    (b"?", b"", False),
    (b"[abc]x", b"bx", True),
    (b"[abc]x", b"dx", False),
    (b"[a-c]x", b"bx", True),
    (b"[a-c]x", b"dx", False),
    (b"[!a-c]x", b"dx", True),
    (b"[!a-c]x", b"ax", False),
    (b"[a-]", b"-", True),
    (b"[a-]", b"a", True),
    (b"[0-9]*", b"7abc", True),
    (b"[]", b"a", False),
    (b"[abc", b"a", False),  # unterminated set never matches
    (b"\\[*\\]", b"[192.0.2.1]", True),
    (b"\\[*\\]", b"192.0.2.1", False),
    (b"\\*", b"*", True),
    (b"\\*", b"a", False),
    (b"a\\", b"a", False),  # trailing backslash never matches
    (b"*a*b*c", b"xxaxxbxxc", True),
    (b"*a*b*c", b"xxaxxbxx", False),
    (b"a*", b"a", True),
    (b"*\n", b"host", False),
    (b"\xe9*", b"\xe9t\xe9", True),
    (b"[^a]", b"^", True),  # ^ is not negation
    (b"[^a]", b"b", False),
])
def test_strmatch(pattern: bytes, subject: bytes, want: bool) -> None:
    assert strmatch(pattern, subject) is want


def test_range_upper_bound_capped_at_127() -> None:
    assert strmatch(b"[a-\xff]", b"z")
    assert not strmatch(b"[a-\xff]", b"\x80")


def test_many_stars_are_linear() -> None:
    subject = b"a" * 5000
    assert not strmatch(b"*a*a*a*a*a*a*a*a*a*a*b", subject)
    assert strmatch(b"*a*a*a*a*a*a*a*a*a*a", subject)
