"""``PARAM auth-failrate``: failed AUTH attempts per client IP and hour, counted by the
daemon parent's rate tracker (interfaces.md §3.3 check 2).  Real daemon, real auth
pipe program, real sockets; and the tracker's AUTHF counting on its own.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

from test_daemon_clients import Smtpd
from test_daemon_parent import read_reply, talk

from zmailer_smtpd import ratetracker as rt

PIPE = Path(__file__).resolve().parent / "peers" / "authpipe_joe.py"
TOO_MANY = b"503 5.5.1 Hi [127.0.0.1], Too many authentication failures from your IP this hour.."


def plain(user: bytes, pw: bytes) -> bytes:
    return b"AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0" + pw)


def one_attempt(d: Smtpd, pw: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    try:
        assert read_reply(s).startswith(b"220 ")
        assert talk(s, b"EHLO client.example.net").startswith(b"250")
        r = talk(s, plain(b"joe", pw))
        talk(s, b"QUIT")
        return r
    finally:
        s.close()


def limited_daemon(tmp: Path) -> Smtpd:
    """A started daemon with AUTH through the stand-in pipe and auth-failrate 3."""
    d = Smtpd(tmp)
    with d.conf.open("a") as f:
        f.write(f"PARAM smtp-auth\nPARAM AUTH-LOGIN-also-without-TLS\n"
                f"PARAM SMTP-auth-pipe {PIPE}\nPARAM auth-failrate 3\n")
    d.start()
    return d


def test_failures_from_one_ip_are_limited_across_sessions(tmp_path: Path) -> None:
    d = limited_daemon(tmp_path)
    try:
        for _ in range(4):  # four failures, one per session (the per-session limit is 3)
            assert one_attempt(d, b"wrong").startswith(b"535 ")
        # more than 3 this hour: refused before any exchange, even with the right password
        assert one_attempt(d, b"secret") == TOO_MANY + b"\r\n"
    finally:
        d.stop()


def test_below_the_rate_a_good_password_works(tmp_path: Path) -> None:
    d = limited_daemon(tmp_path)
    try:
        for _ in range(3):
            assert one_attempt(d, b"wrong").startswith(b"535 ")
        assert one_attempt(d, b"secret").startswith(b"235 ")  # 3 is not more than 3
    finally:
        d.stop()


def test_tracker_counts_authf_per_label_for_an_hour() -> None:
    now = [0.0]
    t = rt.RateTable(clock=lambda: now[0])
    assert t.answer(b"AUTHF 4:7f000001 0 AUTH 0") == b"200 0\n"
    assert t.answer(b"AUTHF 4:7f000001 0 AUTH 1") == b"200 1\n"
    assert t.answer(b"AUTHF 4:7f000001 0 AUTH 1") == b"200 2\n"
    assert t.answer(b"AUTHF 4:c0000201 0 AUTH 0") == b"200 0\n"  # another client
    now[0] += rt.SLOTINTERVAL * rt.SLOTCOUNT  # still inside 3.0.1's hour of slots
    assert t.answer(b"AUTHF 4:7f000001 0 AUTH 0") == b"200 2\n"
    now[0] += rt.SLOTINTERVAL  # the next slot change starts a new hour
    assert t.answer(b"AUTHF 4:7f000001 0 AUTH 0") == b"200 0\n"
