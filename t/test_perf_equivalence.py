"""Fast paths against the general code they short-cut: same answers on every input."""

from __future__ import annotations

import ipaddress
import os
import random
import time
from pathlib import Path

from zmailer_smtpd import proctitle, received, rfc821
from zmailer_smtpd.config import Settings
from zmailer_smtpd.policy import db as pdb
from zmailer_smtpd.policy.engine import _client_ip
from zmailer_smtpd.zenv import ZEnv


def test_ip_walk_is_ip_key_for_every_width() -> None:
    rnd = random.Random(7)
    for n in (4, 16):
        for _ in range(300):
            packed = bytes(rnd.getrandbits(8) for _ in range(n))
            assert pdb.ip_walk(packed) == tuple(pdb.ip_key(packed, w) for w in range(n * 8, -1, -1))
    assert pdb.ip_walk(b"\x7f\0\0\x01")[-1] == b"\x07\x01\0\0\0\0\x00"  # /0 last


def test_client_ip_matches_ipaddress() -> None:
    assert _client_ip("127.0.0.1") == (b"\x7f\0\0\x01", "127.0.0.1", True)
    assert _client_ip("::ffff:10.1.2.3") == (b"\x0a\x01\x02\x03", "10.1.2.3", True)
    assert _client_ip("2001:db8::1") == (ipaddress.ip_address("2001:db8::1").packed, "2001:db8::1", False)


def test_rhostaddr_text_ipv4_fast_path_agrees() -> None:
    def slow(addr: str) -> bytes:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return b"[" + addr.encode("ascii", "replace") + b"]"
        if isinstance(ip, ipaddress.IPv6Address):
            return received.rhostaddr_text(addr)  # not the fast path's business
        return b"[" + str(ip).encode() + b"]"

    cases = ["127.0.0.1", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "1.2.3.4.5",
             "300.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1..3.4", "x", "::1", "::ffff:1.2.3.4",
             "1.2.3.04", "0x7f.0.0.1", "1e1.0.0.1"]
    rnd = random.Random(3)
    cases += [".".join(str(rnd.randint(0, 300)) for _ in range(4)) for _ in range(300)]
    for a in cases:
        assert received.rhostaddr_text(a) == slow(a), a


def test_settings_get_cache_reads_the_live_values() -> None:
    s = Settings.from_values({})
    assert s.get("pipelining-ok") is True
    assert s.get("nopipelining") is False  # negation spelling, cached separately
    s.set("nopipelining", True)
    assert s.get("pipelining-ok") is False and s.get("nopipelining") is True
    assert s.get("PIPELINING-OK") is False  # any case, resolved once, then cached
    other = Settings.from_values({"pipelining-ok": True})
    assert other.get("nopipelining") is False and s.get("nopipelining") is True


def test_zenv_values_memoised_only_once_read(tmp_path: Path) -> None:
    path = tmp_path / "zmailer.conf"
    z = ZEnv(str(path), None, retry=True)
    assert z.file_value("POSTOFFICE") is None  # not there yet: nothing remembered
    path.write_bytes(b"POSTOFFICE=/var/spool/postoffice\n")
    assert z.file_value("POSTOFFICE") == "/var/spool/postoffice"
    os.unlink(path)
    assert z.file_value("POSTOFFICE") == "/var/spool/postoffice"  # read once: the file's answer


def test_title_fast_path_agrees_with_the_substitution() -> None:
    rnd = random.Random(5)
    alphabet = [chr(c) for c in (0, 9, 10, 13, 31, 32, 65, 97, 126, 127, 128, 159, 160, 233)]
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))
        assert proctitle.title_text(b"[1.2.3.4]", text) == proctitle._CONTROL.sub(
            "?", "<[1.2.3.4] " + text)


def _q_loop(x: bytes) -> bytes:
    out = bytearray(b'"')
    for b in x:
        if b < 0x20 or b > 0x7E:
            out += b"\\%03o" % b
        elif b in b'"\\()':
            out += b"\\" + bytes((b,))
        else:
            out.append(b)
    return bytes(out + b'"')


def _xtext_loop(x: bytes) -> bytes:
    out = bytearray()
    for b in x:
        out += bytes((b,)) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else b"+%02X" % b
    return bytes(out)


def _byte_strings(seed: int) -> list[bytes]:
    """Every single byte, then random strings biased to the plain printable range."""
    rnd = random.Random(seed)
    out = [bytes((b,)) for b in range(256)] + [b"", b"alice@example.net", b"bench.client"]
    for _ in range(2000):
        n = rnd.randint(0, 12)
        out.append(bytes(rnd.choice((rnd.randint(0x20, 0x7E), rnd.randint(0, 255)))
                         for _ in range(n)))
    return out


def test_q_and_xtext_plain_fast_paths_agree_with_the_byte_loops() -> None:
    for x in _byte_strings(5):
        assert received.q(x) == _q_loop(x), x
        assert received.xtext(x) == _xtext_loop(x), x
        assert received.q(bytearray(x)) == _q_loop(x) and type(received.q(bytearray(x))) is bytes


def _name_loop(st: rfc821.ScanState, buf: bytes, s: int) -> tuple[int, bool]:
    """rfc821._name's byte loop, as it was before the regex step."""
    at = rfc821._at
    c = at(buf, s)
    if c == 0:
        return s, False
    if not rfc821._CLASS[c] & rfc821._ALNUM:
        st.error_pos, st.error_text = s, rfc821.E_NAME
        return s, False
    p, has_alpha = s, False
    while rfc821._CLASS[c] & rfc821._ALNUM or c == 0x2D:
        has_alpha = has_alpha or bool(rfc821._CLASS[c] & rfc821._ALPHA) or c == 0x2D
        p += 1
        c = at(buf, p)
    return p, has_alpha


def test_domain_label_regex_agrees_with_the_byte_loop() -> None:
    alphabet = b"aZ09-._\x00\x80 >@["
    rnd = random.Random(11)
    cases = [bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8))) for _ in range(3000)]
    cases += [bytes((b,)) + b"x-1" for b in range(256)]
    for buf in cases:
        for s in range(-1, len(buf) + 2):
            a, b = rfc821.ScanState(), rfc821.ScanState()
            assert rfc821._name(a, buf, s) == _name_loop(b, buf, s), (buf, s)
            assert (a.error_pos, a.error_text) == (b.error_pos, b.error_text), (buf, s)


def test_rfc822_date_kept_second_follows_time_and_zone() -> None:
    from zmailer_smtpd import sessionlog

    rnd = random.Random(2)
    for now in [0.0, 0.5, 0.9, 1.0, 86399.999] + [rnd.uniform(0, 2e9) for _ in range(300)]:
        for _ in range(2):  # the second ask comes from the kept text
            assert sessionlog.rfc822_date(now) == sessionlog._rfc822_date(now), now
    now = 1_700_000_000.0
    saved = os.environ.get("TZ")
    try:
        for tz in ("UTC", "EST5EDT", "Asia/Kolkata", "UTC"):
            os.environ["TZ"] = tz
            time.tzset()
            assert sessionlog.rfc822_date(now) == sessionlog._rfc822_date(now), tz
        assert sessionlog.rfc822_date(now).endswith(b" +0000")
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
