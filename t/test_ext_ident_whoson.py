"""RFC 1413 ident and whoson against stand-in servers on loopback (§6.1, §6.2, §8.6)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from peers.support import read_log, server

from zmailer_smtpd import ident, whoson


def test_i1_userid(tmp_path: Path) -> None:
    plog = tmp_path / "i.log"
    with server("identd.py", "user:joe", env=dict(os.environ, PEER_LOG=str(plog))) as (port, _):
        v = ident.lookup("127.0.0.1", 25, "127.0.0.1", 4321, timeout=5, port=port)
    assert v == "joe"
    assert read_log(plog) == [{"query": "4321 , 25\r\n"}]


def test_i2_error_answer() -> None:
    with server("identd.py", "error") as (port, _):
        assert ident.lookup("127.0.0.1", 25, "127.0.0.1", 4321, port=port) == "IDENT-NONSENSE"


def test_port_mismatch() -> None:
    with server("identd.py", "badport") as (port, _):
        assert ident.lookup("127.0.0.1", 25, "127.0.0.1", 4321, port=port) == "IDENT-NONSENSE2"


def test_i3_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    v = ident.lookup("127.0.0.1", 25, "127.0.0.1", 4321, port=dead)
    assert v in ("NO-IDENT-SERVICE", "NO-IDENT-SERVICE[2]")


def test_silent_server_times_out() -> None:
    with server("identd.py", "silent") as (port, _):
        assert ident.lookup("127.0.0.1", 25, "127.0.0.1", 4321, timeout=0.2, port=port) == (
            "TIMEDOUT2")


def test_parse_answer_rules() -> None:
    p = ident.parse_answer
    assert p(b"4321 , 25 : USERID : UNIX : joe\r\n", 4321, 25) == "joe"
    assert p(b"4321,25:USERID:UNIX,US-ASCII:jo e\r\n", 4321, 25) == "joe"  # blanks removed (T-30)
    assert p(b"4321 , 25 : USERID : UNIX : j\x01o\x7fe\n", 4321, 25) == "joe"
    assert p(b"garbage", 4321, 25) == "IDENT-NONSENSE"
    assert ident.not_queried(4321) == "IDENT-NOT-QUERIED [port 4321]"


def test_bad_address() -> None:
    assert ident.lookup("", 25, "not-an-address", 1) == "Unknown_type_of_remote_system_address!"


def test_w1_whoson_known(tmp_path: Path) -> None:
    plog = tmp_path / "w.log"
    with server("whosond.py", "192.0.2.7=alice", env=dict(os.environ, PEER_LOG=str(plog))) as (
        port, _):
        w = whoson.lookup("192.0.2.7", server=("127.0.0.1", port))
        u = whoson.lookup("192.0.2.8", server=("127.0.0.1", port))
    assert read_log(plog)[0] == {"query": "QUERY 192.0.2.7\r\n\r\n"}
    assert w.rc == 0 and w.validated and w.trace == "alice" and w.stored == "alice"
    assert u.rc == 1 and not u.validated and u.trace == "-unregistered-"


def test_whoson_unavailable() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    w = whoson.lookup("192.0.2.7", server=("127.0.0.1", dead), timeout=1)
    assert w.rc == -1 and not w.validated
    assert w.trace == "-unavailable-" and w.stored == "-unregistered-"


def test_whoson_refuses_control_bytes() -> None:
    assert whoson.lookup("1.2.3.4\r\nQUERY x", server=("127.0.0.1", 1)).rc == -1


def test_whoson_reply_parsing() -> None:
    assert whoson.parse_reply(b'+al"ice\x01\r\n\r\n').data == "alice"
    assert whoson.parse_reply(b"*error\r\n\r\n").rc == -1
