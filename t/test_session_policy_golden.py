"""The policy golden cases (policy.md §12 test vectors, t/golden/policy/*.in → *.ref;
format in t/policy_support.py): source files through the real builder into a real
Berkeley DB, the real policy engine behind make_session_policy's SessionPolicy
seam, and the real Session with a real spool.  The session renders every reply.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from policy_support import GOLDEN, build_db, dnsmasq, parse_case, run_dialogue

CASES = sorted(GOLDEN.glob("*.in"))


def normalise_ref(lines: list[str], addr: str) -> list[str]:
    """The .ref files write RCPT-before-MAIL without {A}; the session says "Hello {A},"."""
    out = []
    for ln in lines:
        if ln == "S: 503 5.5.1 Waiting for MAIL command":
            ln = f"S: 503 5.5.1 Hello {addr}, Waiting for MAIL command"
        out.append(ln)
    return out


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_through_session(path: Path) -> None:
    case = parse_case(path)
    ref_sessions = path.with_suffix(".ref").read_text("utf-8").split("@session ")[1:]
    assert len(ref_sessions) == len(case.sessions) > 0
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        files = dict(case.files)
        files.setdefault("localnames", "")
        rc, msgs = build_db(files, tmp / "db")
        assert rc == 0, msgs
        dbpath = str(tmp / "db" / "smtp-policy")
        with contextlib.ExitStack() as st:
            resolver = st.enter_context(dnsmasq(case.dns, tmp)) if case.dns else None
            for (spec, cmds), ref in zip(case.sessions, ref_sessions, strict=True):
                words = spec.split()
                ip, network = words[0], "network" in words[1:]
                addr = "" if not network else (f"[{ip}]" if ":" not in ip else f"[IPv6:{ip}]")
                got = run_dialogue(dbpath, ip, cmds, network=network, resolver=resolver,
                                   selfaddrs=case.selfaddrs)
                want = normalise_ref(ref.rstrip("\n").split("\n")[1:], addr)
                assert got == want, f"session {spec}"
