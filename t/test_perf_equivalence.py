"""Fast paths against the general code they short-cut: same answers on every input."""

from __future__ import annotations

import ipaddress
import os
import random
from pathlib import Path

from zmailer_smtpd import proctitle, received
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
