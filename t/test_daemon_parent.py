"""The daemon parent as a real, detached process on loopback (protocol.md §3.4–§3.8).

The daemon is started through a small launcher script named ``smtpserver``
(so kill-previous recognises it) that calls ``server.run_daemon`` with the
real configuration reader and a stand-in session: it greets with its
``sameip``/``childcnt``/listener facts, answers every line with 250, QUIT
with 221, and ``CRASH`` by SIGKILLing itself.  What the real session adds is
tested in test_daemon_session.py.  Every wait is a bounded poll on a condition.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zmailer_smtpd.pidfile import pid_alive

REPO = Path(__file__).resolve().parent.parent

LAUNCHER = """\
import json, os, sys
from types import SimpleNamespace
sys.path.insert(0, {repo!r})
from zmailer_smtpd import config as C, server, zenv as Z

spec = json.loads(sys.argv[1])
for k, v in spec.get("server", {{}}).items():
    setattr(server, k, v)
ze = Z.ZEnv.from_bytes(spec["zenv"].encode())
cfg = C.load_config(spec["conf"], ze, ipv6=False)
opts = SimpleNamespace(**spec["opts"])


def standin(ctx, transport):
    s = ctx.extra["socket"]
    s.setblocking(True)
    s.sendall(b"220 stand-in sameip=%d childs=%d kind=%s pid=%d\\r\\n" % (
        ctx.sameip, ctx.extra["childcnt"], ctx.listener_kind.encode(), os.getpid()))
    f = s.makefile("rb", buffering=0)
    for line in f:
        cmd = line.strip().upper()
        if cmd == b"QUIT":
            s.sendall(b"221 bye\\r\\n")
            return 0
        if cmd == b"CRASH":
            os.kill(os.getpid(), 9)
        if cmd == b"BOOM":
            raise RuntimeError("stand-in exploded")
        if cmd == b"HANG":
            import time
            while True:
                time.sleep(0.1)
        s.sendall(b"250 " + line.strip() + b"\\r\\n")
    return 0


sys.exit(server.run_daemon(opts, cfg, ze, runner=standin))
"""


def wait_for(cond: Callable[[], object], what: str, limit: float = 10.0) -> object:
    """Poll a condition (bounded); fail with `what` if it never holds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """One launched daemon: its files, its port, helpers to talk to it."""

    def __init__(self, tmp: Path, conf: str, *, server_attrs: dict | None = None) -> None:
        self.tmp = tmp
        self.po = tmp / "postoffice"
        self.po.mkdir(exist_ok=True)
        self.log = tmp / "smtp.log"
        self.conf = tmp / "smtpserver.conf"
        self.port = free_port()
        self.conf_text = conf
        self.write_conf(conf)
        self.script = tmp / "smtpserver"
        self.script.write_text(LAUNCHER.format(repo=str(REPO)))
        self.server_attrs = server_attrs or {}
        self.pid = 0
        self.out = ""
        self.err = ""

    def write_conf(self, conf: str) -> None:
        self.conf.write_text(conf.replace("PORT", str(self.port)))

    @property
    def pidfile(self) -> Path:
        return self.po / ".pid.smtpserver"

    def start(self, **opts: object) -> subprocess.CompletedProcess[str]:
        spec = {
            "zenv": f"POSTOFFICE={self.po}\n",
            "conf": str(self.conf),
            "opts": {"postoffice": str(self.po), "logfile": str(self.log), "ipv4": True,
                     "port": self.port, **opts},
            "server": self.server_attrs,
        }
        p = subprocess.run([sys.executable, str(self.script), json.dumps(spec)],
                           capture_output=True, text=True, timeout=30)
        self.out, self.err = p.stdout, p.stderr
        return p

    def started(self) -> int:
        """Wait until the detached daemon wrote its pid and logged its start."""
        def ready() -> int:
            try:
                pid = int(self.pidfile.read_text())
            except (OSError, ValueError):
                return 0
            if b"started server pid %d " % pid in self.log_bytes():
                return pid
            return 0
        self.pid = int(wait_for(ready, "daemon start"))  # type: ignore[arg-type]
        return self.pid

    def log_bytes(self) -> bytes:
        try:
            return self.log.read_bytes()
        except OSError:
            return b""

    def wait_log(self, needle: bytes, limit: float = 10.0) -> None:
        wait_for(lambda: needle in self.log_bytes(), f"log line {needle!r}", limit)

    def connect(self, port: int | None = None) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=10)
        return s

    def up_with_session(self) -> tuple[int, socket.socket]:
        """Start, wait for the start, open one session and read its greeting: (pid, socket)."""
        self.start()
        pid = self.started()
        a = self.connect()
        read_reply(a)
        return pid, a

    def stop(self) -> None:
        if not self.pid:  # a start that failed half-way may still have left a daemon
            try:
                self.pid = int(self.pidfile.read_text())
            except (OSError, ValueError):
                return
        if self.pid and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(self.pid), "daemon death")


def read_reply(s: socket.socket) -> bytes:
    """Bytes up to and including a final reply line (or EOF)."""
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for ln in lines[:-1]:
            if len(ln) >= 4 and ln[3:4] == b" ":
                return buf
        chunk = s.recv(4096)
        if not chunk:
            return buf
        buf += chunk


def talk(s: socket.socket, line: bytes) -> bytes:
    s.sendall(line + b"\r\n")
    return read_reply(s)


def child_pids_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                out.append(int(d))
    return out


IDLE_TITLE = b"smtpserver: idle session child"


def is_idle(pid: int) -> bool:
    """Whether a session child waits between sessions (proctitle.IDLE)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(IDLE_TITLE)
    except OSError:
        return False


def session_pids_of(pid: int) -> list[int]:
    """Children of ``pid`` that are not idle between sessions."""
    return [c for c in child_pids_of(pid) if not is_idle(c)]


BASE = "PARAM BindSmtp [127.0.0.1] PORT\n*  ve\n"


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(conf: str = BASE, **kw: object) -> Daemon:
        d = Daemon(tmp_path / f"d{len(made)}", conf, **kw)  # type: ignore[arg-type]
        made.append(d)
        return d

    (tmp_path / "d0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"d{i}").mkdir()
    yield make
    for d in made:
        if not d.pid:
            d.stop()
        for c in child_pids_of(d.pid) if d.pid else []:
            try:
                os.kill(c, signal.SIGKILL)
            except OSError:
                pass
        d.stop()


def test_detach_pidfile_and_master_log_lines(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    p = d.start()
    assert p.returncode == 0, p.stderr
    pid = d.started()
    assert pid != os.getpid() and pid_alive(pid)
    # detached: a new session, cwd POSTOFFICE, umask 022
    assert os.getsid(pid) != os.getsid(0)  # its own session (double fork: not its leader)
    assert os.readlink(f"/proc/{pid}/cwd") == str(d.po)
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Umask:\t0022" in status
    log = d.log_bytes()
    assert b"00000000000#\t000-setting up: bind(s=" in log
    assert b", v4, addr='127.0.0.1' port=%d)\n" % d.port in log
    s = d.connect()
    banner = read_reply(s)
    assert banner.startswith(b"220 stand-in sameip=0 childs=1 kind=smtp")
    assert talk(s, b"QUIT") == b"221 bye\r\n"
    s.close()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), "daemon exit")
    assert not d.pidfile.exists()
    assert b"00000000000#\tkilled server pid %d at " % pid in d.log_bytes()


def test_kill_and_restart_via_pidfile(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    d.start()
    old = d.started()
    p = d.start()
    assert p.returncode == 0, p.stderr
    assert f"killed previous daemon, pid = {old}\n" in p.stdout
    assert not pid_alive(old)
    new = d.started()
    assert new != old
    s = d.connect()
    assert b"pid=" in read_reply(s)
    s.close()


def test_stale_pidfile_naming_other_process_is_not_killed(
    make_daemon: Callable[..., Daemon],
) -> None:
    d = make_daemon()
    victim = subprocess.Popen(["sleep", "60"])
    try:
        d.pidfile.write_text(f"{victim.pid}\n")
        p = d.start()
        assert p.returncode == 0
        assert "not an smtpserver; not killed" in p.stderr
        assert "killed previous" not in p.stdout
        pid = d.started()
        assert victim.poll() is None and pid_alive(victim.pid)
        assert pid != victim.pid
    finally:
        victim.kill()
        victim.wait()


def test_same_ip_limit_text_and_per_type_counting(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon(
        "PARAM MaxSameIpSource 1\nPARAM BindSmtp [127.0.0.1] PORT\n"
        "PARAM BindSubmit [127.0.0.1] SUBPORT\n*  ve\n".replace("SUBPORT", str(free_port()))
    )
    sub_port = int(d.conf.read_text().split("BindSubmit [127.0.0.1] ")[1].split()[0])
    d.start()
    d.started()
    a = d.connect()
    assert read_reply(a).startswith(b"220 stand-in sameip=0 childs=1 kind=smtp")
    b = d.connect()  # TV-26
    assert read_reply(b) == (
        b"450-5.7.1 Come again later\r\n"
        b"450-5.7.1 Ask HELP for our contact information.\r\n"
        b"450 5.7.1 Too many simultaneous connections from same IP address (2 max 1)\r\n"
    )
    assert b.recv(10) == b""  # closed, no 220
    # the submission listener counts on its own
    c = d.connect(sub_port)
    assert read_reply(c).startswith(b"220 stand-in sameip=1 childs=1 kind=submit")
    d.wait_log(b"refused [127.0.0.1]:")
    assert talk(a, b"QUIT") == b"221 bye\r\n"
    a.close()
    # once the first session has gone, the address may come back (reaped, counts right)
    def again() -> bool:
        s = d.connect()
        r = read_reply(s)
        s.close()
        return r.startswith(b"220 stand-in sameip=1 childs=1")
    wait_for(again, "slot freed after QUIT")
    c.close()


def test_parallel_limit_text(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM MaxParallelConnections 2\n" + BASE)
    d.start()
    d.started()
    a, b = d.connect(), d.connect()
    assert read_reply(a).startswith(b"220 ")
    assert read_reply(b).startswith(b"220 stand-in sameip=2 childs=2")
    c = d.connect()
    assert read_reply(c) == (
        b"450-5.7.1 Ask HELP for our contact information.\r\n"
        b"450-5.7.1 Come again later\r\n"
        b"450 5.7.1 Too many simultaneous connections to this server (3 max 2)\r\n"
    )
    for s in (a, b, c):
        s.close()


def test_limit_text_without_enhanced_status_codes(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM MaxParallelConnections 1\nPARAM NoENHANCEDSTATUSCODES\n" + BASE)
    d.start()
    d.started()
    a = d.connect()
    read_reply(a)
    b = d.connect()
    assert read_reply(b) == (
        b"450-Ask HELP for our contact information.\r\n"
        b"450-Come again later\r\n"
        b"450 Too many simultaneous connections to this server (2 max 1)\r\n"
    )
    a.close()
    b.close()


def test_max_same_ip_zero_closes_silently(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM MaxSameIpSource 0\n" + BASE)
    d.start()
    d.started()
    a = d.connect()
    assert read_reply(a).startswith(b"220 stand-in sameip=0")  # the very first one
    b = d.connect()
    assert b.recv(100) == b""  # no bytes at all
    d.wait_log(b"> 4 x MaxSameIpSource 0")
    a.close()
    b.close()


def test_child_sigkill_parent_survives_counts_right(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM MaxSameIpSource 1\n" + BASE)
    pid, a = d.up_with_session()
    a.sendall(b"CRASH\r\n")
    assert a.recv(100) == b""
    d.wait_log(b"killed by signal 9 (SIGKILL)")
    assert pid_alive(pid)
    b = d.connect()
    assert read_reply(b).startswith(b"220 stand-in sameip=1 childs=1")  # slot was freed
    b.close()


def test_sigterm_stops_accepting_lets_session_finish(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    pid, a = d.up_with_session()
    os.kill(pid, signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:  # it was in the accept queue when the listener closed
            return False
        return False
    wait_for(refused, "listener closed")
    assert pid_alive(pid) and d.pidfile.exists()  # still draining
    assert talk(a, b"NOOP") == b"250 NOOP\r\n"  # the session goes on
    assert talk(a, b"QUIT") == b"221 bye\r\n"
    a.close()
    wait_for(lambda: not pid_alive(pid), "daemon exit after drain")
    assert not d.pidfile.exists()
    assert b"killed server pid %d" % pid in d.log_bytes()


def test_second_sigterm_ends_sessions(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    pid, a = d.up_with_session()
    os.kill(pid, signal.SIGTERM)
    d.wait_log(b"SIGTERM: waiting for 1 sessions")
    os.kill(pid, signal.SIGTERM)
    assert a.recv(100) == b""  # the child saw end of input and ended
    wait_for(lambda: not pid_alive(pid), "daemon exit")
    assert not d.pidfile.exists()


def test_sighup_rereads_and_keeps_old_on_error(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM MaxSameIpSource 1\n" + BASE)
    pid, a = d.up_with_session()
    b = d.connect()
    assert read_reply(b).startswith(b"450-")
    b.close()
    # a broken file: the old configuration stays, the log says why
    d.write_conf("PARAM MaxSameIpSource 5\nPARAM no-such-keyword 1\n" + BASE)
    os.kill(pid, signal.SIGHUP)
    d.wait_log(b"SIGHUP: configuration has errors, keeping the old one: ")
    assert b"no-such-keyword" in d.log_bytes()
    b = d.connect()
    assert read_reply(b).startswith(b"450-")
    b.close()
    # a good file takes effect
    d.write_conf("PARAM MaxSameIpSource 5\n" + BASE)
    os.kill(pid, signal.SIGHUP)
    d.wait_log(b"SIGHUP: configuration re-read; 1 listeners")
    b = d.connect()
    assert read_reply(b).startswith(b"220 stand-in sameip=2")
    a.close()
    b.close()
    assert pid_alive(pid)


def test_sighup_rebinds_changed_listeners(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    d.start()
    pid = d.started()
    other = free_port()
    d.write_conf(f"PARAM BindSmtp [127.0.0.1] {other}\n*  ve\n")
    os.kill(pid, signal.SIGHUP)
    d.wait_log(b"SIGHUP: configuration re-read; 1 listeners")
    s = d.connect(other)
    assert read_reply(s).startswith(b"220 stand-in")
    s.close()
    with pytest.raises(ConnectionRefusedError):
        d.connect()


def test_slow_loris_hits_session_deadline(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM session-timeout 1\n" + BASE, server_attrs={"HARD_GRACE": 3})
    d.start()
    d.started()
    s = d.connect()
    read_reply(s)
    closed = False
    for _ in range(100):  # one byte every 0.1 s would take 10 s; the deadline is 1 s
        try:
            s.sendall(b"N")
        except OSError:
            closed = True
            break
        s.settimeout(0.1)
        try:
            if s.recv(100) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except ConnectionResetError:  # our byte arrived after the close: RST
            closed = True
            break
    assert closed
    d.wait_log(b"000-session deadline of 1 s passed; ending the session")
    s.close()


def test_stuck_session_hits_hard_deadline(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM session-timeout 1\n" + BASE, server_attrs={"HARD_GRACE": 1})
    d.start()
    pid = d.started()
    s = d.connect()
    read_reply(s)
    s.sendall(b"HANG\r\n")  # the stand-in stops reading: only the hard deadline ends it
    s.settimeout(10)
    assert s.recv(100) == b""
    d.wait_log(b"000-session did not end 1 s after its deadline; exiting")
    assert pid_alive(pid)
    s.close()


def test_idle_client_ends_at_soft_deadline(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon("PARAM session-timeout 1\n" + BASE, server_attrs={"HARD_GRACE": 30})
    d.start()
    d.started()
    s = d.connect()
    read_reply(s)
    s.settimeout(10)
    assert s.recv(100) == b""  # the session saw end of input and ended; no reply
    d.wait_log(b"000-session deadline of 1 s passed; ending the session")
    s.close()


def test_listener_bind_failure_is_logged_not_fatal(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", d.port))
    blocker.listen(1)
    try:
        p = d.start()
        assert p.returncode == 0
        pid = d.started()
        assert b"bind(s=" in d.log_bytes() and b"failed; errno=Address already in use" in (
            d.log_bytes())
        assert pid_alive(pid)
    finally:
        blocker.close()


def test_load_average_limit_refuses_with_421(make_daemon: Callable[..., Daemon],
                                             tmp_path: Path) -> None:
    fake = tmp_path / "loadavg"
    fake.write_text("50.12 40.00 30.00 3/200 4242\n")
    d = make_daemon(server_attrs={"LOADAVG_FILE": str(fake)})
    d.start(maxloadavg=10)
    d.started()
    s = d.connect()
    assert read_reply(s) == (
        b"421 4.3.2 Sorry, the system is too loaded for email reception at the moment\r\n"
    )
    assert s.recv(10) == b""
    s.close()
    d.wait_log(b"refused [127.0.0.1]:")
    fake.write_text("9.99 40.00 30.00 3/200 4242\n")  # at or under the limit: served

    def served() -> bool:
        c = d.connect()
        r = read_reply(c)
        c.close()
        return r.startswith(b"220 stand-in")
    wait_for(served, "service once the load is down")


def test_foreground_does_not_detach(make_daemon: Callable[..., Daemon]) -> None:
    d = make_daemon()
    spec_opts = {"foreground": True}
    proc = subprocess.Popen(
        [sys.executable, str(d.script), json.dumps({
            "zenv": f"POSTOFFICE={d.po}\n", "conf": str(d.conf),
            "opts": {"postoffice": str(d.po), "logfile": str(d.log), "ipv4": True,
                     **spec_opts},
            "server": {}})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = d.started()
        assert pid == proc.pid  # the process we started is the daemon
        s = d.connect()
        assert read_reply(s).startswith(b"220 stand-in")
        s.close()
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not d.pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_session_exception_is_logged_and_parent_survives(
    make_daemon: Callable[..., Daemon],
) -> None:
    d = make_daemon()
    pid, a = d.up_with_session()
    a.sendall(b"BOOM\r\n")
    assert a.recv(100) == b""
    d.wait_log(b"000-session child crashed: Traceback")
    d.wait_log(b"RuntimeError: stand-in exploded")
    d.wait_log(b" exited with status 1")
    assert pid_alive(pid)
    b = d.connect()
    assert read_reply(b).startswith(b"220 stand-in")
    b.close()
