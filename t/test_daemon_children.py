"""Session children that serve several connections (server.py; PARAM child-max-sessions).

The parent hands an idle child the next accepted connection over a socket
pair instead of forking.  What must hold: a session is uncounted the moment
it ends; a child never takes a connection after SIGHUP, SIGTERM,
child-max-sessions or child-max-idle; a dead idle child costs no connection;
with ``child-max-sessions 1`` every connection gets a new child.  The
stand-in session (test_daemon_parent.py) greets with its pid.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
from collections.abc import Callable

from test_daemon_clients import Smtpd, check_spooled, envelope, rcvd, smtpd  # noqa: F401
from test_daemon_parent import (
    BASE,
    Daemon,
    child_pids_of,
    is_idle,
    make_daemon,  # noqa: F401 - the fixture
    read_reply,
    talk,
    wait_for,
)

from zmailer_smtpd.pidfile import pid_alive


def greet(d: Daemon) -> tuple[socket.socket, int, bytes]:
    """Connect; (socket, the serving child's pid, the banner)."""
    s = d.connect()
    banner = read_reply(s)
    m = re.search(rb" pid=(\d+)", banner)
    assert m, banner
    return s, int(m.group(1)), banner


def session(d: Daemon) -> tuple[int, bytes]:
    """One whole stand-in session; (child pid, banner).

    The parent uncounts a session when it reads the child's end byte, which
    may come just after the client saw 221: a test that needs the slot again
    waits for the child's idle title first.
    """
    s, pid, banner = greet(d)
    assert talk(s, b"QUIT") == b"221 bye\r\n"
    s.close()
    return pid, banner


def up_with_idle_child(d: Daemon) -> tuple[int, int]:
    """Start the daemon, run one session and wait until its child is idle: (parent, child)."""
    d.start()
    parent = d.started()
    first, _ = session(d)
    wait_for(lambda: is_idle(first), "the child to wait idle")
    return parent, first


def counted_alone(d: Daemon) -> int:
    """A session that finds no other session counted (polls: see session()); its child's pid."""
    got: list[int] = []

    def attempt() -> bool:
        s = d.connect()
        banner = read_reply(s)
        if banner.startswith(b"220 "):
            talk(s, b"QUIT")
        s.close()
        m = re.match(rb"220 stand-in sameip=1 childs=1 .* pid=(\d+)", banner)
        if m:
            got.append(int(m.group(1)))
        return bool(m)

    wait_for(attempt, "a session counted alone")
    return got[0]


def test_idle_child_takes_the_next_connection_uncounted(
    make_daemon: Callable[..., Daemon],  # noqa: F811
) -> None:
    d = make_daemon("PARAM MaxSameIpSource 1\n" + BASE)
    d.start()
    parent = d.started()
    first, banner = session(d)
    assert banner.startswith(b"220 stand-in sameip=0 childs=1 ")
    wait_for(lambda: is_idle(first), "the child to wait idle")
    assert child_pids_of(parent) == [first]
    # the same child, and the ended session no longer counts against MaxSameIpSource 1
    assert counted_alone(d) == first
    assert b"refused" not in d.log_bytes()


def fds_without_cloexec(pid: int) -> list[str]:
    """Descriptors above 2 that a program the child runs would inherit."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) <= 2:
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = int(f.read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError):
            continue
        if not flags & 0o2000000:  # O_CLOEXEC
            out.append(f"{fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
    return out


def test_handed_over_connection_is_close_on_exec(
    make_daemon: Callable[..., Daemon],  # noqa: F811
) -> None:
    d = make_daemon()
    d.start()
    d.started()
    first, _ = session(d)
    wait_for(lambda: is_idle(first), "the child to wait idle")
    s, pid, _ = greet(d)  # the handed-over connection is open in the child now
    assert pid == first
    assert fds_without_cloexec(pid) == []
    assert talk(s, b"QUIT") == b"221 bye\r\n"
    s.close()


def test_concurrent_sessions_get_their_own_children(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon()
    d.start()
    d.started()
    first, _ = session(d)
    wait_for(lambda: is_idle(first), "the child to wait idle")
    a, pa, ba = greet(d)
    b, pb, bb = greet(d)
    assert pa == first and pb != pa  # the idle one, then a new fork
    assert b" childs=1 " in ba and b" childs=2 " in bb
    for s in (a, b):
        assert talk(s, b"QUIT") == b"221 bye\r\n"
        s.close()


def test_child_max_sessions_one_forks_per_connection(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon("PARAM child-max-sessions 1\n" + BASE)
    d.start()
    d.started()
    first, _ = session(d)
    wait_for(lambda: not pid_alive(first), "the child to exit after its session")
    assert counted_alone(d) != first


def test_child_exits_after_child_max_sessions(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon("PARAM child-max-sessions 2\n" + BASE)
    d.start()
    d.started()
    first, _ = session(d)
    wait_for(lambda: is_idle(first), "the child to wait idle")
    assert session(d)[0] == first
    wait_for(lambda: not pid_alive(first), "the child to exit after 2 sessions")
    assert session(d)[0] != first
    assert b"killed by signal" not in d.log_bytes() and b"exited with" not in d.log_bytes()


def test_idle_child_exits_after_child_max_idle(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon("PARAM child-max-idle 1\n" + BASE)
    d.start()
    parent = d.started()
    first, _ = session(d)
    wait_for(lambda: not pid_alive(first), "the idle child to exit", limit=8.0)
    assert child_pids_of(parent) == []
    assert session(d)[0] != first


def test_sighup_retires_idle_and_busy_children(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon()
    d.start()
    parent = d.started()
    idle_one, _ = session(d)
    wait_for(lambda: is_idle(idle_one), "the child to wait idle")
    busy, busy_pid, _ = greet(d)
    assert busy_pid == idle_one
    spare, _ = session(d)  # a second child, idle when the signal comes
    wait_for(lambda: is_idle(spare), "the second child to wait idle")
    os.kill(parent, signal.SIGHUP)
    d.wait_log(b"SIGHUP: configuration re-read")
    wait_for(lambda: not pid_alive(spare), "the idle child to exit on SIGHUP")
    # the busy session goes on with its child, which exits after it
    assert talk(busy, b"NOOP") == b"250 NOOP\r\n"
    assert talk(busy, b"QUIT") == b"221 bye\r\n"
    busy.close()
    wait_for(lambda: not pid_alive(busy_pid), "the busy child to exit after its session")
    assert session(d)[0] not in (busy_pid, spare)


def test_idle_child_killed_costs_no_connection(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon("PARAM MaxSameIpSource 1\n" + BASE)
    parent, first = up_with_idle_child(d)
    os.kill(first, signal.SIGKILL)
    d.wait_log(b"child %d killed by signal 9 (SIGKILL)" % first)
    assert counted_alone(d) != first  # a new fork serves; the limit counts right
    assert pid_alive(parent)


def test_sigterm_ends_idle_children(make_daemon: Callable[..., Daemon]) -> None:  # noqa: F811
    d = make_daemon()
    parent, first = up_with_idle_child(d)
    os.kill(parent, signal.SIGTERM)
    wait_for(lambda: not pid_alive(parent), "the daemon to exit")
    # the daemon collected its child before it exited: no zombie is left to init
    assert not os.path.exists(f"/proc/{first}")
    assert not d.pidfile.exists()
    assert b"waiting for" not in d.log_bytes()  # an idle child is no running session


def test_real_sessions_in_one_child_share_nothing(smtpd: Callable[..., Smtpd]) -> None:  # noqa: F811
    """Two connections served by one child: each spool file and log line is its own."""
    d = smtpd()
    with smtplib.SMTP("127.0.0.1", d.port, local_hostname="client0.example.net", timeout=30) as c:
        assert c.ehlo()[0] == 250
        assert c.mail("half@example.net")[0] == 250
        assert c.rcpt("open@example.org")[0] == 250
        c.close()  # gone without QUIT, its transaction open
    d.sessions_done()
    texts = []
    for i in (1, 2):
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname=f"client{i}.example.net",
                          timeout=30) as c:
            assert c.ehlo()[0] == 250
            assert c.mail(f"s{i}@example.net")[0] == 250
            assert c.rcpt(f"r{i}@example.org")[0] == 250
            code, text = c.data(b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
            assert code == 250
            texts.append(text)
        d.sessions_done()
    log = d.log_bytes()
    pids = re.findall(rb"connection from \S+ \S+ on port \d+ ipcnt \d+ childs \d+ pid (\d+)", log)
    assert len(pids) == 3 and len(set(pids)) == 1, log  # one child served all three
    assert re.search(rb"\t000-aborted \(\d+ bytes\): session terminated\n", log)
    for i, text in zip((1, 2), texts, strict=True):
        data = check_spooled(d, b"250 " + text)
        assert data == (rcvd(b"ehlo client%d.example.net" % i)
                        + envelope(b"s%d@example.net" % i, b"r%d@example.org" % i)
                        + b"Subject: %d\n\nbody %d\n" % (i, i))
    assert len(d.router_files()) == 2
    assert list((d.po / "public").iterdir()) == []


def test_idle_children_exit_when_the_daemon_dies(
    make_daemon: Callable[..., Daemon],  # noqa: F811
) -> None:
    d = make_daemon()
    parent, first = up_with_idle_child(d)
    os.kill(parent, signal.SIGKILL)  # no clean-up at all: the child reads end of file
    wait_for(lambda: not pid_alive(parent), "the daemon to die")
    wait_for(lambda: not pid_alive(first), "the orphaned idle child to exit")


def test_a_child_keeps_no_descriptor_of_its_sessions(smtpd: Callable[..., Smtpd]) -> None:  # noqa: F811
    """Fifty real sessions in one child: its descriptors after the 5th and the 50th match."""
    d = smtpd()

    def one(i: int) -> None:
        with smtplib.SMTP("127.0.0.1", d.port, local_hostname="leak.example.net",
                          timeout=30) as c:
            assert c.sendmail(f"s{i}@example.net", [f"r{i}@example.org"], b"Subject: x\r\n\r\nx\r\n") == {}
        d.sessions_done()

    def fds(pid: int) -> list[str]:
        return sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))

    for i in range(5):
        one(i)
    (child,) = child_pids_of(d.pid)
    before = fds(child)
    for i in range(5, 50):
        one(i)
    assert child_pids_of(d.pid) == [child]
    assert fds(child) == before
    assert len(d.router_files()) == 50
