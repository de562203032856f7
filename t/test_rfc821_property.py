"""Random inputs: the scanner never raises and always returns an offset in range."""

from __future__ import annotations

import random

from zmailer_smtpd import rfc821
from zmailer_smtpd.rfc821 import ScanState

ALPHABET = b'<>@.:,;"\\[]#-_+= \taZz09IiPpvV6\x00\x01\r\n\x7f\xe9\xff'
ROUNDS = 4000


def _inputs(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(ROUNDS):
        n = rnd.randint(0, 40)
        if rnd.random() < 0.3:
            out.append(bytes(rnd.randrange(256) for _ in range(n)))
        else:
            out.append(bytes(rnd.choice(ALPHABET) for _ in range(n)))
    for prefix in (b"<", b"<a@[IPv6:", b"<@a.b,@", b'<"', b"<a@["):
        for _ in range(ROUNDS // 10):
            n = rnd.randint(0, 20)
            out.append(prefix + bytes(rnd.choice(ALPHABET) for _ in range(n)))
    return out


def _check_state(st: ScanState, n: int) -> None:
    assert st.error_text is None or isinstance(st.error_text, bytes)
    assert st.error_pos is None or 0 <= st.error_pos <= n
    assert rfc821.error_message(st)


def test_random_bytes_never_raise() -> None:
    for data in _inputs(821):
        for s in (0, min(1, len(data))):
            for strict in (False, True):
                for name in ("path", "path2", "mailbox", "domain", "adl"):
                    st = ScanState()
                    buf = bytearray(data)
                    end = getattr(rfc821, name)(st, buf, s, strict)
                    assert isinstance(end, int)
                    assert s <= end <= len(buf), (name, data, end)
                    if name != "path":
                        assert bytes(buf) == data
                    else:
                        assert len(buf) <= len(data)
                    _check_state(st, len(data))
            for name in ("xtext", "atom", "orcpt"):
                st = ScanState()
                end = getattr(rfc821, name)(st, bytearray(data), s)
                assert s <= end <= len(data)
                _check_state(st, len(data))
            st = ScanState()
            assert isinstance(rfc821.helo_check(st, bytearray(data), s), bool)
            _check_state(st, len(data))
            rfc821.xtext_decode(data)
            rfc821.quote_local_part(data)
            rfc821.strip_source_route(data, False)


def test_path_failure_returns_start_and_success_ends_after_gt() -> None:
    for data in _inputs(2821):
        st = ScanState()
        buf = bytearray(data)
        end = rfc821.path(st, buf, 0, False)
        if end != 0:
            assert buf[end - 1 : end] == b">"
            assert buf[:1] == b"<"


def test_strict_success_implies_same_lax_result() -> None:
    for data in _inputs(5321):
        a, b = ScanState(), ScanState()
        buf_a, buf_b = bytearray(data), bytearray(data)
        end_strict = rfc821.path(a, buf_a, 0, True)
        end_lax = rfc821.path(b, buf_b, 0, False)
        if end_strict != 0:
            assert end_lax == end_strict
            assert buf_a == buf_b


def test_caret_line_shape() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        pos = rnd.choice([None, rnd.randint(-5, 400)])
        esc = rnd.choice([b"", b"5.1.7", b"4.5.4"])
        on = rnd.random() < 0.5
        line = rfc821.caret_line(rnd.choice([250, 500, 501]), esc, pos, on)
        prefix_len = line.index(b" ") + 1
        col = len(line) - 1
        assert line.endswith(b"^")
        assert prefix_len <= col <= prefix_len + 200
        if pos is not None and prefix_len <= pos <= prefix_len + 200:
            assert col == pos
