"""stream.SmtpStream: the s_gets reader of protocol.md §4.3, pending input, output
buffering and flushing (§3.12, §4.10), the transport swap of STARTTLS."""

from __future__ import annotations

import os
import socket

import pytest
from sessionkit import ScriptTransport

from zmailer_smtpd.stream import CAP, OUTBUF, FdTransport, SmtpStream, SocketTransport


def one(data: bytes):
    return SmtpStream(ScriptTransport([data])).s_gets()


@pytest.mark.parametrize(
    "sent,kept",
    [
        (b"NOOP\r\n", b"NOOP"),
        (b"NOOP\n", b"NOOP"),
        (b"QUIT\r", b"QUI"),  # CR then EOF: the T is overwritten
        (b"NO\x00OP\r\n", b"NO"),
        (b"\r\n", b""),
    ],
)
def test_line_ends(sent: bytes, kept: bytes) -> None:
    assert one(sent).text == kept


@pytest.mark.parametrize(
    "n,end,kept",
    [
        (8190, b"\r\n", 8190),
        (8191, b"\r\n", 8190),
        (8192, b"\r\n", 8192),
        (9000, b"\r\n", 8192),
        (8191, b"\n", 8191),
        (8192, b"\n", 8191),
        (9000, b"\n", 8192),
    ],
)
def test_length_table(n: int, end: bytes, kept: int) -> None:
    st = SmtpStream(ScriptTransport([b"A" * n + end + b"NEXT\r\n"]))
    line = st.s_gets()
    assert len(line.text) == kept
    assert st.s_gets().text == b"NEXT"  # the rest of an overlong line is discarded, no more


def test_cap_constant() -> None:
    assert CAP == 8192 and OUTBUF == 8192


@pytest.mark.parametrize(
    "sent,bad",
    [
        (b"MAIL FROM:<j\xf6rg@x>\r\n", 12),
        (b"NO\x00OP\r\n", 2),
        (b"AB\rCD\r\n", 3),  # the byte after a lone CR
        (b"A\x7fB\r\n", 1),
        (b"A\tB\r\n", None),
        (b"plain\r\n", None),
    ],
)
def test_bad_byte_position(sent: bytes, bad: int | None) -> None:
    assert one(sent).bad == bad


def test_crlf_flag_and_termination() -> None:
    st = SmtpStream(ScriptTransport([b"A\r\nB\nC"]))
    a, b, c = st.s_gets(), st.s_gets(), st.s_gets()
    assert (a.crlf, a.terminated) == (True, True)
    assert (b.crlf, b.terminated) == (False, True)
    assert (c.text, c.terminated, c.last) == (b"C", False, None)
    assert st.s_gets().n == 0


def test_pending_counts_buffered_bytes_only_when_available() -> None:
    t = ScriptTransport([b"EHLO x\r\nMAIL FROM:<a@b>\r\n", b"QUIT\r\n"])
    st = SmtpStream(t)
    st.write(b"220 hi\r\n")
    st.flush()
    assert st.s_gets().text == b"EHLO x"
    assert st.pending() == len(b"MAIL FROM:<a@b>\r\n")
    assert st.s_gets().text == b"MAIL FROM:<a@b>"
    assert st.pending() == 0  # next segment not sent yet: the client waits for replies


def test_output_buffer_flushes_when_full() -> None:
    t = ScriptTransport([])
    st = SmtpStream(t)
    st.write(b"x" * 100)
    assert t.sends == []
    st.write(b"y" * OUTBUF)
    assert len(t.sends) == 1 and len(t.sends[0]) == OUTBUF + 100
    st.write(b"z")
    st.flush()
    assert t.sends[-1] == b"z"


def test_fd_transport_with_pipe_and_file(tmp_path) -> None:
    p = tmp_path / "in"
    p.write_bytes(b"HELO a\nQUIT\n")
    r, w = os.pipe()
    with open(p, "rb") as f:
        st = SmtpStream(FdTransport(f.fileno(), w))
        assert st.s_gets().text == b"HELO a"
        assert st.pending() > 0
        st.write(b"250 ok\r\n")
        st.flush()
        assert st.s_gets().text == b"QUIT"
        assert st.s_gets().n == 0 and st.eof
    os.close(w)
    assert os.read(r, 100) == b"250 ok\r\n"
    os.close(r)


def test_socket_transport_and_replace_discards_plaintext() -> None:
    a, b = socket.socketpair()
    try:
        st = SmtpStream(SocketTransport(a))
        b.sendall(b"STARTTLS\r\nINJECTED\r\n")
        assert st.s_gets().text == b"STARTTLS"
        assert st.buffered() > 0
        other = ScriptTransport([b"EHLO after\r\n"])
        st.replace_transport(other)
        assert st.buffered() == 0
        assert st.s_gets().text == b"EHLO after"
    finally:
        a.close()
        b.close()


def test_write_to_closed_peer_is_silent() -> None:
    a, b = socket.socketpair()
    b.close()
    st = SmtpStream(SocketTransport(a))
    st.write(b"250 x\r\n" * 10)
    st.flush()
    st.write(b"more")
    st.flush()
    assert st.write_failed
    a.close()


def test_read_timeout_ends_like_eof() -> None:
    a, b = socket.socketpair()
    try:
        st = SmtpStream(SocketTransport(a), cmd_timeout=0.01)
        line = st.s_gets()
        assert line.n == 0 and st.timed_out
    finally:
        a.close()
        b.close()


class _Chunks:
    """Input delivered ``size`` bytes per recv, then end of file."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def wait_readable(self, timeout: float | None) -> bool:
        return True

    def recv(self, n: int) -> bytes:
        k = min(n, self.size)
        out, self.data = self.data[:k], self.data[k:]
        return out

    def send(self, data: bytes) -> int:
        return len(data)

    def fileno(self) -> int:
        return -1


def _lines(data: bytes, size: int, whole_lines: bool) -> list[object]:
    st = SmtpStream(_Chunks(data, size))  # type: ignore[arg-type]
    out: list[object] = []
    while True:
        line = st.s_gets() if whole_lines else st._s_gets_bytes()
        out.append(line)
        if line.n == 0:
            return out


def test_whole_line_path_equals_the_byte_machine() -> None:
    """s_gets takes a clean buffered line in one step: every Line must be the byte loop's."""
    import random

    rnd = random.Random(1)
    alphabet = [b"A", b" ", b"\r", b"\n", b"\t", b"\0", b"\x80", b"\x7f", b"\x01", b"."]
    for trial in range(3000):
        data = b"".join(rnd.choices(alphabet, k=rnd.randint(0, 40)))
        if trial % 100 == 0:  # around the storage cap
            data += (b"x" * rnd.choice([CAP - 4, CAP - 3, CAP - 2, CAP - 1, CAP, CAP + 5])
                     + rnd.choice([b"\r\n", b"\n", b""]) + b"QUIT\r\n")
        size = rnd.choice([1, 3, 7, 100, 65536])
        assert _lines(data, size, True) == _lines(data, size, False), (data[:60], size)
