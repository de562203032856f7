"""The real program (bin/smtpserver: cli → server → session) as a daemon and under inetd.

Real processes on loopback; every wait is a bounded poll on a condition.
Every configuration names a real policy database (the shipped etc/ sources
through the real builder): without one a session fails closed with 400.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_daemon_clients import Smtpd, build_policy
from test_daemon_parent import child_pids_of, free_port, read_reply, talk, wait_for

from zmailer_smtpd.pidfile import pid_alive


class Prog(Smtpd):
    """bin/smtpserver with its own POSTOFFICE, ZENV, configuration (``conf``) and log."""

    def __init__(self, tmp: Path, conf: str) -> None:
        self.tmp = tmp
        self.po = tmp / "po"
        for d in ("public", "router", "freezer", "postman", "transport"):
            (self.po / d).mkdir(parents=True, exist_ok=True)
        self.zenv = tmp / "zmailer.conf"
        self.zenv.write_text(f"POSTOFFICE={self.po}\nMAILSHARE={tmp}\n")
        self.port = free_port()
        self.conf = tmp / "smtpserver.conf"
        dbpath = build_policy(tmp / "db")
        self.conf.write_text(f"PARAM policydb btree {dbpath}\n" + conf.replace("PORT", str(self.port)))
        self.log = tmp / "smtp.log"
        self.pid = 0
        self.pidfiles: list[Path] = []

    def all_pids(self) -> set[int]:
        """Every daemon this fixture may have left running (also after a failed start)."""
        pids = {self.pid} if self.pid else set()
        for pf in self.pidfiles:
            try:
                pids.add(int(pf.read_text()))
            except (OSError, ValueError):
                pass
        return pids

    def start(self, *extra: str, pidfile: Path | None = None) -> int:  # type: ignore[override]
        p = subprocess.run(self.argv(*extra), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        pf = pidfile or self.po / ".pid.smtpserver"
        self.pidfiles.append(pf)
        return self.wait_started(pf)


@pytest.fixture
def prog(tmp_path: Path) -> Iterator[Callable[[str], Prog]]:
    made: list[Prog] = []

    def make(conf: str) -> Prog:
        d = tmp_path / f"p{len(made)}"
        d.mkdir()
        p = Prog(d, conf)
        made.append(p)
        return p

    yield make
    for p in made:
        for pid in p.all_pids():
            for c in child_pids_of(pid):
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


CONF = "PARAM BindSmtp [127.0.0.1] PORT\n*  ve\n"


def test_inetd_launch_with_accepted_socket(prog: Callable[[str], Prog]) -> None:
    p = prog(CONF)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    client = socket.create_connection(lsock.getsockname(), timeout=30)
    cport, lport = client.getsockname()[1], client.getpeername()[1]
    conn, _ = lsock.accept()
    lsock.close()
    proc = subprocess.Popen(p.argv("-n"), stdin=conn.fileno(), stdout=conn.fileno(),
                            stderr=subprocess.PIPE)
    conn.close()
    try:
        greeting = read_reply(client)
        assert greeting.startswith(b"220 ") and b" ZMailer Server " in greeting
        assert b" ESMTP ready at " in greeting
        assert talk(client, b"QUIT").startswith(b"221 2.0.0 ")
        assert client.recv(10) == b""
        assert proc.wait(timeout=30) == 0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = p.log_bytes()
    assert b"\tQUIT\n" in log and b"w\t221 2.0.0 " in log
    # §3.9: the -n connection line (no ipcnt/childs; ident with the client port)
    (line,) = [ln for ln in log.split(b"\n") if b"#\t000-connection from " in ln]
    assert line.endswith(
        b"#\t000-connection from [127.0.0.1]:%d on port %d pid %d ident: IDENT-NOT-QUERIED [port %d]"
        % (cport, lport, proc.pid, cport))
    assert line.index(b"#\t000-connection") == 11  # a session tag, like every session line
    assert not (p.po / ".pid.smtpserver").exists()  # no pidfile under inetd


def test_daemon_log_lines(prog: Callable[[str], Prog]) -> None:
    p = prog(CONF)
    pid = p.start()
    s = p.connect()
    greeting = read_reply(s)
    assert greeting.startswith(b"220 ")
    assert talk(s, b"QUIT").startswith(b"221 2.0.0 ")
    s.close()
    p.wait_log(b"r\tQUIT\n")
    log = p.log_bytes()
    lines = log.split(b"\n")
    assert any(ln.startswith(b"00000000000#\t000-setting up: bind(s=") for ln in lines)
    assert b"00000000000#\t000-started server pid %d at " % pid in log
    conn = [ln for ln in lines if b"#\t000-connection from [127.0.0.1] [127.0.0.1]:" in ln]
    assert len(conn) == 1
    assert b" on port %d ipcnt 0 childs 1 pid " % p.port in conn[0]
    assert conn[0].endswith(b" ident: IDENT-NOT-QUERIED")
    tag = conn[0][:7]
    assert tag != b"0000000"
    assert tag + b"0000w\t220 " in log or any(
        ln.startswith(tag) and b"w\t220 " in ln for ln in lines)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), "daemon exit")
    assert b"00000000000#\tkilled server pid %d at " % pid in p.log_bytes()
    assert not (p.po / ".pid.smtpserver").exists()


def test_daemon_same_ip_limit_tv26(prog: Callable[[str], Prog]) -> None:
    p = prog("PARAM MaxSameIpSource 1\n" + CONF)
    p.start()
    a = p.connect()
    assert read_reply(a).startswith(b"220 ")
    b = p.connect()
    assert read_reply(b) == (
        b"450-5.7.1 Come again later\r\n"
        b"450-5.7.1 Ask HELP for our contact information.\r\n"
        b"450 5.7.1 Too many simultaneous connections from same IP address (2 max 1)\r\n"
    )
    assert b.recv(10) == b""
    a.close()
    b.close()


def test_pidfile_option_absolute_and_subdaemon(prog: Callable[[str], Prog], tmp_path: Path) -> None:
    p = prog(CONF)
    pf = tmp_path / "abs.pid"
    pid = p.start("-I", str(pf), pidfile=pf)
    assert int(pf.read_text()) == pid
    assert not (p.po / ".pid.smtpserver").exists()
    r = subprocess.run(p.argv("-I", "sub-router"), capture_output=True, timeout=60)
    assert r.returncode == 0
    assert pid_alive(pid)  # a sub-daemon start never touches the running daemon
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), "daemon exit")
    assert not pf.exists()


def test_sigterm_to_child_ends_session_at_next_read(prog: Callable[[str], Prog]) -> None:
    p = prog(CONF)
    p.start()
    s = p.connect()
    read_reply(s)
    kids = wait_for(lambda: child_pids_of(p.pid), "session child")
    os.kill(kids[0], signal.SIGTERM)  # type: ignore[index]
    assert s.recv(100) == b""  # no reply is sent (§3.8)
    s.close()


def test_child_sigkill_mid_data_spools_nothing(prog: Callable[[str], Prog]) -> None:
    p = prog("PARAM MaxSameIpSource 1\n" + CONF)
    pid = p.start()
    s = p.connect()
    read_reply(s)
    assert talk(s, b"EHLO client.example.net").startswith(b"250-")
    assert talk(s, b"MAIL FROM:<alice@example.net>").startswith(b"250 ")
    assert talk(s, b"RCPT TO:<bob@example.org>").startswith(b"250 ")
    assert talk(s, b"DATA").startswith(b"354 ")
    s.sendall(b"Subject: half\r\n\r\nthe first half of the body\r\n")
    kids = wait_for(lambda: child_pids_of(pid), "session child")
    os.kill(kids[0], signal.SIGKILL)  # type: ignore[index]
    try:  # no reply; a reset when the killed child left our bytes unread
        end = s.recv(100)
    except ConnectionResetError:
        end = b""
    assert end == b""
    s.close()
    p.wait_log(b"killed by signal 9 (SIGKILL)")
    assert pid_alive(pid)
    assert list((p.po / "router").iterdir()) == []
    b = p.connect()  # counts are right: the same address gets a session again
    assert read_reply(b).startswith(b"220 ")
    b.close()


def test_ipv6_listener_and_ipv4_fallback(prog: Callable[[str], Prog]) -> None:
    p = prog("PARAM BindSmtp [IPv6:::1] PORT\nPARAM BindSmtp [127.0.0.1] PORT\n*  ve\n")
    pid = p.start("-6")
    log = p.log_bytes()
    assert b"v6, addr='::1' port=%d)" % p.port in log
    assert b"v4, addr='127.0.0.1' port=%d)" % p.port in log
    s6 = socket.create_connection(("::1", p.port), timeout=30)
    assert read_reply(s6).startswith(b"220 ")
    s4 = p.connect()
    assert read_reply(s4)
    # the IPv4 client is another address (ipcnt 1) on the same listener type (childs 2)
    p.wait_log(b"000-connection from [IPv6:::1] [IPv6:::1]:")
    p.wait_log(b" on port %d ipcnt 1 childs 2 pid " % p.port)
    s6.close()
    s4.close()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), "daemon exit")
