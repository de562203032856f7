"""A database written with bsddb3 directly in makedb's byte format (policy.md §3,
as ZMailer's own makedb writes it) gives the same verdicts as our builder's."""

from __future__ import annotations

from pathlib import Path

from bsddb3 import db as bdb
from policy_support import build_db, run_dialogue

SRC = (
    "[192.0.2.0]/24     message \"You are blocked\" rejectnet +\n"
    "[198.51.100.0]/24  relaycustnet +\n"
    "[ipv6.2001:db8::]/32 rejectnet +\n"
    ".                  relaytarget -\n"
    "ourdomain.example  relaytarget +\n"
    "_bad               rejectsource +\n"
    "spam.example       = _bad\n"
    "spammer@           message \"No mail from spammer\" rejectsource +\n"
)


def raw_records() -> dict[bytes, bytes]:
    """The same source, encoded by hand from §3.2/§3.3 (no project code)."""

    def attr(code: int, value: bytes) -> bytes:
        return bytes([3 + len(value), code]) + value + b"\0"

    def skey(t: int, s: bytes) -> bytes:
        return bytes([3 + len(s), t]) + s + b"\0"

    return {
        bytes([7, 1, 192, 0, 2, 0, 24]): attr(15, b"You are blocked") + attr(2, b"+"),
        bytes([7, 1, 198, 51, 100, 0, 24]): attr(7, b"+"),
        bytes([19, 2, 0x20, 0x01, 0x0D, 0xB8]) + bytes(12) + bytes([32]): attr(2, b"+"),
        skey(4, b"."): attr(8, b"-"),
        skey(4, b"ourdomain.example"): attr(8, b"+"),
        skey(3, b"_bad"): attr(4, b"+"),
        skey(4, b"spam.example"): attr(1, b"_bad"),
        skey(5, b"spammer@"): attr(15, b"No mail from spammer") + attr(4, b"+"),
    }


SESSIONS = [
    ("192.0.2.7", []),
    ("2001:db8::7", []),
    ("198.51.100.7", ["HELO c.example", "MAIL FROM:<a@b.example>", "RCPT TO:<u@elsewhere.example>"]),
    ("203.0.113.7", [
        "HELO client.example",
        "MAIL FROM:<spammer@x.example>",
        "MAIL FROM:<a@spam.example>",
        "MAIL FROM:<a@ok.example>",
        "RCPT TO:<u@ourdomain.example>",
        "RCPT TO:<u@elsewhere.example>",
        "RCPT TO:<Postmaster>",
    ]),
]


def test_raw_db_same_verdicts(tmp_path: Path) -> None:
    rc, msgs = build_db({"smtp-policy.src": SRC, "localnames": ""}, tmp_path / "ours")
    assert (rc, msgs) == (0, [])
    raw = bdb.DB()
    raw.open(str(tmp_path / "raw.db"), dbtype=bdb.DB_BTREE, flags=bdb.DB_CREATE)
    for k, v in raw_records().items():
        raw.put(k, v)
    raw.close()
    # byte-identical records
    ours = bdb.DB()
    ours.open(str(tmp_path / "ours" / "smtp-policy.db"), dbtype=bdb.DB_BTREE, flags=bdb.DB_RDONLY)
    assert dict(ours.items()) == raw_records()
    ours.close()
    for ip, cmds in SESSIONS:
        a = run_dialogue(str(tmp_path / "ours" / "smtp-policy"), ip, cmds)
        b = run_dialogue(str(tmp_path / "raw"), ip, cmds)
        assert a == b
    # and the verdicts are the expected ones
    got = run_dialogue(str(tmp_path / "raw"), "203.0.113.7", SESSIONS[3][1])
    assert got[3:] == [
        "C: MAIL FROM:<spammer@x.example>",
        "S: 553 5.7.1 Hello , for your MAIL FROM address <spammer@x.example> policy analysis reported: No mail from spammer",
        "C: MAIL FROM:<a@spam.example>",
        "S: 553 5.7.1 Hello , for MAIL FROM address <a@spam.example> access is denied by the policy analysis functions.",
        "C: MAIL FROM:<a@ok.example>",
        "S: 250 2.1.0 Sender syntax Ok; ",
        "C: RCPT TO:<u@ourdomain.example>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<u@ourdomain.example>",
        "C: RCPT TO:<u@elsewhere.example>",
        "S: 550 5.7.1 Hello , Policy rejection on the target address: <u@elsewhere.example>",
        "C: RCPT TO:<Postmaster>",
        "S: 250 2.1.5 Recipient address syntax Ok; rcpt=<Postmaster>",
    ]
    assert run_dialogue(str(tmp_path / "raw"), "192.0.2.7", [])[-1] == "S: 550 5.7.1 Hello ; You are blocked"
