"""DATA fast path (bodyxfer._clean_lines): whole chunks give exactly what the byte machine gives.

Feeding one byte at a time never takes the fast path (no complete line in a
chunk), so it is the oracle for the same bytes fed in large chunks.
"""

from __future__ import annotations

import random

import pytest

from zmailer_smtpd.bodyxfer import DataReceiver

ATOMS = [b"a", b"b", b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.\r\n", b"\r\n\r\n",
         b"From x", b"Precedence: bulk\r\n", b"\x80", b"x" * 50, b"\r\n.", b".\r\n"]


def feed(raw: bytes, cuts: list[int], lf_ok: bool, maxsize: int) -> tuple:
    out: list[bytes] = []
    rx = DataReceiver(out.append, lf_ok=lf_ok, maxsize=maxsize)
    left = None
    pos = 0
    for c in [*cuts, len(raw)]:
        left = rx.feed(raw[pos:c])
        pos = c
        if left is not None:
            left += raw[pos:]
            break
    if not rx.done:
        rx.eof()
    if rx.bare_eol:  # refused: what was seen before the flag depends on the chunking
        return (left, rx.size, rx.premature, rx.eof_state)
    return (b"".join(out), left, rx.size, rx.bare_eol, rx.too_big, rx.priority, rx.premature,
            rx.eof_state, rx.header_8bit, rx.x_advertisement, rx.bytes_written)


@pytest.mark.parametrize("seed", range(4))
def test_chunks_equal_byte_by_byte(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(1500):
        raw = b"".join(rnd.choice(ATOMS) for _ in range(rnd.randint(0, 30)))
        if rnd.random() < 0.6:
            raw += b"\r\n.\r\nQUIT\r\n"
        cuts = sorted(rnd.sample(range(len(raw) + 1), min(len(raw) + 1, rnd.randint(0, 3))))
        for lf_ok in (False, True):
            maxsize = 0  # too_big is decided per feed(): chunking moves it
            assert feed(raw, cuts, lf_ok, maxsize) == \
                feed(raw, list(range(1, len(raw))), lf_ok, maxsize), (raw, cuts, lf_ok)


def test_large_clean_body_in_one_chunk() -> None:
    body = b"".join(b"%d" % i + b"X" * 78 + b"\r\n" for i in range(2000)) + b"..dot\r\n.\r\nNOOP\r\n"
    out, left, size, bare, *_ = feed(body, [], False, 0)
    assert left == b"NOOP\r\n" and not bare and size == len(body) - 6
    assert out == body[: -len(b"\r\n.\r\nNOOP\r\n") + 2].replace(b"\r\n", b"\n").replace(
        b"\n..dot", b"\n.dot")
