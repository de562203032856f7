"""DATA byte transformation (spool.md §8 and the README's DATA decisions)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.bodyxfer import HEADER_LINE_LIMIT, DataReceiver


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def __call__(self, b: bytes) -> None:
        self.data += b
        self.calls += 1


def run(raw: bytes, *, lf_ok: bool = False, maxsize: int = 0, pieces: list[bytes] | None = None):
    sink = Sink()
    dr = DataReceiver(sink, lf_ok=lf_ok, maxsize=maxsize)
    left = None
    todo = list(pieces) if pieces is not None else [raw]
    while todo:
        left = dr.feed(todo.pop(0))
        if left is not None:
            left += b"".join(todo)  # the rest belongs to the next command
            break
    return dr, bytes(sink.data), left


def result(dr: DataReceiver, out: bytes, left: bytes | None) -> tuple:
    # After a bare line end the message is refused and its partial output thrown
    # away, so output and header findings depend on where the flag was raised.
    if dr.bare_eol:
        return (None, left, dr.size, None, True, dr.too_big, dr.done, None)
    return (out, left, dr.size, dr.priority, False, dr.too_big, dr.done, dr.x_advertisement)


# -- dots and the end -------------------------------------------------------


def test_dot_alone_ends_an_empty_message() -> None:
    dr, out, left = run(b".\r\n")
    assert (out, left, dr.size, dr.done) == (b"", b"", 3, True)


def test_dot_stuffing() -> None:
    raw = b"H: v\r\n\r\n..\r\n..dot line\r\n.leading dot\r\nmid.dot\r\n...\r\n.\r\n"
    dr, out, left = run(raw)
    assert out == b"H: v\n\n.\n.dot line\nleading dot\nmid.dot\n..\n"
    assert left == b"" and not dr.bare_eol


def test_leftover_after_end_returned_intact() -> None:
    tail = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n\r\n"
    dr, out, left = run(b"S: x\r\n\r\nbody\r\n.\r\n" + tail)
    assert left == tail and out == b"S: x\n\nbody\n"
    assert dr.feed(b"more") == b"more"  # after the end everything is passed back


def test_end_needs_crlf_before_the_dot() -> None:
    dr, out, left = run(b"a.\r\n.\r\n")
    assert out == b"a.\n" and left == b""


# -- bare line ends in network sessions ----------------------------------------


@pytest.mark.parametrize(
    "smuggle",
    [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r"],
)
def test_smuggling_vectors_never_end_early(smuggle: bytes) -> None:
    inner = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nSubject: forged\r\n\r\nx\r\n"
    raw = b"Subject: ok\r\n\r\nbody" + smuggle + inner + b".\r\n"
    dr, out, left = run(raw + b"QUIT\r\n")
    assert dr.done and left == b"QUIT\r\n"
    assert dr.bare_eol
    assert dr.size == len(raw)


@pytest.mark.parametrize("body", [b"bare\nLF\r\n", b"lone\rCR\r\n", b"cr-cr\r\r\n", b"x\n"])
def test_bare_eol_flagged_and_read_to_real_end(body: bytes) -> None:
    raw = b"S: x\r\n\r\n" + body + b"more\r\n.\r\n"
    dr, out, left = run(raw + b"NOOP\r\n")
    assert dr.bare_eol and left == b"NOOP\r\n" and dr.size == len(raw)


def test_output_stops_after_bare_eol() -> None:
    sink = Sink()
    dr = DataReceiver(sink, lf_ok=False)
    assert dr.feed(b"S: x\r\n\r\nok\r\n") is None
    before = bytes(sink.data)
    assert dr.feed(b"bad\nline\r\n" + b"y" * 10000 + b"\r\n") is None
    assert dr.feed(b".\r\n") == b""
    assert bytes(sink.data) == before and dr.bare_eol


def test_clean_crlf_message_has_no_flag() -> None:
    dr, out, _ = run(b"A: b\r\n c\r\n\r\nline\r\n\r\n.\r\n")
    assert not dr.bare_eol and out == b"A: b\n c\n\nline\n\n"


# -- -i mode: 3.0.1's machine --------------------------------------------------


def test_lf_mode_table() -> None:
    dr, out, left = run(
        b"S: x\n\nbare\nLF\r\nlone\rCR\r\nend\r\r\n.x\n..\n.\r\r\nz\n.\nREST", lf_ok=True
    )
    assert out == b"S: x\n\nbare\nLF\nlone\rCR\nend\r\nx\n.\n\r\nz\n"
    assert left == b"REST" and not dr.bare_eol


@pytest.mark.parametrize("end", [b".\n", b".\r\n"])
def test_lf_mode_end_markers(end: bytes) -> None:
    dr, out, left = run(b"a\n" + end + b"X", lf_ok=True)
    assert (out, left) == (b"a\n", b"X")


def test_lf_mode_cr_dot_is_not_an_end() -> None:
    dr, out, left = run(b"a\r.\r\nb\n.\n", lf_ok=True)
    assert (out, left) == (b"a\r.\nb\n", b"")


# -- every byte boundary ------------------------------------------------------

SPLIT_CASES = [
    (b"From x\r\nPrecedence: bulk\r\nS: y\r\n\r\n..a\r\n.b\r\nc\r\n.\r\nNEXT\r\n", False),
    (b"S: x\r\n\r\nbody\n.\nmore\r.\r\nreal\r\n.\r\nQUIT\r\n", False),
    (
        b"From alice\r\nPrecedence: junk\r\n\r\n.leading\r\nbare\nLF\r\nlone\rCR\r\nx\r\r\n\r\n.\r\nRSET\r\n",
        True,
    ),
    (b"\r\n.\r\n", False),
    (b"..\r\n.\r\nX", False),
]


@pytest.mark.parametrize("raw,lf_ok", SPLIT_CASES)
def test_every_split_gives_the_same_result(raw: bytes, lf_ok: bool) -> None:
    whole = result(*run(raw, lf_ok=lf_ok))
    assert whole[6]  # done
    for k in range(len(raw) + 1):
        assert result(*run(raw, lf_ok=lf_ok, pieces=[raw[:k], raw[k:]])) == whole, k
    bytewise = [raw[i : i + 1] for i in range(len(raw))]
    assert result(*run(raw, lf_ok=lf_ok, pieces=bytewise)) == whole


# -- size ---------------------------------------------------------------------


def test_maxsize_counts_raw_bytes_including_terminator() -> None:
    base = b"Subject: s\r\n\r\n"
    body_len = 100 - len(base) - 2 - 3
    raw = base + b"x" * body_len + b"\r\n.\r\n"
    assert len(raw) == 100
    dr, out, left = run(raw, maxsize=100)
    assert not dr.too_big and dr.size == 100 and left == b""
    raw = base + b"x" * (body_len + 1) + b"\r\n.\r\n"
    dr, out, left = run(raw + b"QUIT\r\n", maxsize=100)
    assert dr.too_big and dr.size == 101 and left == b"QUIT\r\n"


def test_oversize_read_to_real_end_without_writing_on() -> None:
    sink = Sink()
    dr = DataReceiver(sink, lf_ok=False, maxsize=1000)
    chunk = b"y" * 500 + b"\r\n"
    assert dr.feed(b"S: x\r\n\r\n") is None
    for _ in range(10):
        assert dr.feed(chunk) is None
    assert dr.too_big and len(sink.data) < 1100
    assert dr.feed(b".\r\nQUIT\r\n") == b"QUIT\r\n"
    assert dr.size == 8 + 10 * 502 + 3


def test_dot_stuffed_bytes_and_from_line_are_counted() -> None:
    raw = b"From x\r\n\r\n..\r\n.\r\n"
    dr, out, _ = run(raw)
    assert out == b"\n.\n" and dr.size == len(raw)


# -- header phase -------------------------------------------------------------


def test_from_line_dropped_only_as_first_line() -> None:
    _, out, _ = run(b"From a b\r\nX: 1\r\n\r\nFrom body\r\n.\r\n")
    assert out == b"X: 1\n\nFrom body\n"
    _, out, _ = run(b">From a\r\nX: 1\r\n\r\n.\r\n")
    assert out == b"X: 1\n\n"
    _, out, _ = run(b"X: 1\r\nFrom a\r\n\r\n.\r\n")
    assert out == b"X: 1\nFrom a\n\n"
    _, out, _ = run(b"from a\r\n\r\n.\r\n")
    assert out == b"from a\n\n"


@pytest.mark.parametrize(
    "hdrs,prio",
    [
        (b"Precedence: bulk\r\n", 1),
        (b"precedence:\tJUNK\r\n", 9),
        (b"Precedence:bulky\r\n", 1),
        (b"Precedence: list\r\n", 0),
        (b"Precedence: jun\r\n", 0),
        (b"Precedence: bulk\r\nPrecedence: normal\r\n", 0),
        (b"Precedence: junk\r\nPrecedence: high\r\n", 0),
        (b"Precedence: junk\r\nPrecedence: norm\r\n", 9),
        (b"X-Precedence: bulk\r\n", 0),
        (b"Subject: a\r\n Precedence: bulk\r\n", 0),
    ],
)
def test_precedence(hdrs: bytes, prio: int) -> None:
    dr, out, _ = run(hdrs + b"\r\nPrecedence: junk\r\n.\r\n")
    assert dr.priority == prio


def test_whitespace_only_line_ends_headers() -> None:
    dr, out, _ = run(b"A: 1\r\n \t \r\nPrecedence: bulk\r\nFrom x\r\n.\r\n")
    assert out == b"A: 1\n \t \nPrecedence: bulk\nFrom x\n"
    assert dr.priority == 0


def test_x_advertisement_is_only_noted() -> None:
    dr, out, _ = run(b"X-Advertisment: a\r\n\r\n.\r\n")
    assert dr.x_advertisement and out == b"X-Advertisment: a\n\n"


def test_message_without_body_separator() -> None:
    _, out, _ = run(b"A: 1\r\nB: 2\r\n.\r\n")
    assert out == b"A: 1\nB: 2\n"


def test_long_header_line_is_kept_whole() -> None:
    """3.0.1 drops the rest of a header line past 3999 bytes, LF included, and glues
    the next line on (``X-Long: aaa…aNext: h``).  Not copied: the line is kept."""
    long = b"X-Long: " + b"a" * 5000
    dr, out, _ = run(long + b"\r\nNext: h\r\nPrecedence: bulk\r\n\r\nb\r\n.\r\n")
    assert out == long + b"\nNext: h\nPrecedence: bulk\n\nb\n"
    assert dr.long_header_lines == 1 and dr.priority == 1


def test_long_lines_classified_on_their_prefix() -> None:
    first = b"From " + b"z" * (HEADER_LINE_LIMIT + 50)
    _, out, _ = run(first + b"\r\nA: 1\r\n\r\n.\r\n")
    assert out == b"A: 1\n\n"  # a long first From line is dropped whole
    blank = b" " * (HEADER_LINE_LIMIT + 10) + b"x"
    _, out, _ = run(b"A: 1\r\n" + blank + b"\r\nPrecedence: junk\r\n.\r\n")
    assert out == b"A: 1\n" + blank + b"\nPrecedence: junk\n"


def test_header_8bit_detected_unchanged() -> None:
    dr, out, _ = run(b"Subject: caf\xc3\xa9\r\n\r\n.\r\n")
    assert dr.header_8bit and out == b"Subject: caf\xc3\xa9\n\n"


# -- failures -------------------------------------------------------------------


def test_output_error_is_kept_and_reading_goes_on() -> None:
    calls = []

    def bad(b: bytes) -> None:
        calls.append(b)
        raise OSError(28, "No space left on device")

    dr = DataReceiver(bad, lf_ok=False)
    assert dr.feed(b"S: x\r\n\r\n") is None
    assert isinstance(dr.out_error, OSError)
    assert dr.feed(b"more\r\n" * 100) is None
    assert dr.feed(b".\r\nQUIT\r\n") == b"QUIT\r\n"
    assert len(calls) == 1


def test_premature_eof() -> None:
    dr = DataReceiver(Sink(), lf_ok=False)
    assert dr.feed(b"S: x\r\n\r\nbody\r\n.") is None
    dr.eof()
    assert dr.premature and dr.done and dr.eof_state == "DOT"


def test_large_message() -> None:
    line = b"x" * 76 + b"\r\n"
    raw = b"S: big\r\n\r\n" + line * 60000 + b".\r\n"
    pieces = [raw[i : i + 8192] for i in range(0, len(raw), 8192)]
    dr, out, left = run(raw, pieces=pieces)
    assert left == b"" and out == b"S: big\n\n" + (b"x" * 76 + b"\n") * 60000


def test_random_inputs_whole_equals_bytewise() -> None:
    """Fast paths (whole chunks) and the byte machine agree; on clean CR LF input the
    network machine stores exactly what 3.0.1's machine stores."""
    import random

    rng = random.Random(1234)
    tokens = [
        b"\r\n",
        b"\r\n",
        b".",
        b"x",
        b"Precedence: bulk",
        b"From ",
        b"\r",
        b"\n",
        b".\r\n",
        b" ",
    ]
    for _ in range(400):
        raw = b"".join(rng.choice(tokens) for _ in range(rng.randrange(1, 40))) + b"\r\n.\r\nTAIL"
        for lf_ok in (False, True):
            whole = result(*run(raw, lf_ok=lf_ok))
            bytewise = [raw[i : i + 1] for i in range(len(raw))]
            assert result(*run(raw, lf_ok=lf_ok, pieces=bytewise)) == whole, raw
        strict = run(raw)
        if not strict[0].bare_eol:
            lenient = run(raw, lf_ok=True)
            assert result(*strict) == result(*lenient), raw
