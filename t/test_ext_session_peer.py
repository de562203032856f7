"""ident (-a), whoson (-w) and TCP wrappers through the real session set-up
(cli.peer_lookups + Session) with the stand-in identd/whosond on loopback
(interfaces.md §6, §8.6; protocol.md §4.2 step 6)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from peers.support import read_log, server
from sessionkit import Harness, ScriptTransport, cmds

from zmailer_smtpd import cli
from zmailer_smtpd.session import Session
from zmailer_smtpd.stream import SmtpStream

REFUSAL = (b"421 mx.example.org ZMailer Server 3.0.1 #1 WILL NOT TALK TO YOU at"
           b" Mon, 6 Jan 2025 10:00:00 +0000\r\n")
GREETING_IDENT = (b"220 mx.example.org ZMailer Server 3.0.1 #1 ESMTP+IDENT ready at"
                  b" Mon, 6 Jan 2025 10:00:00 +0000\r\n")
MAIL = ("EHLO client.example.net", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA")


pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def session(h: Harness, opts: Any, chunks: list[bytes], **extra: Any) -> tuple[bytes, Any, Any]:
    """Build the context, run cli.peer_lookups as the real set-up does, run the session."""
    ctx = h.context()
    ctx.local_addr = "127.0.0.1"
    ctx.extra.update(extra)
    cli.peer_lookups(ctx, opts)
    t = ScriptTransport(chunks)
    Session(ctx, SmtpStream(t, cmd_timeout=5, data_timeout=5)).run()
    return t.output, ctx, h


def mail_session(h: Harness, opts: Any, *, more: tuple[str, ...] = (), **extra: Any) -> tuple[bytes, Any, dict[str, bytes]]:
    chunks = cmds(*MAIL) + [b"Subject: t\r\n\r\nbody\r\n.\r\n"] + cmds(*more, "QUIT")
    out, ctx, h = session(h, opts, chunks, **extra)
    from spoolutil import spool_files

    files = {k: v for k, v in spool_files(h.postoffice).items() if k.startswith("router/")}
    return out, ctx, files


def harness(tmp: Path, *, a: bool = False, w: bool = False) -> Harness:
    h = Harness(tmp)
    h.peer_addr = "127.0.0.1"
    h.options = {"ident": a, "whoson": w}
    return h


def record(files: dict[str, bytes], key: bytes) -> list[bytes]:
    (data,) = files.values()
    return [ln[len(key) + 1:] for ln in data.split(b"\n") if ln.startswith(key + b" ")]


# ------------------------------------------------------------------ ident


def test_i1_ident_in_greeting_identinfo_and_rcvdfrom(tmp_path: Path) -> None:
    plog = tmp_path / "identd.log"
    h = harness(tmp_path, a=True)
    h.values["rcvd-ident"] = True
    with server("identd.py", "user:joe", env=dict(os.environ, PEER_LOG=str(plog))) as (port, _):
        out, ctx, files = mail_session(h, SimpleNamespace(ident=True, whoson=False),
                                       more=("Z-IDENT",), ident_port=port)
    assert out.startswith(GREETING_IDENT)
    assert ctx.ident == b"joe"
    assert read_log(plog)[0] == {"query": "40000 , 25\r\n"}
    assert record(files, b"identinfo") == [b"joe"]
    assert b' ident: "joe" ' in record(files, b"rcvdfrom")[0]
    assert b"\r\n200 RFC1413 identuser='joe'\r\n" in out  # Z-IDENT asks again


def test_i2_ident_error_answer(tmp_path: Path) -> None:
    h = harness(tmp_path, a=True)
    with server("identd.py", "error") as (port, _):
        out, ctx, files = mail_session(h, SimpleNamespace(ident=True, whoson=False), ident_port=port)
    assert record(files, b"identinfo") == [b"IDENT-NONSENSE"]
    assert out.startswith(GREETING_IDENT)


def test_i3_no_ident_service(tmp_path: Path) -> None:
    h = harness(tmp_path, a=True)
    out, ctx, files = mail_session(h, SimpleNamespace(ident=True, whoson=False), ident_port=dead_port())
    assert record(files, b"identinfo")[0] in (b"NO-IDENT-SERVICE", b"NO-IDENT-SERVICE[2]")
    assert b"\r\n250 2.0.0 " in out  # the session went on


def test_without_dash_a_nothing_is_asked(tmp_path: Path) -> None:
    plog = tmp_path / "identd.log"
    h = harness(tmp_path)
    with server("identd.py", "user:joe", env=dict(os.environ, PEER_LOG=str(plog))) as (port, _):
        out, ctx, files = mail_session(h, SimpleNamespace(ident=False, whoson=False), ident_port=port)
    assert b"+IDENT" not in out.split(b"\r\n")[0]
    assert record(files, b"identinfo") == []
    assert read_log(plog) == []


def test_inetd_mode_never_asks(tmp_path: Path) -> None:
    h = harness(tmp_path, a=True)
    h.mode = "inetd"
    with server("identd.py", "user:joe") as (port, _):
        out, ctx, files = mail_session(h, SimpleNamespace(ident=True, whoson=False), ident_port=port)
    assert ctx.ident is None


# ------------------------------------------------------------------ whoson


def whoson_session(tmp: Path, known: str | None, rcvd: bool = True) -> tuple[bytes, dict[str, bytes], Path]:
    plog = tmp / "whosond.log"
    h = harness(tmp, w=True)
    h.values["rcvd-whoson"] = rcvd
    opts = SimpleNamespace(ident=False, whoson=True, test_ip=None)
    if known is None:
        h.values["whoson-server"] = f"127.0.0.1 {dead_port()}"
        out, _, files = mail_session(h, opts)
        return out, files, plog
    args = [known] if known else []
    with server("whosond.py", *args, env=dict(os.environ, PEER_LOG=str(plog))) as (port, _):
        h.values["whoson-server"] = f"127.0.0.1 {port} tcp"
        out, _, files = mail_session(h, opts)
    return out, files, plog


def test_w1_whoson_known(tmp_path: Path) -> None:
    out, files, plog = whoson_session(tmp_path, "127.0.0.1=alice")
    assert read_log(plog) == [{"query": "QUERY 127.0.0.1\r\n\r\n"}]
    assert b' whoson: "alice" ' in record(files, b"rcvdfrom")[0]
    assert b' whoson: "alice" ' in record(files, b"comment")[-1]


def test_whoson_unknown_and_unavailable(tmp_path: Path) -> None:
    out, files, _ = whoson_session(tmp_path / "a", "")
    assert b' whoson: "-unregistered-" ' in record(files, b"rcvdfrom")[0]
    out, files, _ = whoson_session(tmp_path / "b", None)
    assert b' whoson: "-unavailable-" ' in record(files, b"rcvdfrom")[0]
    assert b"\r\n250 2.0.0 " in out


def test_whoson_without_rcvd_whoson_only_in_the_comment(tmp_path: Path) -> None:
    out, files, _ = whoson_session(tmp_path, "127.0.0.1=alice", rcvd=False)
    assert b"whoson" not in record(files, b"rcvdfrom")[0]
    assert b' whoson: "alice" ' in record(files, b"comment")[-1]


# ------------------------------------------------------------------ TCP wrappers


def wrapper(tmp: Path, allow: str | None, deny: str | None) -> Harness:
    h = harness(tmp)
    h.values["use-tcp-wrapper"] = True
    files = []
    for name, text in (("hosts.allow", allow), ("hosts.deny", deny)):
        p = tmp / name
        if text is not None:
            p.write_text(text)
        files.append(str(p))
    h.values["tcp-wrapper-files"] = " ".join(files)
    return h


def test_p1_refused_with_421_pause_and_end(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, "smtp-receiver: ALL\n")
    out, ctx, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("EHLO x.example", "QUIT"))
    assert out == REFUSAL
    assert h.slept == [2]
    assert any(b"refusing connection from [127.0.0.1]:40000/IDENT-NOT-QUERIED" in ln
               for ln in ctx.log.lines)


def test_allow_beats_deny(tmp_path: Path) -> None:
    h = wrapper(tmp_path, "smtp-receiver: 127.0.0.1\n", "ALL: ALL\n")
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out.startswith(b"220 mx.example.org ")


def test_other_service_and_other_client_are_not_refused(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, "sshd: ALL\nsmtp-receiver: 192.0.2.0/255.255.255.0 EXCEPT 192.0.2.9\n")
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out.startswith(b"220 ")
    (tmp_path / "x").mkdir()
    h2 = wrapper(tmp_path / "x", None, "smtp-receiver: 127.0.0.0/8 EXCEPT 127.0.0.2\n")
    out, _, _ = session(h2, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out == REFUSAL


def test_spawn_and_twist_never_run(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    h = wrapper(tmp_path, f"smtp-receiver: ALL: spawn (touch {flag}): twist /bin/touch {flag}\n", None)
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out.startswith(b"220 ")
    assert not flag.exists()


def test_unreadable_table_refuses(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, None)
    (tmp_path / "hosts.deny").mkdir()  # exists, cannot be read as a file
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out == REFUSAL


def test_missing_tables_allow(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, None)
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out.startswith(b"220 ")


def test_wrapper_off_is_not_consulted(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, "ALL: ALL\n")
    h.values["use-tcp-wrapper"] = False
    out, _, _ = session(h, SimpleNamespace(ident=False, whoson=False), cmds("QUIT"))
    assert out.startswith(b"220 ")


def test_ident_user_pattern(tmp_path: Path) -> None:
    h = wrapper(tmp_path, None, "smtp-receiver: joe@ALL\n")
    h.options = {"ident": True}
    with server("identd.py", "user:joe") as (port, _):
        out, _, _ = session(h, SimpleNamespace(ident=True, whoson=False), cmds("QUIT"),
                            ident_port=port)
    assert out == REFUSAL
