"""ratelimitmsgs N[,M] (policy.md §9.3): the rule order, the counter the
daemon parent owns (zmailer_smtpd/ratetracker.py, 3.0.1's one-hour window of
eight slots), the engine at MAIL FROM and DATA, and the real daemon reaching
the limit for 127.0.0.1."""

from __future__ import annotations

import os
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from policy_support import build_db, transcript
from test_daemon_clients import ETC, Smtpd, smtpd  # noqa: F401 - the daemon fixture
from test_daemon_parent import read_reply, talk

from zmailer_smtpd import ratetracker as rt
from zmailer_smtpd.dnsresolve import Resolver, Server
from zmailer_smtpd.policy.dnscheck import SelfAddrs
from zmailer_smtpd.policy.engine import (
    RATELIMIT_MSG,
    PolicySession,
    SessionPolicy,
    open_policy,
    parse_ratelimit,
    ratelimit_result,
)

TOO_MUCH = b"You are sending too much mail/rcpts per time interval.  Try again later."


# ------------------------------------------------------------------ the rule order


@pytest.mark.parametrize("value, count, auth, want", [
    (b"5", 4, False, 0), (b"5", 5, False, -100), (b"-5", 5, False, -1), (b"-5", 4, False, 0),
    (b"0", 99, False, 0),
    # the second limit is compared with the same count
    (b"10,3", 3, False, -100), (b"10,-3", 3, False, -1), (b"10,-3", 2, False, 0),
    # the first limit wins when both match
    (b"-3,5", 6, False, -1), (b"3,-5", 6, False, -100),
    (b"0,-2", 2, False, -1), (b"-4,2", 2, False, -100),
    # authenticated: both limits x10
    (b"5", 49, True, 0), (b"5", 50, True, -100), (b"10,-3", 30, True, -1), (b"10,-3", 29, True, 0),
    # no number: nothing is limited
    (b"many", 1000, False, 0), (b"", 1000, False, 0),
])
def test_rule_order(value: bytes, count: int, auth: bool, want: int) -> None:
    assert ratelimit_result(value, count, authenticated=auth) == want


def test_parse_is_sscanf_like() -> None:
    assert parse_ratelimit(b"12") == (12, 0)
    assert parse_ratelimit(b" -12,+7") == (-12, 7)
    assert parse_ratelimit(b"12,x") == (12, 0)
    assert parse_ratelimit(b"12junk") == (12, 0)
    assert parse_ratelimit(b"x12") is None
    assert RATELIMIT_MSG == TOO_MUCH


# ------------------------------------------------------------------ the counter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_window_is_eight_slots_of_450_seconds() -> None:
    clock = FakeClock()
    t = rt.RateTable(clock)
    assert rt.SLOTCOUNT * rt.SLOTINTERVAL == 3600
    assert t.answer(b"MSGS 4:c0000201 5 MAIL 0,0") == b"200 0\n"
    assert t.entries == {}  # a query alone stores nothing
    assert t.answer(b"RCPT 4:c0000201 5 DATA 1,3") == b"200 1\n"
    for _ in range(7):
        clock.t += rt.SLOTINTERVAL
        t.answer(b"RCPT 4:C0000201 5 DATA 1,1")  # labels are case-blind
    assert t.answer(b"MSGS 4:c0000201 5 MAIL 0,0") == b"200 8\n"
    clock.t += rt.SLOTINTERVAL  # the first slot falls out of the window
    assert t.answer(b"MSGS 4:c0000201 5 MAIL 0,0") == b"200 7\n"
    assert t.answer(b"MSGS 4:c0000202 5 MAIL 0,0") == b"200 0\n"  # per client
    clock.t += 3 * 3600  # long idle: everything has expired
    assert t.answer(b"MSGS 4:c0000201 5 MAIL 0,0") == b"200 0\n"
    assert t.entries == {}


def test_protocol_replies() -> None:
    t = rt.RateTable(FakeClock())
    label6 = "6:" + "20010db8" + "0" * 23 + "1"
    assert t.answer(f"RCPT {label6} -1 DATA 1,1".encode()) == b"200 1\n"  # IPv6 is counted too
    assert t.answer(b"EXCESS 4:c0000201 5 MAIL 1,0") == b"200 1\n"
    assert t.answer(b"MSGS 4:c0000201 5 MAIL 0,0") == b"200 0\n"  # excesses are not messages
    assert t.answer(b"RATES 4:c0000201").startswith(b"500 bad input")
    assert t.answer(b"MSGS 5:zz 5 MAIL 0,0").startswith(b"500 bad input")
    assert t.answer(b"").startswith(b"500 bad input")
    assert rt.rate_label("192.0.2.1") == "4:c0000201"
    assert rt.rate_label("::ffff:192.0.2.1") == "4:c0000201"
    assert rt.rate_label("2001:db8::1") == label6


@pytest.fixture
def tracker() -> Iterator[rt.TrackerServer]:
    """A real tracker served by a selector loop in a thread, as the daemon parent does."""
    srv = rt.TrackerServer()
    stop = threading.Event()

    def loop() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(srv.fileno(), selectors.EVENT_READ)
            while not stop.is_set():
                if sel.select(0.05):
                    srv.serve()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    yield srv
    stop.set()
    th.join(10)
    srv.close()


def test_client_and_server_over_the_socket(tracker: rt.TrackerServer) -> None:
    c = rt.TrackerClient(tracker.address)
    assert c.count("MSGS 4:7f000001 2 MAIL 0,0") == 0
    assert c.count("RCPT 4:7f000001 2 DATA 1,1") == 1
    assert c.count("MSGS 4:7f000001 2 MAIL 0,0") == 1
    assert c.count("DUMP 4:7f000001") == 0  # a 500 reply has no number
    assert c.ask("MSGS 4:7f000001 2 MAIL 0,0") == "200 1"


def test_unreachable_tracker_is_none() -> None:
    c = rt.TrackerClient(b"\0zmailer-smtpd-ratetracker-nobody-here", timeout=0.5)
    assert c.count("MSGS 4:7f000001 2 MAIL 0,0") is None


def test_other_users_are_not_answered(tracker: rt.TrackerServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to send as another user")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setuid(65534)
            reply = rt.TrackerClient(tracker.address, timeout=0.5).ask("RCPT 4:7f000001 2 DATA 1,1")
            os.write(w, repr(reply).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        got = f.read()
    os.waitpid(pid, 0)
    assert got == b"None"
    assert tracker.table.entries == {}


# ------------------------------------------------------------------ the engine


def engine(tmp: Path, src: str, rate: rt.TrackerClient | None, ip: str = "192.0.2.10") -> PolicySession:
    rc, msgs = build_db({"smtp-policy.src": src, "localnames": ""}, tmp / "db")
    assert rc == 0, msgs
    db, status = open_policy("btree", str(tmp / "db" / "smtp-policy"))
    ps = PolicySession(db, status, resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0),
                       selfaddrs=SelfAddrs([]), myhostname=b"mx.example.org",
                       client_text=f"[{ip}]".encode(), rate=rate)
    ps.connect(ip)
    return ps


def mail_reply(ps: PolicySession, addr: bytes = b"a@sender.example") -> tuple[int, bytes | None]:
    """The engine's MAIL answer (result, message); the session renders -100 as 451, -1 as 553."""
    v = ps.mail_from(addr)
    return v.result, v.message


@pytest.mark.parametrize("limit, code", [("2", -100), ("-2", -1)])
def test_limit_reached_at_mail_from(tmp_path: Path, tracker: rt.TrackerServer, limit: str, code: int) -> None:
    ps = engine(tmp_path, f"[192.0.2.0]/24  relaycustnet + ratelimitmsgs {limit}\n",
                rt.TrackerClient(tracker.address))
    assert ps.rate_label == "4:c000020a"
    assert mail_reply(ps)[0] == 0
    ps.data_accepted()
    assert mail_reply(ps)[0] == 0
    ps.data_accepted()
    assert mail_reply(ps) == (code, TOO_MUCH)
    assert tracker.table.entries["4:c000020a"].excesses == 1
    assert sum(tracker.table.entries["4:c000020a"].slots) == 2


@pytest.mark.parametrize("limit, code", [("2", "451 4.7.1"), ("-2", "553 5.7.1")])
def test_session_renders_the_limit(tmp_path: Path, tracker: rt.TrackerServer, limit: str, code: str) -> None:
    """The reply bytes come from the real Session (policy.md §6.5 with the §9.3 message)."""
    from sessionkit import Harness, utc_tz

    utc_tz()
    rc, msgs = build_db({"smtp-policy.src": f"[192.0.2.0]/24  relaycustnet + ratelimitmsgs {limit}\n",
                         "localnames": ""}, tmp_path / "db")
    assert rc == 0, msgs
    dbpath = str(tmp_path / "db" / "smtp-policy")

    def session(i: int) -> tuple[PolicySession, list[str]]:
        db, status = open_policy("btree", dbpath)
        ps = PolicySession(db, status, resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0),
                           selfaddrs=SelfAddrs([]), rate=rt.TrackerClient(tracker.address))
        h = Harness(tmp_path / f"s{i}")
        h.config_text = b"PARAM policydb btree " + dbpath.encode() + b"\n*  ve\n"
        h.peer_addr = "192.0.2.10"
        return ps, transcript(h, SessionPolicy(ps), ["EHLO client.example", "MAIL FROM:<a@sender.example>"])

    ps, out = session(1)
    assert out[-1] == "S: 250 2.1.0 Sender syntax Ok; "
    ps.data_accepted()
    ps.data_accepted()
    _, out = session(2)
    assert out[-1] == (f"S: {code} Hello [192.0.2.10], for your MAIL FROM address <a@sender.example>"
                       " policy analysis reported: " + TOO_MUCH.decode())


def test_limit_is_checked_before_rejectsource(tmp_path: Path, tracker: rt.TrackerServer) -> None:
    ps = engine(tmp_path, "[192.0.2.0]/24  relaycustnet + ratelimitmsgs -1\nsender.example rejectsource +\n",
                rt.TrackerClient(tracker.address))
    assert mail_reply(ps) == (-1, None)  # rejectsource; nothing counted yet
    ps.data_accepted()
    assert mail_reply(ps) == (-1, TOO_MUCH)


def test_only_always_accept_clients_are_limited(tmp_path: Path, tracker: rt.TrackerServer) -> None:
    ps = engine(tmp_path, "[192.0.2.0]/24  trustrecipients + ratelimitmsgs -1\n",
                rt.TrackerClient(tracker.address))
    for _ in range(3):
        assert mail_reply(ps)[0] == 0
        ps.data_accepted()  # no MAIL-time query was made: not counted
    assert not ps.did_query_rate
    assert tracker.table.entries == {}


def test_without_a_tracker_nothing_is_limited(tmp_path: Path) -> None:
    ps = engine(tmp_path, "[192.0.2.0]/24  relaycustnet + ratelimitmsgs -1\n",
                rt.TrackerClient(b"\0zmailer-smtpd-ratetracker-nobody-here", timeout=0.2))
    for _ in range(3):
        assert mail_reply(ps)[0] == 0
        ps.data_accepted()
    ps2 = engine(tmp_path / "b", "[192.0.2.0]/24  relaycustnet + ratelimitmsgs -1\n", None)
    assert mail_reply(ps2)[0] == 0


# ------------------------------------------------------------------ the real daemon

RATE_SRC = "".join(
    ("[127.0.0.0]/8    relaycustnet + ratelimitmsgs 2\n" if ln.startswith("[127.0.0.0]/8") else ln)
    for ln in (ETC / "smtp-policy.src").read_text().splitlines(keepends=True))


def one_message(d: Smtpd, n: int) -> bytes:
    """One session, one message; the reply to MAIL FROM (and DATA when accepted)."""
    s: socket.socket = d.connect()
    try:
        assert read_reply(s).startswith(b"220 ")
        talk(s, b"EHLO client.example.net")
        r = talk(s, b"MAIL FROM:<alice@example.net>")
        if r.startswith(b"250"):
            assert talk(s, b"RCPT TO:<postmaster@localhost>").startswith(b"250")
            assert talk(s, b"DATA").startswith(b"354")
            done = talk(s, b"Subject: %d\r\n\r\nbody\r\n." % n)
            assert done.startswith(b"250"), done
        talk(s, b"QUIT")
    finally:
        s.close()
    return r


def test_daemon_limits_the_third_message(smtpd: Callable[..., Smtpd]) -> None:  # noqa: F811
    d = smtpd(RATE_SRC)
    assert one_message(d, 1).startswith(b"250 2.1.0")
    assert one_message(d, 2).startswith(b"250 2.1.0")
    assert one_message(d, 3) == (b"451 4.7.1 Hello [127.0.0.1], for your MAIL FROM address"
                                 b" <alice@example.net> policy analysis reported: " + TOO_MUCH + b"\r\n")
    d.sessions_done()
    assert len(d.router_files()) == 2
