"""The policy golden cases (t/golden/policy/*.in) run through the real Session with the
real policy engine (policy.engine.make_session_policy's SessionPolicy seam), the real
builder and Berkeley DB, and a real spool: every policy-relevant reply the session
renders must equal the .ref line that the engine's own renderer produced.

Lines the golden stand-in dialogue only sketches ("S: 220 …", the EHLO capability
tail, "Message accepted for delivery", commands it does not model) are normalised.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from policy_support import GOLDEN, build_db, dnsmasq, parse_case
from sessionkit import Harness, ScriptTransport, utc_tz

from zmailer_smtpd.dnsresolve import Resolver, Server
from zmailer_smtpd.policy.dnscheck import SelfAddrs
from zmailer_smtpd.policy.engine import PolicySession, SessionPolicy, open_policy
from zmailer_smtpd.session import Session
from zmailer_smtpd.stream import SmtpStream

CASES = sorted(GOLDEN.glob("*.in"))
MODELLED = {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT"}


def replies(out: bytes) -> list[list[bytes]]:
    """Split a transcript into replies (lists of lines)."""
    groups: list[list[bytes]] = []
    cur: list[bytes] = []
    for line in out.split(b"\r\n")[:-1]:
        cur.append(line)
        if line[3:4] != b"-":
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def transcript(h: Harness, policy: SessionPolicy, cmds: list[str]) -> list[str]:
    chunks: list[bytes] = []
    sent: list[tuple[str, bool]] = []  # (command, injected by us)
    seen_mail = False
    for c in cmds:
        if c.split(" ", 1)[0].split(":", 1)[0].upper() == "MAIL":
            if seen_mail:  # the stand-in allows nested MAIL; real SMTP needs RSET (503)
                chunks.append(b"RSET\r\n")
                sent.append(("RSET", True))
            seen_mail = True
        chunks.append(c.encode("latin-1") + b"\r\n")
        sent.append((c, False))
        if c.split(" ", 1)[0].upper() == "DATA":
            chunks.append(b"x\r\n.\r\n")
    h.policy = policy
    ctx = h.context()
    t = ScriptTransport(chunks)
    Session(ctx, SmtpStream(t, cmd_timeout=5, data_timeout=5)).run()
    groups = replies(t.output)
    out: list[str] = []

    def say(lines: list[bytes]) -> None:
        out.extend("S: " + x.decode("latin-1").replace("mx.example.org", "<H>") for x in lines)

    g = groups.pop(0)
    if g[0].startswith(b"220 "):
        out.append("S: 220 …")
    else:
        say(g)
    for c, injected in sent:
        if not groups:
            break
        if injected:
            groups.pop(0)
            continue
        out.append("C: " + c)
        verb = c.split(" ", 1)[0].split(":", 1)[0].upper()
        g = groups.pop(0)
        if verb == "EHLO" and g[-1] == b"250 HELP":
            size = next(x for x in g if x.startswith(b"250-SIZE"))
            out += ["S: " + g[0].decode("latin-1").replace("mx.example.org", "<H>"),
                    "S: " + size.decode(), "S: 250 …"]
        elif verb == "DATA" and g == [b"354 Start mail input; end with <CRLF>.<CRLF>"]:
            say(g)
            out.append("C: (message) .")
            g = groups.pop(0)
            if g[0].startswith(b"250 2.0.0 accepted; "):
                out.append("S: 250 2.0.0 <spoolid> Message accepted for delivery")
            else:
                say([ln.split(b"; S")[0] + b"; <spoolid>" if b"; S" in ln else ln for ln in g])
        elif verb not in MODELLED and not g[0].startswith((b"4", b"5")):
            out.append("S: 250 2.0.0 Ok")
        else:
            say(g)
    return out


def normalise_ref(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        # the stand-in has no verb checks; our session's texts for these are in the vectors
        if ln == "S: 503 5.5.1 Waiting for MAIL command":
            ln = "S: 503 5.5.1 Hello {A}, Waiting for MAIL command"
        out.append(ln)
    return out


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_through_session(path: Path) -> None:
    utc_tz()
    case = parse_case(path)
    ref_sessions = path.with_suffix(".ref").read_text("utf-8").split("@session ")[1:]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        files = dict(case.files)
        files.setdefault("localnames", "")
        rc, msgs = build_db(files, tmp / "db")
        assert rc == 0, msgs
        dbpath = str(tmp / "db" / "smtp-policy")
        with contextlib.ExitStack() as st:
            resolver = st.enter_context(dnsmasq(case.dns, tmp)) if case.dns else None
            for i, ((spec, cmds), ref) in enumerate(zip(case.sessions, ref_sessions, strict=True)):
                words = spec.split()
                ip, network = words[0], "network" in words[1:]
                a = (b"[" + ip.encode() + b"]" if ":" not in ip else b"[IPv6:" + ip.encode() + b"]")
                db, status = open_policy("btree", dbpath)
                ps = PolicySession(
                    db, status,
                    resolver=resolver or Resolver([Server("127.0.0.1", 53)], timeout=10.0),
                    selfaddrs=SelfAddrs(case.selfaddrs) if case.selfaddrs is not None else SelfAddrs(None),
                    myhostname=b"<H>", client_text=a if network else b"",
                )  # fmt: skip
                h = Harness(tmp / f"s{i}")
                h.config_text = b"PARAM policydb btree " + dbpath.encode() + b"\n127.0.0.1 -\n*  ve\n"
                h.peer_addr = ip
                if not network:  # -T: interactive, network-connected, {A} empty, name "stdin"
                    h.mode = "interactive"
                got = transcript(h, SessionPolicy(ps), cmds)
                addr = "" if not network else a.decode()
                want = [x.replace("{A}", addr) for x in normalise_ref(ref.rstrip("\n").split("\n")[1:])]
                got = [x.replace("<H>", "<H>") for x in got]
                assert got == want, f"session {spec}"
