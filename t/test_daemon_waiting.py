"""A connection that finds every child busy waits FORK_WAIT for one before a fork.

The scheduling decision is tested on a real Daemon object with real sockets
(accepted connections, the children's SOCK_SEQPACKET pairs, SCM_RIGHTS); only
the fork itself is recorded instead of made.  Real daemons serving real
sessions through this path are in test_daemon_children.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from zmailer_smtpd import server
from zmailer_smtpd.config import Settings, config_from_bytes
from zmailer_smtpd.zenv import ZEnv


class _Opts:
    port = 2525


class RecordingDaemon(server.Daemon):
    """A Daemon whose forks are written down (pid, listener, counts), not made."""

    def __init__(self, conf: bytes) -> None:
        cfg = config_from_bytes(conf, ZEnv.from_bytes(b""), ipv6=False)
        super().__init__(_Opts(), cfg, ZEnv.from_bytes(b""))
        self.forked: list[tuple[tuple[Any, ...], int, int]] = []

    def _fork_child(self, f: server.ChildFacts, kind: str, key: bytes) -> None:
        pid = 900000 + len(self.forked)
        self.counts.add(pid, kind, key)
        self.forked.append((f.peer, f.childcnt, f.sameip))
        f.conn.close()


@pytest.fixture()
def rig() -> Iterator[tuple[RecordingDaemon, socket.socket, list[socket.socket]]]:
    d = RecordingDaemon(b"PARAM child-max-sessions 10\n*  ve\n")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    spec = server.ListenSpec(socket.AF_INET, "127.0.0.1", lsock.getsockname()[1], "smtp", 0)
    d.listeners = [server.Listener(spec, lsock, d.groups[0])]
    clients: list[socket.socket] = []
    yield d, lsock, clients
    for c in clients:
        c.close()
    for w in d.workers.values():
        w.chan.close()
    d._drop_waiting()
    lsock.close()


def _connect(lsock: socket.socket, clients: list[socket.socket]) -> tuple[socket.socket, Any]:
    c = socket.create_connection(lsock.getsockname())
    clients.append(c)
    return lsock.accept()


def _worker(d: server.Daemon, pid: int, *, idle: bool) -> socket.socket:
    """A child as the parent sees it; returns the child's end of the pair."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    w = server.Worker(pid, mine, d.generation, time.monotonic())
    d.workers[pid] = w
    if idle:
        d.idle.append(w)
    else:
        d.counts.add(pid, "smtp", b"\x04\x7f\x00\x00\x01")  # its running session
    return theirs


def _busy_child_and_waiting(d: server.Daemon, lsock: socket.socket,
                            clients: list[socket.socket]) -> tuple[socket.socket, Any]:
    """Child 101 in a session, then a new connection: (the child's end, the client's address)."""
    child_end = _worker(d, 101, idle=False)
    conn, peer = _connect(lsock, clients)
    d.handle(conn, peer, d.listeners[0])
    return child_end, peer


def test_all_busy_connection_waits_counted(rig: Any) -> None:
    d, lsock, clients = rig
    _, peer = _busy_child_and_waiting(d, lsock, clients)
    assert d.forked == []
    assert len(d.waiting) == 1
    # counted at once: the limits of the next connection see it (childcnt 3 = busy + waiting + new)
    assert d.counts.counts("smtp", b"\x04\x7f\x00\x00\x01") == (3, 3)
    assert all(pid > 0 for pid in d.counts.children if pid != d.waiting[0].token)
    assert d.waiting[0].token < 0


def test_waiting_connection_goes_to_the_child_that_finishes(rig: Any) -> None:
    d, lsock, clients = rig
    child_end, peer = _busy_child_and_waiting(d, lsock, clients)
    child_end.send(server.SESSION_DONE)  # the busy child's session ends
    d._session_ended(d.workers[101])
    d._serve_waiting()
    assert d.forked == [] and d.waiting == []
    msg, fds = server._recv_conn(child_end)
    try:
        li, childcnt, sameip, host, port = msg.split()
        assert (int(li), host.decode(), int(port)) == (0, peer[0], peer[1])
        assert (int(childcnt), int(sameip)) == (2, 2)  # as counted at accept
        got = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=fds[0])
        assert got.getpeername() == peer
        got.close()
    finally:
        child_end.close()
    assert list(d.counts.children) == [101]  # the token gave way to the child's pid


def test_waiting_connection_forks_after_fork_wait(rig: Any) -> None:
    d, lsock, clients = rig
    before = time.monotonic()
    _, peer = _busy_child_and_waiting(d, lsock, clients)
    p = d.waiting[0]
    assert before + server.FORK_WAIT <= p.until <= time.monotonic() + server.FORK_WAIT
    p.until = time.monotonic() + 60  # (the clock is the test's: no sleeping)
    d._serve_waiting()
    assert d.forked == []  # not yet: its wait has not passed
    p.until = time.monotonic() - 1
    d._serve_waiting()
    assert [f[0] for f in d.forked] == [peer] and d.waiting == []
    assert sorted(d.counts.children) == [101, 900000]


def test_no_wait_without_busy_children_or_with_one_session_per_child(rig: Any) -> None:
    d, lsock, clients = rig
    conn, peer = _connect(lsock, clients)
    d.handle(conn, peer, d.listeners[0])  # no child at all: fork at once
    assert len(d.forked) == 1 and d.waiting == []
    d2 = RecordingDaemon(b"PARAM child-max-sessions 1\n*  ve\n")
    d2.listeners = d.listeners
    d2.workers[5] = server.Worker(5, socket.socketpair()[0], 0)  # busy, but fork per connection
    conn, peer = _connect(lsock, clients)
    d2.handle(conn, peer, d.listeners[0])
    assert len(d2.forked) == 1 and d2.waiting == []
    d2.workers[5].chan.close()


def test_no_more_waiting_than_busy_children(rig: Any) -> None:
    d, lsock, clients = rig
    _worker(d, 101, idle=False)
    first, p1 = _connect(lsock, clients)
    second, p2 = _connect(lsock, clients)
    d.handle(first, p1, d.listeners[0])
    d.handle(second, p2, d.listeners[0])  # one busy child can end only one wait
    assert len(d.waiting) == 1 and [f[0] for f in d.forked] == [p2]


def test_shutdown_closes_waiting_connections_and_uncounts_them(rig: Any) -> None:
    d, lsock, clients = rig
    _, peer = _busy_child_and_waiting(d, lsock, clients)
    d._drop_waiting()
    assert d.waiting == [] and list(d.counts.children) == [101]
    clients[-1].settimeout(5)
    assert clients[-1].recv(10) == b""  # the client sees the connection closed


def test_sigterm_leaves_waiting_connections_to_shutdown(rig: Any) -> None:
    d, lsock, clients = rig
    _, peer = _busy_child_and_waiting(d, lsock, clients)
    d.sig_term = 1
    d.waiting[0].until = time.monotonic() - 1  # its wait is over, yet SIGTERM leaves it alone
    d._serve_waiting()
    assert d.forked == [] and len(d.waiting) == 1


def test_sighup_gives_waiting_connections_a_child_before_the_listeners_change(rig: Any) -> None:
    d, lsock, clients = rig
    _, peer = _busy_child_and_waiting(d, lsock, clients)
    d.reload()  # no loader: the configuration stays, but the wait ends first
    assert [f[0] for f in d.forked] == [peer] and d.waiting == []


def test_a_failing_waiting_connection_does_not_take_the_parent_down(rig: Any) -> None:
    d, lsock, clients = rig
    _busy_child_and_waiting(d, lsock, clients)
    # a listener the daemon no longer has (another configuration's group)
    d.waiting[0].facts.listener = server.Listener(d.listeners[0].spec, lsock, Settings.from_values({}))
    idle_end = _worker(d, 7, idle=True)
    d._serve_waiting()  # _hand_over cannot name the listener: logged, closed, parent goes on
    idle_end.close()
    assert d.waiting == [] and d.forked == [] and list(d.counts.children) == [101]
    clients[-1].settimeout(5)
    assert clients[-1].recv(10) == b""
