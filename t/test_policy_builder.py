"""The builder: makedb line rules, policy-builder.sh transformation, compiled
bytes (policy.md §2, §3; TV-6, TV-24, TV-25, TV-26), atomic replacement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from policy_support import ROOT, build_db, run_dialogue

from zmailer_smtpd.policy import builder
from zmailer_smtpd.policy import db as pdb

TV26_SRC = (
    ".                = _default_dot\n"
    "[192.0.2.0]/24   rejectnet +\n"
    'spammer@         message "No mail from spammer" rejectsource +\n'
)
TV26_DB = {
    bytes.fromhex("04042e00"): bytes.fromhex("0f015f64656661756c745f646f7400"),
    bytes.fromhex("0701c000020018"): bytes.fromhex("04022b00"),
    bytes.fromhex("0b057370616d6d65724000"): bytes.fromhex(
        "170f4e6f206d61696c2066726f6d207370616d6d65720004042b00"
    ),
}


def records(dbfile: str) -> dict[bytes, bytes]:
    db, status = pdb.open_db("btree", dbfile)
    assert status == 0 and db is not None
    try:
        return dict(db.items())
    finally:
        db.close()


def test_tv26_compiled_bytes(tmp_path: Path) -> None:
    rc, msgs = build_db({"smtp-policy.src": TV26_SRC, "localnames": ""}, tmp_path)
    assert (rc, msgs) == (0, [])
    assert records(str(tmp_path / "smtp-policy")) == TV26_DB
    # a real Berkeley DB B-tree file (magic 0x053162 at offset 12)
    head = (tmp_path / "smtp-policy.db").read_bytes()[:16]
    assert head[12:16] in (b"\x62\x31\x05\x00", b"\x00\x05\x31\x62")


def test_key_forms() -> None:
    assert pdb.parse_key(b"[192.0.2.77]/24") == bytes.fromhex("0701c000020018")
    assert pdb.parse_key(b"[ipv6.2001:db8::]/32") == bytes([19, 2, 0x20, 1, 0x0D, 0xB8]) + bytes(12) + b"\x20"
    assert pdb.parse_key(b"[IPv6:2001:DB8::]/32") == pdb.parse_key(b"[ipv6.2001:db8::]/32")
    assert pdb.parse_key(b"[192.0.2.5]") == bytes([14, 4]) + b"[192.0.2.5]\0"  # dead DOMAIN key
    assert pdb.parse_key(b"_Foo@Bar") == bytes([11, 5]) + b"_foo@bar\0"
    assert pdb.parse_key(b"\xc4Example") == bytes([11, 4]) + b"\xc4example\0"  # ASCII-only lowering
    for bad, rc in ((b"[1.2.3.4/8", -1), (b"[1::x]/8", -2), (b"[::1]/129", -3), (b"10/8", -4),
                    (b"10.1/16", -4), (b"[1.2.3.4]/33", -5), (b"user/x@dom", -4)):
        try:
            pdb.parse_key(bad)
        except pdb.KeyError_ as e:
            assert e.rc == rc, bad
        else:
            raise AssertionError(bad)


def test_key_debug_and_dump_formats() -> None:
    k = pdb.parse_key(b"[192.0.2.0]/24")
    assert pdb.key_debug(k) == "7/IPv4/192.0.2.0/24"
    assert pdb.key_dump(k) == "[192.0.2.0]/24"
    k6 = pdb.parse_key(b"[ipv6.2001:db8::]/32")
    assert pdb.key_debug(k6) == "19/IPv6/2001:0db8:0000:0000:0000:0000:0000:0000/32"
    assert pdb.key_dump(k6) == "[ipv6.2001:0db8:0000:0000:0000:0000:0000:0000]/32"
    assert pdb.key_debug(pdb.parse_key(b"spammer@")) == "11/USER/'spammer@'"


def test_tv6_without_append_keeps_first_and_warns() -> None:
    lines = [builder.SrcLine(b"[192.0.2.0]/24   relaycustnet +", "x", 1),
             builder.SrcLine(b"[192.0.2.0]/24   rejectnet +", "x", 2)]
    res = builder.compile_lines(lines, append=False)
    assert res.status == 0
    assert res.errors == ["WARNING: Duplicate key at line 2: 7/IPv4/192.0.2.0/24"]
    assert res.records == {pdb.parse_key(b"[192.0.2.0]/24"): bytes.fromhex("04072b00")}
    res = builder.compile_lines(lines, append=True)
    assert res.records[pdb.parse_key(b"[192.0.2.0]/24")] == bytes.fromhex("04072b0004022b00")


def test_tv6_without_append_verdict(tmp_path: Path) -> None:
    lines = [builder.SrcLine(b"[192.0.2.0]/24   relaycustnet +", "x", 1),
             builder.SrcLine(b"[192.0.2.0]/24   rejectnet +", "x", 2)]
    res = builder.compile_lines(lines, append=False)
    pdb.write_db("btree", str(tmp_path / "p.db"), list(res.records.items()))
    assert run_dialogue(str(tmp_path / "p"), "192.0.2.1", []) == ["S: 220 …"]


def test_line_rules() -> None:
    src = [
        b"# comment",
        b"  [192.0.2.0]/24 rejectnet +",  # indented: ignored, no continuation lines
        b"\t_x rejectnet +",
        b"_rbl0   # Nothing",  # no record, no error
        b"_nokey",  # no tokens: no record
        b'_q message "two words"rejectnet +\r',  # a quote ends its token; CR is kept
        b'_open message "runs to end',
        b"Mixed.Case.Example  relaytarget +",
    ]
    res = builder.compile_lines([builder.SrcLine(t, "f", i) for i, t in enumerate(src, 1)])
    assert (res.status, res.errors) == (0, [])
    assert res.records == {
        pdb.parse_key(b"_q"): pdb.encode_attr(15, b"two words") + pdb.encode_attr(2, b"+\r"),
        pdb.parse_key(b"_open"): pdb.encode_attr(15, b"runs to end"),
        pdb.parse_key(b"mixed.case.example"): pdb.encode_attr(8, b"+"),
    }


def test_tv25_and_error_texts() -> None:
    def one(text: bytes) -> builder.CompileResult:
        return builder.compile_lines([builder.SrcLine(text, "smtp-policy.src", 1)])

    r = one(b"[192.0.2.0]/24  rejectnet +   # block them")
    assert (r.status, r.errors, r.records) == (1, ['Error: Invalid attribute pair ("# block")  on line 1.'], {})
    r = one(b"_rbl0   # Nothing")
    assert (r.status, r.errors, r.records) == (0, [], {})
    r = one(b"  [192.0.2.0]/24 rejectnet +")
    assert (r.status, r.errors, r.records) == (0, [], {})
    r = one(b"_x rejectnet")
    assert r.errors == ["Error: Invalid attribute pair on line 1; aname='rejectnet', value missing."]
    r = one(b"_x trustrecipient +")
    assert r.errors == ['Error: Invalid attribute pair ("trustrecipient +")  on line 1.']
    r = one(b"_x RejectNet +")  # names are case-sensitive
    assert r.status == 1
    r = one(b"_x message " + b"m" * 251)
    assert r.status == 1
    r = one(b"10/8 rejectnet +")
    assert r.errors == ["Error: line 1: bad policykey, rc = -4"]
    r = builder.compile_lines([builder.SrcLine(b"_x rejectnet +", "f", 1, has_lf=False)])
    assert r.status == 1 and r.errors[0].startswith("input line of len 14 lacking trailing newline")
    assert pdb.parse_key(b"_x") in r.records


def test_tv24_dat_spam_section(tmp_path: Path) -> None:
    files = {
        "smtp-policy.src": "_x rejectnet +\n",
        "localnames": "Our.Example  other fields # comment\n# only comment\n\nsecond.example\n",
        "smtp-policy.relay": "[192.0.2.0]/24 # office\n  [198.51.100.0]/24  \n",
        "smtp-policy.mx": "mx.example\n",
        "smtp-policy.spam": "@Spam.Example\n[203.0.113.0]/24\nFriend@\n",
        "smtp-policy.spam.manual": "friend@\nzzz@ # late\n",
    }
    rc, msgs = build_db(files, tmp_path)
    assert (rc, msgs) == (0, [])
    dat = (tmp_path / "smtp-policy.dat").read_text()
    assert dat == (
        "_x rejectnet +\n"
        "# ----------\n# localnames:\n"
        "Our.Example = _localnames\n"
        "second.example = _localnames\n"
        "# ------------------\n# smtp-policy.relay:\n"
        "[192.0.2.0]/24  = _full_rights\n"
        "  [198.51.100.0]/24   = _full_rights\n"
        "# ---------------\n# smtp-policy.mx:\n"
        "mx.example = _relaytarget\n"
        "# ---------------------------\n# smtp-policy.spam{,.manual}:\n"
        "[203.0.113.0]/24  rejectnet +\n"
        "friend@  = _bulk_mail\n"
        "spam.example  = _bulk_mail\n"
        "zzz@   = _bulk_mail\n"
    )
    recs = records(str(tmp_path / "smtp-policy"))
    assert recs[pdb.parse_key(b"our.example")] == pdb.encode_attr(1, b"_localnames")
    # the indented relay line is ignored by makedb, as in 3.0.1
    assert pdb.parse_key(b"[198.51.100.0]/24") not in recs


def test_failed_build_keeps_old_db_and_names_file_and_line(tmp_path: Path) -> None:
    rc, _ = build_db({"smtp-policy.src": TV26_SRC, "localnames": ""}, tmp_path)
    assert rc == 0
    before = (tmp_path / "smtp-policy.db").read_bytes()
    (tmp_path / "smtp-policy.relay").write_text("# ok\n[192.0.2.0]/24\n10.1/16\n")
    msgs: list[str] = []
    rc = builder.build(str(tmp_path), err=msgs.append)
    assert rc == 1
    assert msgs == [
        "smtp-policy.relay:3: Error: line 9: bad policykey, rc = -4",
        "smtp-policy control database makedb failure rc= 1",
    ]
    assert (tmp_path / "smtp-policy.db").read_bytes() == before
    assert not (tmp_path / "smtp-policy-new.db").exists()
    assert records(str(tmp_path / "smtp-policy")) == TV26_DB


def test_cli_entry_point(tmp_path: Path) -> None:
    (tmp_path / "smtp-policy.src").write_text(TV26_SRC)
    (tmp_path / "localnames").write_text("")
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZCONFIG=str(tmp_path / "none.conf"))
    cmd = [sys.executable, "-m", "zmailer_smtpd.policy.builder", "-n", "-d", str(tmp_path)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    assert records(str(tmp_path / "smtp-policy")) == TV26_DB
    p = subprocess.run(cmd[:-2] + ["-d", str(tmp_path / "nope")], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 64
    assert p.stderr == f"No {tmp_path / 'nope'}/smtp-policy.src input file\n"


def test_dump_format() -> None:
    assert pdb.dump_line(*next(iter(TV26_DB.items()))) == b'.\t = "_default_dot"'
    k = bytes.fromhex("0b057370616d6d65724000")
    assert pdb.dump_line(k, TV26_DB[k]) == b'spammer@\t message "No mail from spammer" rejectsource "+"'
