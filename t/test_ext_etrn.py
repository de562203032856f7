"""ETRN: local file drop and cluster MAILQv2 against a stand-in scheduler (§5, §8.5)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from peers.support import read_log, server

from zmailer_smtpd import etrn
from zmailer_smtpd.router import ReplyLine

ADDR = b"[192.0.2.7]"
ME = b"mx.example.net"
LOCAL = (
    b"250-2.0.0 An ETRN request is initiated - lets hope the system\r\n"
    b"250-2.0.0 has resources to honour it. We call the remote,\r\n"
    b"250 2.0.0 if we have anything to send there.\r\n"
)


def fmt(lines: list[ReplyLine]) -> bytes:
    out = b""
    for i, ln in enumerate(lines):
        sep = b" " if i == len(lines) - 1 else b"-"
        out += b"%03d" % ln.code + sep + (ln.enh + b" " if ln.enh else b"") + ln.text + b"\r\n"
    return out


@pytest.fixture
def po(tmp_path: Path) -> Path:
    (tmp_path / "transport").mkdir()
    return tmp_path


def etrn_files(po: Path) -> list[Path]:
    return sorted((po / "transport").iterdir())


def test_e1_local(po: Path) -> None:
    lines = etrn.etrn(b"example.com", ADDR, ME, str(po))
    assert fmt(lines) == LOCAL
    [f] = etrn_files(po)
    assert f.name == f"{f.stat().st_ino}-etrn"
    assert f.read_bytes() == b"T example.com [192.0.2.7]\n"
    assert f.stat().st_mode & 0o777 == 0o600


def test_e1_local_short_reply(po: Path) -> None:
    lines = etrn.etrn(b"example.com", ADDR, ME, str(po), multiline=False)
    assert fmt(lines) == b"250 2.0.0 An ETRN request is submitted - something may get sent.\r\n"


def test_e2_syntax(po: Path) -> None:
    assert fmt(etrn.etrn(b"", ADDR, ME, str(po))) == (
        b"552 5.0.0 ETRN needs target domain name parameter.\r\n")
    assert fmt(etrn.etrn(b"@example.com", ADDR, ME, str(po))) == (
        b"458 5.7.1 Sorry, only literal target domains accepted\r\n")
    assert fmt(etrn.etrn(b"#chan", ADDR, ME, str(po))) == (
        b"458 5.7.1 Sorry, only literal target domains accepted\r\n")
    assert etrn_files(po) == []


@pytest.mark.parametrize("bad", [b"ex\nT evil", b"ex\rx", b"ex\tx", b"ex\0x"])
def test_control_bytes_never_written(po: Path, bad: bytes) -> None:
    assert etrn.etrn(bad, ADDR, ME, str(po))[0].code == 501
    assert etrn_files(po) == []


def test_local_failure_no_transport_dir(tmp_path: Path) -> None:
    assert fmt(etrn.etrn(b"example.com", ADDR, ME, str(tmp_path))) == (
        b"452 4.0.0 Failed to initiate ETRN request; mkstemp() failure!\r\n")


def test_mq2_hash_vector() -> None:
    assert etrn.mq2_auth_hash(b"220 MAILQ-V2-CHALLENGE: 1700000000.123456.1", b"etrnpw") == (
        b"697e69fb0e1ba14562b98689dd1ff827")


def test_e3_cluster(po: Path, tmp_path: Path) -> None:
    plog = tmp_path / "mq.log"
    env = dict(os.environ, PEER_LOG=str(plog))
    with server("mailq2.py", "etrnuser:etrnpw:ETRN", "--challenge",
                "220 MAILQ-V2-CHALLENGE: 1700000000.123456.1", env=env) as (port, _):
        node = f"127.0.0.1/{port}"
        lines = etrn.etrn(b"example.com", ADDR, ME, str(po),
                          cluster=[(node, b"etrnuser", b"etrnpw")], timeout=5)
    assert fmt(lines) == (
        b"250-2.0.0 Attempting ETRN on cluster node: " + node.encode() + b"\r\n"
        b"250-2.0.0 +OK; an ETRN started something.\r\n"
        b"250 2.0.0 ETRN-cluster operation(s) complete\r\n"
    )
    assert [x["line"] for x in read_log(plog)] == [
        "AUTH etrnuser 697e69fb0e1ba14562b98689dd1ff827\n",
        "ETRN example.com [192.0.2.7]@mx.example.net\n",
    ]
    assert etrn_files(po) == []


def test_e3_wrong_password_falls_back(po: Path) -> None:
    with server("mailq2.py", "etrnuser:etrnpw:ETRN") as (port, _):
        node = f"127.0.0.1/{port}"
        lines = etrn.etrn(b"example.com", ADDR, ME, str(po),
                          cluster=[(node, b"etrnuser", b"wrong")], timeout=5)
    assert fmt(lines) == (
        b"250-2.0.0 Attempting ETRN on cluster node: " + node.encode() + b"\r\n"
        b"250-2.0.0 MQ2-AUTH failure occurred\r\n" + LOCAL
    )
    assert len(etrn_files(po)) == 1


def test_refused_etrn_counts_as_answered(po: Path) -> None:
    with server("mailq2.py", "u:p:QUEUE") as (port, _):
        lines = etrn.etrn(b"example.com", ADDR, ME, str(po),
                          cluster=[(f"127.0.0.1/{port}", b"u", b"p")], timeout=5)
    assert fmt(lines).endswith(
        b"250-2.0.0 -No ETRN allowed for you.\r\n"
        b"250 2.0.0 ETRN-cluster operation(s) complete\r\n")


def test_unreachable_and_silent_nodes(po: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    with server("mailq2.py", "u:p:ETRN", "--mode", "hang") as (port, _), \
         server("mailq2.py", "u:p:ETRN", "--mode", "noversion") as (port2, _):
        emitted: list[ReplyLine] = []
        lines = etrn.etrn(
            b"example.com", ADDR, ME, str(po),
            cluster=[(f"127.0.0.1/{dead}", b"u", b"p"), (f"127.0.0.1/{port}", b"u", b"p"),
                     (f"127.0.0.1/{port2}", b"u", b"p")],
            timeout=0.3, emit=emitted.append)
    assert fmt(emitted + lines) == (
        b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d\r\n" % dead
        + b"250-2.0.0 Connect() failed, will try possible next address\r\n"
        b"250-2.0.0 Unable to connect() to scheduler\r\n"
        b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d\r\n" % port
        + b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d\r\n" % port2
        + LOCAL
    )


def test_node_port_rules() -> None:
    assert etrn._node_addr("h/1234")[:2] == ("h", 1234)
    assert etrn._node_addr("h/abc")[:2] == ("h", 174)
    assert etrn._node_addr("h")[:2] == ("h", 174)
