"""The policy database handle a session child keeps between sessions (policy/db.py).

A child serving several sessions opens the database once, and again only
when the file changed: a rebuilt policy must be what the next session sees,
exactly as with one open per session.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from test_daemon_clients import ETC, Smtpd, build_policy, smtpd, swaks  # noqa: F401

from zmailer_smtpd.policy import db as pdb


def test_handle_kept_while_the_file_is_unchanged(tmp_path: Path) -> None:
    path = str(build_policy(tmp_path / "db"))
    a, sa = pdb.open_session_db("btree", path)
    assert sa == 0 and a is not None and a.shared
    a.close()  # the session's end lets go of it; the handle stays open
    b, _ = pdb.open_session_db("btree", path)
    assert b is not None and b._db is a._db
    dot = pdb.string_key(pdb.K_DOMAIN, b".")
    assert b.get(dot) is not None and b.get(dot) == a.get(dot)


def test_answers_of_an_unchanged_file_are_remembered(tmp_path: Path) -> None:
    """The kept handle's answers (found or missing) are the file's: asked once, then remembered."""
    path = str(build_policy(tmp_path / "db"))
    a, _ = pdb.open_session_db("btree", path)
    assert a is not None
    memo = pdb._session_handles[a.filename][3]
    dot = pdb.string_key(pdb.K_DOMAIN, b".")
    none = pdb.string_key(pdb.K_DOMAIN, b"not-there.example")
    assert (a.get(dot), a.probe(none)) == (a._db.get(dot), None)  # type: ignore[attr-defined]
    assert memo == {dot: a._db.get(dot), none: None}  # type: ignore[attr-defined]
    b, _ = pdb.open_session_db("btree", path)
    assert b is not None and b.get(dot) == memo[dot]
    for i in range(memo.MAX + 5):  # bounded: a full memo starts again
        b.probe(pdb.string_key(pdb.K_DOMAIN, b"d%d.example" % i))
    assert len(memo) <= memo.MAX


def test_rebuilt_file_is_reopened(tmp_path: Path) -> None:
    path = str(build_policy(tmp_path / "db"))
    a, _ = pdb.open_session_db("btree", path)
    assert a is not None
    key = pdb.string_key(pdb.K_DOMAIN, b"rebuilt.example")
    assert a.get(key) is None
    build_policy(tmp_path / "db", (ETC / "smtp-policy.src").read_text()
                 + "rebuilt.example  relaytarget +\n")
    b, _ = pdb.open_session_db("btree", path)
    assert b is not None and b._db is not a._db
    assert b.get(key) is not None


def test_handle_of_another_process_is_not_used(tmp_path: Path) -> None:
    path = str(build_policy(tmp_path / "db"))
    a, _ = pdb.open_session_db("btree", path)
    assert a is not None
    fn = a.filename
    pid, ident, handle, memo = pdb._session_handles[fn]
    pdb._session_handles[fn] = (pid + 1, ident, handle, memo)  # as a forked child would find it
    b, _ = pdb.open_session_db("btree", path)
    assert b is not None and b._db is not handle
    # not closed by us (a closed bsddb3 handle raises): still the other process's to use
    assert handle.get(pdb.string_key(pdb.K_DOMAIN, b".")) is not None  # type: ignore[attr-defined]
    handle.close()  # type: ignore[attr-defined]


def test_missing_file_is_status_2(tmp_path: Path) -> None:
    assert pdb.open_session_db("btree", str(tmp_path / "none")) == (None, 2)
    assert pdb.open_session_db(None, str(tmp_path / "none")) == (None, 1)


def test_daemon_child_sees_the_rebuilt_policy(smtpd: Callable[..., Smtpd]) -> None:  # noqa: F811
    """One child, two sessions, the policy rebuilt in between: the second session obeys it."""
    untrusted = "".join(
        ln for ln in (ETC / "smtp-policy.src").read_text().splitlines(keepends=True)
        if not ln.startswith(("[127.0.0.0]/8", "[ipv6.::1]/128")))
    d: Smtpd = smtpd(untrusted)
    p = swaks(d, "--from", "alice@example.net", "--to", "bob@example.org")
    assert p.returncode == 24, p.stdout + p.stderr  # relaying refused
    d.sessions_done()
    build_policy(d.tmp / "db", untrusted + "example.org  relaytarget +\n")
    p = swaks(d, "--from", "alice@example.net", "--to", "bob@example.org", "--body", "ok")
    assert p.returncode == 0, p.stdout + p.stderr
    d.sessions_done()
    log = d.log_bytes()
    pids = set(os.fsdecode(m).split()[-3] for m in log.splitlines() if b"connection from" in m)
    assert len(pids) == 1, log  # both sessions in one child
    assert len(d.router_files()) == 1
