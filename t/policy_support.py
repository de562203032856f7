"""Shared pieces of the policy tests: golden-case format, builder runs, dnsmasq, and
dialogues through the real Session with the real policy engine (its replies are
the only rendering of policy.md §6).

Golden case format (t/golden/policy/NAME.in; expected output in NAME.ref):

    # comment lines (before the first @ directive) are ignored; "@@" → "@"
    @file smtp-policy.src         following lines (verbatim) are that input file
    @dns                          following lines are a dnsmasq configuration
    @self 203.0.113.25 ...        the server's own addresses (default: none known)
    @session 192.0.2.33 [network] a session: -T mode (empty {A}, reverse name
                                  "stdin") unless "network" ({A} = [ip], no PTR)
    HELO client.example           commands of that session, one a line

Output (.ref): for each session ``@session ...``, then ``C: cmd`` / ``S: reply``
lines.  The server's host name is ``<H>``, the spool id ``<spoolid>``; the greeting
is ``S: 220 …``, the EHLO capabilities after SIZE ``S: 250 …``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402

from zmailer_smtpd.dnsresolve import Resolver, Server  # noqa: E402
from zmailer_smtpd.policy import builder  # noqa: E402
from zmailer_smtpd.policy.dnscheck import SelfAddrs  # noqa: E402
from zmailer_smtpd.policy.engine import PolicySession, SessionPolicy, open_policy  # noqa: E402

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


def transcript(h: Any, policy: SessionPolicy, cmds: list[str]) -> list[str]:
    """Run ``cmds`` through a real Session; the replies in the .ref format.

    A second MAIL gets an RSET before it (not shown); the greeting, the EHLO
    capability tail and the spool id are abbreviated as the module docstring says.
    """
    from sessionkit import ScriptTransport

    from zmailer_smtpd.session import Session
    from zmailer_smtpd.stream import SmtpStream

    chunks: list[bytes] = []
    sent: list[tuple[str, bool]] = []  # (command, injected by us)
    seen_mail = False
    for c in cmds:
        if c.split(" ", 1)[0].split(":", 1)[0].upper() == "MAIL":
            if seen_mail:  # the cases chain MAILs; real SMTP needs RSET (503)
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


def run_dialogue(
    dbpath: str, ip: str, cmds: list[str], *, network: bool = False,
    resolver: Resolver | None = None, selfaddrs: list[str] | None = None,
    debug: list[str] | None = None,
) -> list[str]:
    """One session through the real Session and policy engine (``network``: {A} = [ip],
    no PTR; else -T: interactive, {A} empty, reverse name "stdin"); .ref-format lines."""
    from sessionkit import Harness, utc_tz

    utc_tz()
    a = b"[" + ip.encode() + b"]" if ":" not in ip else b"[IPv6:" + ip.encode() + b"]"
    db, status = open_policy("btree", dbpath, debug=debug.append if debug is not None else None)
    ps = PolicySession(
        db, status,
        resolver=resolver or Resolver([Server("127.0.0.1", 53)], timeout=10.0),
        selfaddrs=SelfAddrs(selfaddrs) if selfaddrs is not None else SelfAddrs(None),
        myhostname=b"<H>", client_text=a if network else b"",
        debug=debug.append if debug is not None else None,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as td:
        h = Harness(Path(td))
        h.config_text = b"PARAM policydb btree " + dbpath.encode() + b"\n127.0.0.1 -\n*  ve\n"
        h.peer_addr = ip
        if not network:
            h.mode = "interactive"
        return transcript(h, SessionPolicy(ps), cmds)

