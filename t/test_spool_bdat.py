"""BDAT chunk transfer (spool.md §9.3, T-5, T-6)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.bodyxfer import BdatReceiver


def transfer(
    chunks: list[tuple[bytes, bool]], *, piece: int = 0
) -> tuple[bytes, bytes, BdatReceiver]:
    """Send chunks (data, last) through one receiver; ``piece`` > 0 feeds that many bytes at a time.
    Returns (output, leftover of the last chunk, receiver)."""
    out = bytearray()
    br = BdatReceiver(out.extend)
    left = b""
    for data, last in chunks:
        br.start_chunk(len(data), last=last)
        stream = data + b"NEXT"
        if piece:
            parts = [stream[i : i + piece] for i in range(0, len(stream), piece)]
        else:
            parts = [stream]
        got = None
        while parts:
            got = br.feed(parts.pop(0))
            if got is not None:
                got += b"".join(parts)
                break
        assert got == b"NEXT"
        left = got
    return bytes(out), left, br


def test_last_single_chunk() -> None:
    out, left, br = transfer([(b"A: b\r\n\r\nbody\r\n", True)])
    assert out == b"A: b\n\nbody\n" and br.done and br.total == 14


def test_crlf_split_across_chunks() -> None:
    out, _, _ = transfer([(b"line one\r", False), (b"\nline two\r\n", True)])
    assert out == b"line one\nline two\n"


def test_cr_cr_lf_becomes_lf() -> None:
    out, _, _ = transfer([(b"a\r\r\nb\r\r\r\nc\r\n", True)])
    assert out == b"a\nb\nc\n"


def test_lone_cr_kept_trailing_cr_of_last_chunk_lost() -> None:
    out, _, _ = transfer([(b"lone\rCR\r\r", False), (b"x\r", True)])
    assert out == b"lone\rCR\rx"


def test_no_dot_or_header_processing() -> None:
    body = b"From x\r\nPrecedence: junk\r\n\r\n.leading\r\n..two\r\n.\r\n"
    out, _, _ = transfer([(body, True)])
    assert out == b"From x\nPrecedence: junk\n\n.leading\n..two\n.\n"


def test_every_split_same_result() -> None:
    chunks = [(b"From: a\r\nSubject: s\r", False), (b"\n\r\n.x\r\r\n", False), (b"end\r\n\r", True)]
    whole, _, br = transfer(chunks)
    assert whole == b"From: a\nSubject: s\n\n.x\nend\n"
    for piece in range(1, 12):
        out, _, br2 = transfer(chunks, piece=piece)
        assert out == whole and br2.total == br.total


def test_zero_size_and_discard() -> None:
    out = bytearray()
    br = BdatReceiver(out.extend)
    br.start_chunk(0)
    assert not br.in_chunk and br.feed(b"RSET\r\n") == b"RSET\r\n"
    br.start_chunk(5, discard=True)
    assert br.feed(b"abcdeQUIT") == b"QUIT"
    br.start_chunk(0, last=True)
    assert br.done and out == b""
    with pytest.raises(ValueError):
        br.start_chunk(-1)


def test_premature_eof() -> None:
    br = BdatReceiver(lambda b: None)
    br.start_chunk(10)
    assert br.feed(b"abc") is None
    br.eof()
    assert br.premature and not br.done


def test_output_error_is_kept() -> None:
    def bad(b: bytes) -> None:
        raise OSError(5, "EIO")

    br = BdatReceiver(bad)
    br.start_chunk(4, last=True)
    assert br.feed(b"abcdX") == b"X"
    assert isinstance(br.out_error, OSError)
