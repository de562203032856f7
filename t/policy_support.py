"""Shared pieces of the policy tests: golden-case format, builder runs, dnsmasq, a
stand-in SMTP dialogue that renders the engine's verdicts as replies.

Golden case format (t/golden/policy/NAME.in; expected output in NAME.ref):

    # comment lines (before the first @ directive) are ignored; "@@" → "@"
    @file smtp-policy.src         following lines (verbatim) are that input file
    @dns                          following lines are a dnsmasq configuration
    @self 203.0.113.25 ...        the server's own addresses (default: none known)
    @session 192.0.2.33 [network] a session: -T mode (empty {A}, reverse name
                                  "stdin") unless "network" ({A} = [ip], no PTR)
    HELO client.example           commands of that session, one a line

Output (.ref): for each session ``@session ...``, then ``C: cmd`` / ``S: reply``
lines.  The server's host name is ``<H>``, the spool id ``<spoolid>``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402

from zmailer_smtpd.dnsresolve import Resolver, Server  # noqa: E402
from zmailer_smtpd.policy import builder  # noqa: E402
from zmailer_smtpd.policy.dnscheck import SelfAddrs  # noqa: E402
from zmailer_smtpd.policy.engine import (  # noqa: E402
    PolicySession,
    freeze_reply_text,
    open_policy,
)

GOLDEN = Path(__file__).parent / "golden" / "policy"


@dataclass
class Case:
    """One parsed .in file."""

    name: str
    files: dict[str, str] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    selfaddrs: list[str] | None = None
    sessions: list[tuple[str, list[str]]] = field(default_factory=list)


def parse_case(path: Path) -> Case:
    case = Case(path.stem)
    target: list[str] | None = None
    cur_file: str | None = None
    for line in path.read_text("utf-8").split("\n"):
        if line.startswith("@@"):
            line = line[1:]
        elif line.startswith("@"):
            word, _, arg = line[1:].partition(" ")
            if word == "file":
                cur_file = arg.strip()
                case.files[cur_file] = ""
                target = None
            elif word == "dns":
                cur_file, target = None, case.dns
            elif word == "self":
                case.selfaddrs = arg.split()
                cur_file, target = None, None
            elif word == "session":
                cmds: list[str] = []
                case.sessions.append((arg.strip(), cmds))
                cur_file, target = None, cmds
            else:
                raise ValueError(f"{path}: unknown directive {line!r}")
            continue
        if cur_file is not None:
            case.files[cur_file] += line + "\n"
        elif target is not None and line.strip():
            target.append(line)
    for k, v in case.files.items():
        case.files[k] = v[:-1] if v.endswith("\n\n") else v  # last blank separator line
    return case


def free_port() -> int:
    """A 127.0.0.1 port free for both UDP and TCP (dnsmasq binds both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


@contextlib.contextmanager
def dnsmasq(conf_lines: list[str], tmp: Path) -> Iterator[Resolver]:
    """A private dnsmasq on 127.0.0.1:<free port> with ``conf_lines``; its Resolver."""
    conf = tmp / "dnsmasq.conf"
    conf.write_text("\n".join(conf_lines) + "\n")
    port = free_port()
    proc = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", "--no-resolv",
         "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
         f"--port={port}", "--pid-file=", "--log-facility=-", "--user=root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        res = Resolver([Server("127.0.0.1", port)], timeout=2.0)
        q = dns.message.make_query("ready.invalid.", "A")
        deadline = time.monotonic() + 10
        while True:  # readiness: the first answer of any kind (bounded)
            try:
                dns.query.udp(q, "127.0.0.1", port=port, timeout=0.2)
                break
            except (OSError, dns.exception.Timeout):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("dnsmasq did not come up") from None
                time.sleep(0.02)
        yield res
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def build_db(case_files: dict[str, str], dbdir: Path) -> tuple[int, list[str]]:
    """Write the input files and run the real builder; (status, messages)."""
    dbdir.mkdir(parents=True, exist_ok=True)
    for name, text in case_files.items():
        (dbdir / name).write_text(text, "utf-8")
    msgs: list[str] = []
    rc = builder.build(str(dbdir), "smtp-policy", "btree", err=msgs.append)
    return rc, msgs


def _path(arg: str) -> str:
    lt, gt = arg.find("<"), arg.rfind(">")
    return arg[lt + 1 : gt] if 0 <= lt < gt else arg.split(":", 1)[-1].strip()


def run_dialogue(
    dbpath: str, ip: str, cmds: list[str], *, network: bool = False,
    resolver: Resolver | None = None, selfaddrs: list[str] | None = None,
    debug: list[str] | None = None,
) -> list[str]:
    """A stand-in session: the policy-relevant replies of protocol.md §4 for ``cmds``."""
    db, status = open_policy("btree", dbpath, debug=debug.append if debug is not None else None)
    ps = PolicySession(
        db, status,
        resolver=resolver or Resolver([Server("127.0.0.1", 53)], timeout=2.0),
        selfaddrs=SelfAddrs(selfaddrs) if selfaddrs is not None else SelfAddrs(None),
        myhostname=b"<H>",
        client_text=(b"[" + ip.encode() + b"]" if ":" not in ip else b"[IPv6:" + ip.encode() + b"]")
        if network else b"",
        debug=debug.append if debug is not None else None,
    )  # fmt: skip
    out: list[str] = []

    def say(v_lines: list[bytes]) -> None:
        out.extend("S: " + x.decode("latin-1") for x in v_lines)

    v = ps.connect(ip, hostname=None if network else b"stdin", sameip=0)
    if v.code:
        say(v.reply_lines())
    else:
        out.append("S: 220 …")
    ps.greeting_sent()
    state = "hello"
    nrcpt = 0
    for cmd in cmds:
        out.append("C: " + cmd)
        verb = cmd.split(" ", 1)[0].split(":", 1)[0].upper()
        gate = ps.command_gate(verb.encode())
        if gate is not None:
            say(gate.reply_lines())
            continue
        arg = cmd[len(verb):].strip()
        if verb in ("HELO", "EHLO"):
            ps.helo(arg.encode())
            state = "mail"
            if verb == "EHLO":
                out.append(f"S: 250-<H> Hello {arg}")
                out.append(f"S: 250-SIZE {ps.size_limit(0)}")
                out.append("S: 250 …")
            else:
                out.append(f"S: 250 <H> Hello {arg}")
        elif verb == "MAIL":
            p = _path(arg).encode()
            v = ps.mail_from(p)
            if v.code:
                say(v.reply_lines())
            else:
                state = "rcpt"
                nrcpt = 0
                out.append("S: 250 2.1.0 Sender syntax Ok; ")
        elif verb == "RCPT":
            if state != "rcpt":
                w = ps.rcpt_before_mail()
                if w is not None:
                    say(w.reply_lines())
                else:
                    out.append("S: 503 5.5.1 Waiting for MAIL command")
                continue
            p = _path(arg).encode()
            v = ps.rcpt_to(p)
            if v.code:
                say(v.reply_lines())
            else:
                nrcpt += 1
                out.append(f"S: 250 2.1.5 Recipient address syntax Ok; rcpt=<{p.decode('latin-1')}>")
        elif verb == "DATA":
            if state != "rcpt" or not nrcpt:
                out.append("S: 503 5.5.1 No valid recipients")
                continue
            out.append("S: 354 Start mail input; end with <CRLF>.<CRLF>")
            out.append("C: (message) .")
            v = ps.data()
            if v.freeze:
                out.append("S: 250 2.7.1 " + freeze_reply_text(v.freeze, v.message, b"<spoolid>").decode())
            elif v.code:
                say(v.reply_lines())
            else:
                out.append("S: 250 2.0.0 <spoolid> Message accepted for delivery")
            state = "mail"
        elif verb == "RSET":
            if state == "rcpt":
                state = "mail"
            ps.reset_transaction()
            out.append("S: 250 2.0.0 Reset processed, now waiting for MAIL command")
        elif verb == "QUIT":
            out.append("S: 221 2.0.0 <H> Out")
            break
        else:
            out.append("S: 250 2.0.0 Ok")
    if db is not None:
        db.close()
    return out


def run_case(case: Case) -> str:
    """Build the case's database with the real builder and run its sessions."""
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        files = dict(case.files)
        files.setdefault("localnames", "")
        rc, msgs = build_db(files, tmp / "db")
        assert rc == 0, msgs
        dbpath = str(tmp / "db" / "smtp-policy")
        out: list[str] = []
        with contextlib.ExitStack() as st:
            resolver = st.enter_context(dnsmasq(case.dns, tmp)) if case.dns else None
            for spec, cmds in case.sessions:
                words = spec.split()
                out.append("@session " + spec)
                out.extend(
                    run_dialogue(
                        dbpath, words[0], cmds, network="network" in words[1:],
                        resolver=resolver, selfaddrs=case.selfaddrs,
                    )
                )  # fmt: skip
        return "\n".join(out) + "\n"


def env_update() -> bool:
    return os.environ.get("POLICY_GOLDEN_UPDATE") == "1"
