"""The ``filtering`` attribute decides whether the content filter runs (policy.md §6.7, §9.4).

Real builder, real Berkeley DB, real policy engine behind the real Session, and
the real stand-in filter program (t/peers/contentfilter.py), which here always
rejects: a message that reaches router/ was taken without the filter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers.support import read_log
from policy_support import build_db
from test_ext_session_filter import data_reply, harness, where

from zmailer_smtpd.dnsresolve import Resolver, Server
from zmailer_smtpd.policy.dnscheck import SelfAddrs
from zmailer_smtpd.policy.engine import PolicySession, SessionPolicy, open_policy

SOURCE = """\
[192.0.2.0]/24      filtering -
[198.51.100.0]/24   relaycustnet +
[203.0.113.0]/24    relaycustnet + filtering +
.                   relaytarget +
"""
REJECT = b"-1 550 5.7.1 filtered out\r\n"


def session_policy(dbdir: Path, ip: str) -> SessionPolicy:
    db, status = open_policy("btree", str(dbdir / "smtp-policy"))
    assert status == 0
    ps = PolicySession(db, status, resolver=Resolver([Server("127.0.0.1", 53)], timeout=2.0),
                       selfaddrs=SelfAddrs(None), myhostname=b"mx.example.org",
                       client_text=f"[{ip}]".encode())
    return SessionPolicy(ps)


@pytest.mark.parametrize(("ip", "runs"), [
    ("192.0.2.10", False),     # filtering -
    ("198.51.100.10", False),  # always-accept client without a filtering entry
    ("203.0.113.10", True),    # always-accept client with filtering +
    ("233.252.0.10", True),    # no entry: the default is to filter
])
def test_filtering_attribute_decides(tmp_path: Path, ip: str, runs: bool) -> None:
    rc, msgs = build_db({"smtp-policy.src": SOURCE}, tmp_path / "db")
    assert rc == 0, msgs
    h, plog = harness(tmp_path / "s")
    h.peer_addr = ip
    h.policy = session_policy(tmp_path / "db", ip)
    got, files = data_reply(h, REJECT)
    assert h.policy.run_filter is runs  # decided at connect
    if runs:
        assert got == [b"550 5.7.1 Content-Policy reject msg: filtered out; <spoolid>"]
        assert where(files) == []
        assert [x for x in read_log(plog) if "path" in x]
    else:
        assert got[0].startswith(b"250 2.0.0 ")
        assert where(files) == ["router/<ino>"]
        assert not [x for x in read_log(plog) if "path" in x]
