"""ETRN through the real session: local file drop and cluster MAILQv2 fan-out
with the stand-in scheduler t/peers/mailq2.py (interfaces.md §5, §8.5)."""

from __future__ import annotations

import os
from pathlib import Path

from peers.support import read_log, server
from sessionkit import Harness, cmds

E1 = [
    b"250-2.0.0 An ETRN request is initiated - lets hope the system",
    b"250-2.0.0 has resources to honour it. We call the remote,",
    b"250 2.0.0 if we have anything to send there.",
]
CHALLENGE = "220 MAILQ-V2-CHALLENGE: 1700000000.123456.1"


def harness(tmp: Path) -> Harness:
    h = Harness(tmp)
    os.mkdir(os.path.join(h.postoffice, "transport"))
    return h


def etrn_replies(h: Harness, *lines: str | bytes) -> list[bytes]:
    r = h.run(*cmds("EHLO client.example.net", *lines, "QUIT"))
    out = r.output.split(b"\r\n")[:-1]
    i = next(k for k, ln in enumerate(out) if ln.startswith(b"250 HELP"))
    assert out[-1].startswith(b"221 ")
    return out[i + 1:-1]


def transport_files(h: Harness) -> dict[str, bytes]:
    d = Path(h.postoffice) / "transport"
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_e1_local_etrn_file_drop(tmp_path: Path) -> None:
    h = harness(tmp_path)
    assert etrn_replies(h, "ETRN example.com") == E1
    files = transport_files(h)
    assert len(files) == 1
    (name, data), = files.items()
    st = os.stat(Path(h.postoffice) / "transport" / name)
    assert name == f"{st.st_ino}-etrn"
    assert data == b"T example.com [192.0.2.10]\n"
    assert st.st_mode & 0o777 == 0o600


def test_turnme_and_no_multiline(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.values["multiline-replies-ok"] = False
    assert etrn_replies(h, "TURNME example.com  ") == [
        b"250 2.0.0 An ETRN request is submitted - something may get sent."]
    assert list(transport_files(h).values()) == [b"T example.com [192.0.2.10]\n"]


def test_e2_syntax(tmp_path: Path) -> None:
    h = harness(tmp_path)
    assert etrn_replies(h, "ETRN", "ETRN @example.com", "ETRN #chan") == [
        b"552 5.0.0 ETRN needs target domain name parameter.",
        b"458 5.7.1 Sorry, only literal target domains accepted",
        b"458 5.7.1 Sorry, only literal target domains accepted",
    ]
    assert transport_files(h) == {}


def test_noetrn_makes_etrn_unknown(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.values["etrn-ok"] = False
    r = h.run(*cmds("EHLO client.example.net", "ETRN example.com", "QUIT"))
    assert b"250-ETRN\r\n" not in r.output
    assert b"\r\n550 5.5.2 Unknown command 'ETRN example.com'\r\n" in r.output
    assert transport_files(h) == {}


def test_hostile_etrn_argument_stays_one_line(tmp_path: Path) -> None:
    h = harness(tmp_path)
    assert etrn_replies(h, "ETRN example.com;$(id)`id` ${run{x}}") == E1
    assert list(transport_files(h).values()) == [
        b"T example.com;$(id)`id` ${run{x}} [192.0.2.10]\n"]


def test_e3_cluster(tmp_path: Path) -> None:
    h = harness(tmp_path)
    plog = tmp_path / "mq.log"
    env = dict(os.environ, PEER_LOG=str(plog))
    with server("mailq2.py", "etrnuser:etrnpw:ETRN", "--challenge", CHALLENGE, env=env) as (port, _):
        node = f"127.0.0.1/{port}"
        h.values["etrn-cluster"] = [(node, "etrnuser", "etrnpw")]
        h.myhostname = b"mx.example.net"
        got = etrn_replies(h, "ETRN example.com")
    assert got == [
        b"250-2.0.0 Attempting ETRN on cluster node: " + node.encode(),
        b"250-2.0.0 +OK; an ETRN started something.",
        b"250 2.0.0 ETRN-cluster operation(s) complete",
    ]
    assert [x["line"] for x in read_log(plog)] == [
        "AUTH etrnuser 697e69fb0e1ba14562b98689dd1ff827\n",
        "ETRN example.com [192.0.2.10]@mx.example.net\n",
    ]
    assert transport_files(h) == {}


def test_e3_cluster_bad_password_falls_back_to_local(tmp_path: Path) -> None:
    h = harness(tmp_path)
    with server("mailq2.py", "etrnuser:right:ETRN") as (port, _):
        node = f"127.0.0.1/{port}"
        h.values["etrn-cluster"] = [(node, "etrnuser", "wrong")]
        got = etrn_replies(h, "ETRN example.com")
    assert got == [
        b"250-2.0.0 Attempting ETRN on cluster node: " + node.encode(),
        b"250-2.0.0 MQ2-AUTH failure occurred",
        *E1,
    ]
    assert list(transport_files(h).values()) == [b"T example.com [192.0.2.10]\n"]


def test_cluster_two_nodes_one_refuses_etrn(tmp_path: Path) -> None:
    h = harness(tmp_path)
    with server("mailq2.py", "u:p:ETRN") as (p1, _), server("mailq2.py", "u:p:MAILQ") as (p2, _):
        h.values["etrn-cluster"] = [(f"127.0.0.1/{p1}", "u", "p"), (f"127.0.0.1/{p2}", "u", "p")]
        got = etrn_replies(h, "ETRN example.com")
    assert got == [
        b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d" % p1,
        b"250-2.0.0 +OK; an ETRN started something.",
        b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d" % p2,
        b"250-2.0.0 -No ETRN allowed for you.",  # counts as done (T-29)
        b"250 2.0.0 ETRN-cluster operation(s) complete",
    ]


def test_cluster_node_down_falls_back_to_local(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    h = harness(tmp_path)
    h.values["etrn-cluster"] = [(f"127.0.0.1/{dead}", "u", "p")]
    r = h.run(*cmds("EHLO client.example.net", "ETRN example.com", "NOOP", "QUIT"))
    assert any(b"ETRN cluster node 127.0.0.1/%d failed" % dead in ln for ln in r.log)
    got = etrn_replies(h, "ETRN example.com", "NOOP")
    assert got[:3] == [
        b"250-2.0.0 Attempting ETRN on cluster node: 127.0.0.1/%d" % dead,
        b"250-2.0.0 Connect() failed, will try possible next address",
        b"250-2.0.0 Unable to connect() to scheduler",
    ]
    assert got[3:6] == E1
    assert got[6].startswith(b"250 2.0.0 ")
