"""Daemon parent pieces that need no process: limits, texts, pidfile parsing, plan."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from zmailer_smtpd import loadavg, pidfile, server
from zmailer_smtpd.config import config_from_bytes
from zmailer_smtpd.zenv import ZEnv


def test_limit_texts_are_3_0_1_bytes() -> None:
    # protocol.md §3.7 step 8 and TV-26
    assert server.limit_reply("sameip", 2, 1, True) == (
        b"450-5.7.1 Come again later\r\n"
        b"450-5.7.1 Ask HELP for our contact information.\r\n"
        b"450 5.7.1 Too many simultaneous connections from same IP address (2 max 1)\r\n"
    )
    assert server.limit_reply("parallel", 801, 800, True) == (
        b"450-5.7.1 Ask HELP for our contact information.\r\n"
        b"450-5.7.1 Come again later\r\n"
        b"450 5.7.1 Too many simultaneous connections to this server (801 max 800)\r\n"
    )
    assert server.limit_reply("sameip", 2, 1, False).startswith(b"450-Come again later\r\n")


def test_limit_thresholds_with_defaults() -> None:
    # §3.7: the 101st from one address gets the 450, the 401st and later are closed;
    # the 801st of a listener type gets the 450, the 901st and later are closed.
    act = server.limit_action
    assert act(1, 100, 100, 800) == server.ACCEPT
    assert act(1, 101, 100, 800) == server.REFUSE_SAMEIP
    assert act(1, 400, 100, 800) == server.REFUSE_SAMEIP
    assert act(1, 401, 100, 800) == server.CLOSE_SAMEIP
    assert act(800, 1, 100, 800) == server.ACCEPT
    assert act(801, 1, 100, 800) == server.REFUSE_PARALLEL
    assert act(900, 1, 100, 800) == server.REFUSE_PARALLEL
    assert act(901, 1, 100, 800) == server.CLOSE_PARALLEL
    # parallel is checked before same-IP, silent closes before both
    assert act(801, 101, 100, 800) == server.REFUSE_PARALLEL
    assert act(901, 401, 100, 800) == server.CLOSE_SAMEIP
    # MaxSameIpSource 0: only the very first connection (sameip 0) passes
    assert act(1, 0, 0, 800) == server.ACCEPT
    assert act(1, 1, 0, 800) == server.CLOSE_SAMEIP
    # sameip 1 never gets the 450, even over a limit of 0.5-ish settings
    assert act(1, 1, 1, 800) == server.ACCEPT


def test_counts_per_listener_type_and_first_connection() -> None:
    c = server.Counts()
    a = server.addr_key(socket.AF_INET, ("192.0.2.10", 4000))
    b = server.addr_key(socket.AF_INET, ("192.0.2.11", 4000))
    assert c.counts("smtp", a) == (1, 0)  # never registered a child: sameip 0
    c.add(10, "smtp", a)
    assert c.counts("smtp", a) == (2, 2)
    assert c.counts("smtp", b) == (2, 1)
    assert c.counts("submit", a) == (1, 1)
    c.add(11, "smtp", a)
    assert c.counts("smtp", a) == (3, 3)
    assert c.remove(10) and not c.remove(10)
    c.remove(11)
    assert c.counts("smtp", a) == (1, 1)
    assert c.children == {} and c.per_kind == {} and c.per_ip == {}


def test_addr_key_distinguishes_families() -> None:
    v4 = server.addr_key(socket.AF_INET, ("127.0.0.1", 1))
    v6 = server.addr_key(socket.AF_INET6, ("::ffff:127.0.0.1", 1, 0, 0))
    assert len(v4) == 5 and len(v6) == 17 and v4 != v6


def test_decode_status() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import os,signal; os.kill(os.getpid(), 9)"])
    _, st = os.waitpid(p.pid, 0)
    text, bad = server.decode_status(st)
    assert bad and "signal 9 (SIGKILL)" in text
    p = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    _, st = os.waitpid(p.pid, 0)
    assert server.decode_status(st) == ("exited with status 3", True)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    _, st = os.waitpid(p.pid, 0)
    assert server.decode_status(st) == ("exited with status 0", False)


def test_pidfile_path_relative_and_absolute() -> None:
    assert pidfile.pidfile_path("/var/spool/postoffice", None) == (
        "/var/spool/postoffice/.pid.smtpserver"
    )
    assert pidfile.pidfile_path("/po", "x.pid") == "/po/x.pid"
    assert pidfile.pidfile_path("/po", "/run/x.pid") == "/run/x.pid"


def test_parse_pid_like_fscanf() -> None:
    assert pidfile.parse_pid(b"1234\n") == 1234
    assert pidfile.parse_pid(b"  42 junk") == 42
    assert pidfile.parse_pid(b"junk") is None
    assert pidfile.parse_pid(b"") is None


def test_is_smtpserver_reads_proc_cmdline(tmp_path: Path) -> None:
    assert not pidfile.is_smtpserver(os.getpid())  # pytest is not an smtpserver
    script = tmp_path / "smtpserver"
    script.write_text("import sys\nprint('up', flush=True)\nsys.stdin.read()\n")
    p = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"up\n"  # exec'd by now
        assert pidfile.is_smtpserver(p.pid)
    finally:
        p.communicate(b"")
    assert not pidfile.is_smtpserver(p.pid)


def test_pidfile_write_is_atomic_and_removal_checks_owner(tmp_path: Path) -> None:
    pf = pidfile.PidFile(str(tmp_path / ".pid.smtpserver"))
    assert pf.write(4242)
    assert (tmp_path / ".pid.smtpserver").read_bytes() == b"4242\n"
    assert [p.name for p in tmp_path.iterdir()] == [".pid.smtpserver"]
    (tmp_path / ".pid.smtpserver").write_bytes(b"999\n")  # a successor took over
    pf.remove()
    assert (tmp_path / ".pid.smtpserver").exists()
    pf2 = pidfile.PidFile(str(tmp_path / ".pid.smtpserver"))
    assert pf2.write(5)
    pf2.remove()
    assert not (tmp_path / ".pid.smtpserver").exists()
    assert not pidfile.PidFile(str(tmp_path / "no" / "dir")).write(1)


def test_kill_previous_messages(tmp_path: Path) -> None:
    import io

    path = tmp_path / "pf"
    out, err = io.StringIO(), io.StringIO()
    path.write_bytes(b"garbage\n")
    assert pidfile.PidFile(str(path)).kill_previous(out=out, err=err) is None
    assert err.getvalue() == f"couln't make sense of contents of {path}!\n"
    path.write_bytes(b"%d\n" % os.getpid())
    assert pidfile.PidFile(str(path)).kill_previous(out=out, err=err) is None
    assert out.getvalue() == "was about to commit suicide\n"


def test_loadavg() -> None:
    assert loadavg.reply() == (
        b"421 4.3.2 Sorry, the system is too loaded for email reception at the moment\r\n"
    )
    assert not loadavg.too_loaded(999)
    assert loadavg.current() >= 0


def test_loadavg_file(tmp_path: Path) -> None:
    f = tmp_path / "loadavg"
    f.write_text("7.93 1.00 0.50 1/100 1234\n")
    assert loadavg.current(str(f)) == 7
    assert loadavg.too_loaded(6, str(f)) and not loadavg.too_loaded(7, str(f))


def _cfg(text: bytes, ipv6: bool = True) -> object:
    return config_from_bytes(text, ZEnv.from_bytes(b""), ipv6=ipv6)


class _Opts:
    port = 2525


def test_listen_plan_defaults_and_binds() -> None:
    plan = server.listen_plan(_Opts(), _cfg(b"*  ve\n"), True)
    assert [(p.family, p.addr, p.port, p.kind) for p in plan] == [
        (socket.AF_INET6, "::", 2525, "smtp"),
        (socket.AF_INET, "0.0.0.0", 2525, "smtp"),
    ]
    plan = server.listen_plan(_Opts(), _cfg(b"PARAM listen-ssmtp\n"), False)
    assert [(p.addr, p.port, p.kind) for p in plan] == [
        ("0.0.0.0", 2525, "smtp"), ("0.0.0.0", 465, "smtps")]
    cfg = _cfg(
        b"PARAM BindPort 2600\n"
        b"PARAM BindAddress [127.0.0.1]\n"
        b"PARAM BindSubmit [127.0.0.1] 2700\n"
        b"PARAM newgroup\n"
        b"PARAM BindSmtpS [IPv6:::1]\n"
    )
    plan = server.listen_plan(_Opts(), cfg, True)
    assert [(p.addr, p.port, p.kind, p.group) for p in plan] == [
        ("127.0.0.1", 2600, "smtp", 0),
        ("127.0.0.1", 2700, "submit", 0),
        ("::1", 465, "smtps", 1),
    ]


def test_listen_plan_bindaddr_from_zenv() -> None:
    cfg = config_from_bytes(b"*  ve\n", ZEnv.from_bytes(b"BINDADDR=[127.0.0.2]\n"), ipv6=False)
    plan = server.listen_plan(_Opts(), cfg, False)
    assert [(p.addr, p.port) for p in plan] == [("127.0.0.2", 2525)]
