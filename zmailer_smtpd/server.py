"""The daemon parent: listeners, accept loop, fork, limits, signals (protocol.md §3.4–§3.8).

A classic pre-fork Unix server (gunicorn's arbiter is the model): signal
handlers only record the signal and wake the loop through a self-pipe; the
loop polls the listeners, reaps children with ``waitpid(-1, WNOHANG)`` and
gives each accepted connection to one session child.  The parent never blocks
on a child, runs no threads and survives every child failure.

A session child serves one connection at a time.  When its session ends it
tells the parent (one byte on its socketpair) and waits; the parent hands it
the next accepted connection (SCM_RIGHTS) instead of forking again, up to
``PARAM child-max-sessions`` sessions, and closes its end of the pair when
the child has been idle for ``PARAM child-max-idle`` seconds, on SIGHUP and
on SIGTERM: the child then reads end of file and exits.  Forking a 25 MB
Python process and the copy-on-write faults after it cost more than a whole
session (bench/README.md); ``child-max-sessions 1`` restores one fork per
connection.  The counts of §3.6 are per connection: a session is counted
from the hand-over (or fork) to its end byte (or the child's death).

Differences from 3.0.1, all deliberate (see the manual's DEVIATIONS):

* The limit replies of §3.7 step 8 and the ``-L`` refusal are written by the
  parent, which costs no fork; such connections are therefore not counted.
* A session is uncounted as soon as it ends (no 2 s linger); its child may
  serve further connections (above).
* SIGHUP re-reads the configuration (3.0.1 ignores it) and re-opens the log;
  a configuration that fails to load keeps the old one and the log says why.
* SIGTERM closes the listeners at once, lets running sessions finish for up
  to ``DRAIN_SECONDS`` (a second SIGTERM cuts that short), then asks the rest
  to end (SIGTERM: they finish the current command) and removes the pidfile.
* Every session has an overall deadline (``PARAM session-timeout``, seconds,
  default ``SESSION_TIMEOUT``; 0 = none) so a client trickling one byte every
  few seconds cannot hold a child for ever.  At the deadline the child's read
  side is shut down: the session sees end of input at its next read, discards
  any open transaction and ends; ``HARD_GRACE`` seconds later the child exits
  regardless.
* No ``SO_REUSEPORT``: two daemons must never split one port silently.
* Identical default listeners of several groups are bound once (the first
  group owns them).
"""

from __future__ import annotations

import array
import errno
import gc
import importlib
import os
import resource
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import loadavg, proctitle
from .pidfile import PidFile, pidfile_path
from .sessionlog import LOG_ERR, LOG_INFO, SessionLog, rfc822_date

SMTP, SMTPS, SUBMIT = "smtp", "smtps", "submit"
DEFAULT_PORTS = {SMTP: 25, SMTPS: 465, SUBMIT: 587}

DEFAULT_POSTOFFICE = "/var/spool/postoffice"
POLL_SECONDS = 10.0  # §3.6 step 2
ACCEPT_BATCH = 64  # accepts per readiness event, so one busy listener cannot starve the rest
FORK_WAIT = 0.002  # all children busy: how long a new connection waits for one before a fork
DRAIN_SECONDS = 30.0  # SIGTERM: how long running sessions may go on
DRAIN_TERM_SECONDS = 10.0  # after SIGTERM to the children, how long to wait for them
SESSION_TIMEOUT = 3600  # default overall session deadline (PARAM session-timeout)
# signal.signal, minus its wrapper's conversion of the old handler into an enum
# (it raises and catches ValueError, ~2 µs): a child sets three per session
_raw_signal = importlib.import_module("_signal")
_set_handler: Callable[[int, Any], object] = _raw_signal.signal
_SIG_DFL: int = _raw_signal.SIG_DFL  # the C module's own; signal.SIG_DFL is an enum it refuses
CHILD_MAX_SESSIONS = 1000  # sessions one child serves (PARAM child-max-sessions); see params.py
CHILD_MAX_IDLE = 60  # seconds an idle child waits for a connection (PARAM child-max-idle)
SESSION_DONE = b"D"  # child -> parent: my session has ended, give me the next
# modules a session imports when it first needs them: import them once in the parent
PRELOAD = (
    "stream", "spool", "received", "bodyxfer", "esmtp", "rfc821", "replies", "router",
    "contentfilter", "etrn", "auth", "tcpwrap", "ident", "whoson", "helper",
    "dnsresolve", "policy.engine", "policy.db", "policy.dnscheck",
)
CODECS = ("latin-1", "latin_1", "iso-8859-1", "ascii", "us-ascii", "utf-8", "utf_8")
PRELOAD_TLS = ("tls",)  # 8 MB more to copy per fork: only when some listener may use TLS
LOADAVG_FILE = "/proc/loadavg"  # -L reads this (tests point it elsewhere)
HARD_GRACE = 30  # seconds between the soft deadline (read side shut) and _exit
IDLE_EXIT_SECONDS = 2.0  # SIGTERM: how long to collect idle children after the sessions

MSG_PARALLEL = (
    b"Ask HELP for our contact information.",
    b"Come again later",
    b"Too many simultaneous connections to this server (%d max %d)",
)
MSG_SAMEIP = (
    b"Come again later",
    b"Ask HELP for our contact information.",
    b"Too many simultaneous connections from same IP address (%d max %d)",
)

Runner = Callable[[Any, Any], int]


# --------------------------------------------------------------------------
# small adapters to the other modules' objects


def opt(opts: Any, default: Any, *names: str) -> Any:
    """An option by the first of ``names`` that ``opts`` has (cli.Options)."""
    for n in names:
        v = getattr(opts, n, None)
        if v is not None:
            return v
    return default


def setting(settings: Any, name: str, default: Any) -> Any:
    """``settings.get(name)`` with a default when the keyword is unknown or unset."""
    if settings is None:
        return default
    try:
        v = settings.get(name)
    except (KeyError, LookupError, AttributeError):
        return default
    return default if v is None else v


def config_groups(config: Any) -> list[Any]:
    """Every group's Settings, in order (at least one)."""
    if config is None:
        return [None]
    groups = getattr(config, "groups", None)
    if isinstance(groups, list | tuple) and groups:
        return list(groups)
    out = []
    if hasattr(config, "group"):
        for i in range(1000):
            try:
                out.append(config.group(i))
            except (IndexError, KeyError, LookupError):
                break
    if not out and hasattr(config, "last_group"):
        out.append(config.last_group())
    return out or [None]


def esc_enabled(settings: Any) -> bool:
    return bool(setting(settings, "enhancedstatuscodes-ok", True))


def reply_lines(code: int, esc: bytes, texts: tuple[bytes, ...], args: tuple[int, int]) -> bytes:
    """A multi-line reply as §4.1 formats it (ESC only when given)."""
    out = []
    for i, t in enumerate(texts):
        sep = b" " if i == len(texts) - 1 else b"-"
        if i == len(texts) - 1:
            t = t % args
        out.append(b"%d%s%s%s\r\n" % (code, sep, esc + b" " if esc else b"", t))
    return b"".join(out)


def limit_reply(kind: str, count: int, limit: int, esc: bool) -> bytes:
    """The 450 triple of §3.7 step 8 (``kind`` is "parallel" or "sameip")."""
    texts = MSG_PARALLEL if kind == "parallel" else MSG_SAMEIP
    return reply_lines(450, b"5.7.1" if esc else b"", texts, (count, limit))


ACCEPT, CLOSE_SAMEIP, CLOSE_PARALLEL, REFUSE_PARALLEL, REFUSE_SAMEIP = (
    "accept", "close-sameip", "close-parallel", "refuse-parallel", "refuse-sameip")


def limit_action(childcnt: int, sameip: int, maxsame: int, maxpar: int) -> str:
    """§3.6 step 5 (silent closes) then §3.7 step 8 (the 450 replies), in their order."""
    if sameip > 4 * maxsame:
        return CLOSE_SAMEIP
    if childcnt > maxpar + 100:
        return CLOSE_PARALLEL
    if childcnt > maxpar:
        return REFUSE_PARALLEL
    if sameip > maxsame and sameip > 1:
        return REFUSE_SAMEIP
    return ACCEPT


# --------------------------------------------------------------------------
# bind specs and the listener plan (§3.5)


@dataclass(frozen=True)
class ListenSpec:
    family: int
    addr: str
    port: int
    kind: str
    group: int


def _bind_entries(settings: Any) -> list[Any]:
    """The group's bind list: config.BindSpec entries (kind, family, addr, port)."""
    return list(setting(settings, "binds", []) or [])


def detect_ipv6(opts: Any) -> bool:
    """§3.3 step 5: -6 forces, -4 suppresses detection; fall back when no v6 socket."""
    want = bool(opt(opts, False, "ipv6", "use_ipv6"))
    if not want and bool(opt(opts, False, "ipv4", "use_ipv4", "only_ipv4")):
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
        return True
    except OSError:
        return False


def smtp_port(opts: Any, groups: list[Any]) -> int:
    """PARAM BindPort beats -p; 0 → the smtp service, else 25 (§3.4 step 9)."""
    port = int(setting(groups[0], "bindport", 0) or 0) & 0xFFFF
    if not port:
        port = int(opt(opts, 0, "port") or 0) & 0xFFFF
    if not port:
        try:
            port = socket.getservbyname("smtp", "tcp")
        except OSError:
            port = 25
    return port


def listen_plan(opts: Any, config: Any, use_v6: bool) -> list[ListenSpec]:
    """Every listener the configuration asks for, in group order, duplicates once.

    ZENV BINDADDR has already become a BindAddress of the last group in
    config.py when no Bind* keyword was given (§3.5).
    """
    groups = config_groups(config)
    port = smtp_port(opts, groups)
    plan: list[ListenSpec] = []

    def add(fam: int, addr: str, p: int, kind: str, gi: int) -> None:
        if fam == socket.AF_INET6 and not use_v6:
            return
        if not any((x.family, x.addr, x.port) == (fam, addr, p) for x in plan):
            plan.append(ListenSpec(fam, addr, p, kind, gi))

    for gi, g in enumerate(groups):
        entries = _bind_entries(g)
        ssmtp = bool(setting(g, "listen-ssmtp", False))
        if not entries:
            fams = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
            for fam, addr in fams:
                add(fam, addr, port, SMTP, gi)
            if ssmtp:
                for fam, addr in fams:
                    add(fam, addr, 465, SMTPS, gi)
            continue
        for b in entries:
            if b.kind == "address":
                add(b.family, b.addr, port, SMTP, gi)
                if ssmtp:
                    add(b.family, b.addr, 465, SMTPS, gi)
            else:
                add(b.family, b.addr, b.port or DEFAULT_PORTS[b.kind], b.kind, gi)
    return plan


@dataclass
class Listener:
    spec: ListenSpec
    sock: socket.socket
    settings: Any
    inherited: bool = False  # systemd socket activation: never re-bound on SIGHUP


def open_listener(spec: ListenSpec, settings: Any, log: SessionLog) -> socket.socket | None:
    """One listening socket as §3.5 sets it up; None (and a log note) on failure."""
    v = 6 if spec.family == socket.AF_INET6 else 4
    try:
        s = socket.socket(spec.family, socket.SOCK_STREAM)
    except OSError as e:
        print(f"socket(v{v}): {e.strerror}", file=sys.stderr)
        return None
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if spec.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        rcv = int(setting(settings, "tcprcvbuffersize", 0) or 0)
        snd = int(setting(settings, "tcpxmitbuffersize", 0) or 0)
        if rcv > 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcv)
        if snd > 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, snd)
        s.setblocking(False)
        try:
            s.bind((spec.addr, spec.port))
        except OSError as e:
            log.note(
                b"bind(s=%d, v%d, port=%d) failed; errno=%s"
                % (s.fileno(), v, spec.port, (e.strerror or str(e)).encode())
            )
            s.close()
            return None
        backlog = int(setting(settings, "listenqueuesize", 20000) or 20000)
        s.listen(max(1, backlog))
    except OSError as e:
        print(f"listener v{v} {spec.addr} {spec.port}: {e}", file=sys.stderr)
        s.close()
        return None
    log.note(
        b"setting up: bind(s=%d, v%d, addr='%s' port=%d)"
        % (s.fileno(), v, spec.addr.encode(), spec.port)
    )
    return s


def inherited_listeners() -> list[tuple[socket.socket, str]]:
    """systemd socket activation: LISTEN_FDS sockets (named smtp/smtps/submit)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    out = []
    for i in range(n):
        fd = 3 + i
        try:
            s = socket.socket(fileno=fd)
        except OSError:
            continue
        s.setblocking(False)
        name = names[i].lower() if i < len(names) else SMTP
        out.append((s, name if name in DEFAULT_PORTS else SMTP))
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    return out


# --------------------------------------------------------------------------
# the session child


class SessionDeadline(BaseException):
    """Raised in a child when the hard session deadline passes."""


@dataclass
class ChildFacts:
    """What the parent knows about the connection it forks a child for."""

    conn: socket.socket
    peer: tuple[Any, ...]
    listener: Listener
    childcnt: int
    sameip: int


@dataclass(eq=False)
class Worker:
    """The parent's view of a session child that can take another connection."""

    pid: int
    chan: socket.socket  # the parent's end of the child's SOCK_SEQPACKET pair
    generation: int  # the configuration it was forked with (SIGHUP increments)
    idle_since: float = 0.0


@dataclass(eq=False)
class Waiting:
    """An accepted, counted connection waiting (FORK_WAIT at most) for a child to go idle."""

    token: int  # its key in Counts.children until a child has it: negative, never a pid
    facts: ChildFacts
    kind: str
    key: bytes
    until: float


def _recv_conn(chan: socket.socket) -> tuple[bytes, list[int]]:
    """One hand-over message and its descriptor, close-on-exec as accept() makes it.

    (socket.recv_fds of 3.11 drops its flags argument, so MSG_CMSG_CLOEXEC
    would not arrive: helper programs must not inherit the client.)
    """
    fds = array.array("i")
    msg, anc, _, _ = chan.recvmsg(64, socket.CMSG_LEN(fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


def _addr_text(peer: tuple[Any, ...]) -> str:
    addr = str(peer[0])
    if addr.startswith("::ffff:") and "." in addr:
        addr = addr[7:]
    return addr.split("%", 1)[0]


# --------------------------------------------------------------------------
# the parent


@dataclass
class Counts:
    """Live session children, per listener type and per (type, client address)."""

    children: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    per_kind: dict[str, int] = field(default_factory=dict)
    per_ip: dict[tuple[str, bytes], int] = field(default_factory=dict)
    ever: bool = False

    def add(self, pid: int, kind: str, addr: bytes) -> None:
        self.children[pid] = (kind, addr)
        self.per_kind[kind] = self.per_kind.get(kind, 0) + 1
        self.per_ip[(kind, addr)] = self.per_ip.get((kind, addr), 0) + 1
        self.ever = True

    def remove(self, pid: int) -> bool:
        entry = self.children.pop(pid, None)
        if entry is None:
            return False
        kind, _ = entry
        self.per_kind[kind] -= 1
        if not self.per_kind[kind]:
            del self.per_kind[kind]
        self.per_ip[entry] -= 1
        if not self.per_ip[entry]:
            del self.per_ip[entry]
        return True

    def counts(self, kind: str, addr: bytes) -> tuple[int, int]:
        """(childcnt, sameip) of §3.6 step 4 for a new connection."""
        childcnt = 1 + self.per_kind.get(kind, 0)
        sameip = 1 + self.per_ip.get((kind, addr), 0) if self.ever else 0
        return childcnt, sameip


def addr_key(family: int, peer: tuple[Any, ...]) -> bytes:
    """Client address as bytes: family byte + 4 or 16 address bytes (§3.6 step 4)."""
    try:
        packed = socket.inet_pton(family, str(peer[0]).split("%", 1)[0])
    except OSError:
        packed = str(peer[0]).encode()
    return bytes([4 if family == socket.AF_INET else 6]) + packed


def decode_status(status: int) -> tuple[str, bool]:
    """waitpid status → (text, abnormal)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        core = " (core dumped)" if os.WCOREDUMP(status) else ""
        return f"killed by signal {sig} ({name}){core}", True
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return f"exited with status {code}", code not in (0,)
    return f"status 0x{status:04x}", True


class Daemon:
    """One daemon parent: owns listeners, counts, children, pidfile, log."""

    def __init__(
        self,
        opts: Any,
        config: Any,
        zenv: Any,
        *,
        runner: Runner | None = None,
        loader: Callable[[], Any] | None = None,
    ) -> None:
        self.opts = opts
        self.config = config
        self.zenv = zenv
        self.runner = runner
        self.loader = loader
        self.groups = config_groups(config)
        self.listeners: list[Listener] = []
        self.counts = Counts()
        self.selector: selectors.BaseSelector | None = None
        self.pipe_r = self.pipe_w = -1
        self.sig_term = 0
        self.sig_hup = False
        self.sig_chld = False
        self.pidfile: PidFile | None = None
        self.use_v6 = False
        self.load = loadavg.LoadCache(LOADAVG_FILE)
        self.tracker: Any = None  # ratetracker.TrackerServer (policy.md §9.3), made after detach
        self.workers: dict[int, Worker] = {}  # children that may take another connection
        self.idle: list[Worker] = []  # waiting for one, oldest first
        self.waiting: list[Waiting] = []  # connections waiting for an idle child, oldest first
        self._token = 0
        self.generation = 0
        self.log = self._open_log()

    # --- options and settings -------------------------------------------

    def log_path(self, remote: str | None = None) -> str | None:
        """The -l file with the -S suffix: ``local`` → .myhostname, ``remote`` → .client.

        3.0.1 names the remote file before resolving the client (``<logfile>.``);
        a child here knows its client, the master keeps 3.0.1's trailing dot.
        """
        path = opt(self.opts, None, "logfile", "log_file")
        suffix = opt(self.opts, None, "log_suffix")
        if not path or path == "SYSLOG" or suffix not in ("local", "remote"):
            return path
        if suffix == "local":
            from .hostname import myhostname

            try:
                return f"{path}.{myhostname()}"
            except OSError:
                return f"{path}."
        return f"{path}.{remote or ''}"

    def _open_log(self) -> SessionLog:
        use_syslog = bool(opt(self.opts, False, "log_syslog", "syslog", "use_syslog"))
        return SessionLog(self.log_path(), use_syslog=use_syslog, master=True)

    @property
    def max_sameip(self) -> int:
        return int(setting(self.groups[0], "maxsameipsource", 100))

    @property
    def max_parallel(self) -> int:
        return int(setting(self.groups[0], "maxparallelconnections", 800))

    @property
    def child_max_sessions(self) -> int:
        return max(1, int(setting(self.groups[0], "child-max-sessions", CHILD_MAX_SESSIONS)))

    @property
    def child_max_idle(self) -> float:
        return float(setting(self.groups[0], "child-max-idle", CHILD_MAX_IDLE))

    @property
    def max_load(self) -> int:
        return int(opt(self.opts, loadavg.NO_LIMIT, "maxloadavg", "max_loadavg", "loadavg"))

    def postoffice(self) -> str:
        po = opt(self.opts, None, "postoffice")
        if not po and self.zenv is not None:
            po = self.zenv.get("POSTOFFICE")
        return str(po or DEFAULT_POSTOFFICE)

    # --- start-up (§3.4) ---------------------------------------------------

    def start_pidfile(self) -> int | None:
        """Kill the previous daemon and write our pid; an exit status on failure."""
        name = opt(self.opts, None, "pidfile", "pidfile_name")
        self.pidfile = PidFile(pidfile_path(self.postoffice(), name))
        self.pidfile.kill_previous()
        if not self.pidfile.write(os.getpid()):
            if os.path.isdir(os.path.dirname(self.pidfile.path) or "."):
                argv0 = opt(self.opts, "smtpserver", "argv0", "progname")
                print(f"{argv0}: Can't write my pidfile!  Disk full ?", file=sys.stderr)
                return 2
            self.pidfile = None  # cannot even be opened: silently ignored (§3.4.1)
        return None

    def detach(self) -> None:
        """python-daemon: umask 022, cwd POSTOFFICE, fds closed, stdio /dev/null, new session."""
        import daemon  # python-daemon

        foreground = bool(opt(self.opts, False, "foreground"))
        debug = int(opt(self.opts, 0, "debug") or 0)
        keep = [ls.sock.fileno() for ls in self.listeners]
        if self.log.fd is not None:
            keep.append(self.log.fd)
        workdir = self.postoffice() if os.path.isdir(self.postoffice()) else "/"
        ctx = daemon.DaemonContext(
            working_directory=workdir,
            umask=0o022,
            detach_process=not (foreground or debug >= 2),
            files_preserve=keep,
            prevent_core=False,
            signal_map={},
            stdout=sys.stdout if foreground else None,
            stderr=sys.stderr if foreground else None,
        )
        ctx.open()
        for k in ("LOGNAME", "USER", "FULLNAME", "PRETTYLOGIN", "IFS"):
            os.environ.pop(k, None)
        os.environ["SHELL"] = "/bin/sh"
        try:
            resource.setrlimit(
                resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
        except (ValueError, OSError):
            pass

    def open_listeners(self) -> None:
        self.use_v6 = detect_ipv6(self.opts)
        inherited = inherited_listeners()
        if inherited:
            last = len(self.groups) - 1
            for s, kind in inherited:
                fam = s.family
                addr, port = s.getsockname()[:2]
                spec = ListenSpec(fam, addr, port, kind, last)
                self.listeners.append(Listener(spec, s, self.groups[last], inherited=True))
                v = 6 if fam == socket.AF_INET6 else 4
                self.log.note(
                    b"inherited: s=%d, v%d, addr='%s' port=%d"
                    % (s.fileno(), v, str(addr).encode(), port)
                )
            return
        for spec in listen_plan(self.opts, self.config, self.use_v6):
            sock = open_listener(spec, self.groups[spec.group], self.log)
            if sock is not None:
                self.listeners.append(Listener(spec, sock, self.groups[spec.group]))

    def _raise_nofile(self) -> None:
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass

    # --- signals -----------------------------------------------------------

    def _on_term(self, signum: int, frame: Any) -> None:
        self.sig_term += 1

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.sig_hup = True

    def _on_chld(self, signum: int, frame: Any) -> None:
        self.sig_chld = True

    def install_signals(self) -> None:
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.pipe_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGCHLD, self._on_chld)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for s in (signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
            signal.signal(s, signal.SIG_IGN)

    # --- the loop (§3.6) ----------------------------------------------------

    def run(self) -> int:
        """Start-up from the pidfile on; returns the exit status."""
        self._raise_nofile()
        rc = self.start_pidfile()
        if rc is not None:
            return rc
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            self.open_listeners()  # before detaching: bind errors still reach a terminal
            self.detach()
            if self.pidfile is not None:
                self.pidfile.write(os.getpid())  # our pid changed when we detached
            self.install_signals()
            self._preload()
            from .ratetracker import open_server

            self.tracker = open_server(self.log.note)
        except BaseException:
            if self.pidfile is not None:
                self.pidfile.remove()
            raise
        self.log.note(
            b"started server pid %d at %s" % (os.getpid(), rfc822_date(time.time()))
        )
        try:
            self.loop()
        finally:
            self.shutdown()
        return 0

    def _preload(self) -> None:
        """Import what a session needs now, once, so a child does not; then freeze the heap."""
        if self.runner is None:
            # imported now, but self.runner stays None: it marks the real session,
            # whose collaborators _child_session sets up (_session_facts)
            from . import session  # noqa: F401

        names = PRELOAD + (PRELOAD_TLS if self._tls_possible() else ())
        for name in names:
            try:
                importlib.import_module(f"{__package__}.{name}")
            except Exception:  # an optional collaborator that cannot load is the session's business
                pass
        if any(setting(g, "smtp-auth", False) for g in self.groups):
            try:
                from .auth import load_sasl

                load_sasl()  # auth.py imports pysasl lazily: only sessions that may AUTH need it
            except Exception:
                pass
        import codecs

        for enc in CODECS:  # the codec registry caches them: a child's open() finds them
            try:
                codecs.lookup(enc)
            except LookupError:
                pass
        from collections.abc import Mapping

        # spool.zget asks isinstance(zenv, Mapping) per session; the ABC caches the
        # (negative) answer, and a child inherits the cache instead of walking the subclasses
        isinstance(self.zenv, Mapping)
        from .hostname import myhostname

        try:
            myhostname()  # cached: children inherit it instead of asking DNS each
        except OSError:
            pass
        self._prime()
        gc.collect()
        gc.freeze()  # children share these pages instead of copying them on the first gc

    def _prime(self) -> None:
        """Host facts every session would look up alike: read once here, again on SIGHUP.

        resolv.conf and the interface addresses (the self-address test).
        """
        try:
            from . import dnsresolve
            from .policy import dnscheck
        except Exception:  # noqa: BLE001 - a session then finds out itself
            return
        dnsresolve.prime()
        try:
            dnscheck.prime()
        except OSError:
            dnscheck.unprime()

    def _tls_possible(self) -> bool:
        if opt(self.opts, False, "tls_on_connect"):
            return True
        if any(ls.spec.kind == SMTPS for ls in self.listeners):
            return True
        return any(setting(g, "use-tls", False) for g in self.groups)

    def _make_selector(self) -> None:
        if self.selector is not None:
            self.selector.close()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.pipe_r, selectors.EVENT_READ, None)
        if self.tracker is not None:
            self.selector.register(self.tracker.fileno(), selectors.EVENT_READ, self.tracker)
        for ls in self.listeners:
            self.selector.register(ls.sock, selectors.EVENT_READ, ls)
        for w in self.workers.values():
            self.selector.register(w.chan, selectors.EVENT_READ, w)

    def loop(self) -> None:
        self._make_selector()
        assert self.selector is not None
        while True:
            if self.sig_chld:
                self.reap()
            if self.sig_term:
                return
            if self.sig_hup:
                self.reload()
            timeout = POLL_SECONDS
            if self.idle:
                timeout = min(timeout, self._retire_idle())
            if self.waiting:
                timeout = min(timeout, max(0.0, self.waiting[0].until - time.monotonic()))
            try:
                events = self.selector.select(timeout)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno in (errno.EBADF, errno.EINVAL):
                    return
                time.sleep(1)
                continue
            listeners = []
            for key, _ in events:
                if key.data is None:
                    self._drain_pipe()
                elif key.data is self.tracker:
                    self.tracker.serve()  # answers what is queued, never blocks
                elif isinstance(key.data, Worker):
                    self._session_ended(key.data)
                else:
                    listeners.append(key.data)
            # after the end bytes: a child that just finished takes the connection, no fork
            self._serve_waiting()
            for ls in listeners:
                if not self.sig_term:
                    self.accept_from(ls)

    def _drain_pipe(self) -> None:
        try:
            while os.read(self.pipe_r, 512):
                pass
        except OSError:
            pass

    def accept_from(self, ls: Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.sig_term:
                return
            try:
                conn, peer = ls.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._accept_error(e)
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.1)  # the listener stays readable: do not spin
                return
            try:
                self.handle(conn, peer, ls)
            except Exception:  # the parent survives whatever one connection does
                conn.close()
                self.log.note(b"handle(): " + traceback.format_exc().encode(errors="replace"))

    def _accept_error(self, e: OSError) -> None:
        argv0 = opt(self.opts, "smtpserver", "argv0", "progname")
        date = rfc822_date(time.time()).decode()
        print(f"{argv0}: accept(): {e.strerror}; {date}", file=sys.stderr)
        self.log.syslog(LOG_ERR, f"accept() error={e.errno} ({e.strerror})".encode())
        self.log.raw(f"accept(): {e.strerror}; {date}".encode())

    def _refuse(self, conn: socket.socket, data: bytes) -> None:
        """Write a refusal without ever blocking, then close."""
        try:
            conn.setblocking(False)
            if data:
                conn.send(data)
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    def handle(self, conn: socket.socket, peer: tuple[Any, ...], ls: Listener) -> None:
        """Count, apply the limits of §3.6/§3.7, fork the session child."""
        kind = ls.spec.kind
        key = addr_key(conn.family, peer)
        childcnt, sameip = self.counts.counts(kind, key)
        maxsame, maxpar = self.max_sameip, self.max_parallel
        who = b"[%s]:%d" % (_addr_text(peer).encode(), peer[1])
        action = limit_action(childcnt, sameip, maxsame, maxpar)
        if action == CLOSE_SAMEIP:
            self.log.note(b"closed %s: ipcnt %d > 4 x MaxSameIpSource %d" % (who, sameip, maxsame))
            self._refuse(conn, b"")
            return
        if action == CLOSE_PARALLEL:
            self.log.note(
                b"closed %s: childs %d > MaxParallelConnections %d + 100" % (who, childcnt, maxpar)
            )
            self._refuse(conn, b"")
            return
        esc = esc_enabled(ls.settings)
        if action == REFUSE_PARALLEL:
            self.log.note(b"refused %s: childs %d max %d" % (who, childcnt, maxpar))
            self._refuse(conn, limit_reply("parallel", childcnt, maxpar, esc))
            return
        if action == REFUSE_SAMEIP:
            self.log.note(b"refused %s: ipcnt %d max %d" % (who, sameip, maxsame))
            self._refuse(conn, limit_reply("sameip", sameip, maxsame, esc))
            return
        if self.load.too_loaded(self.max_load):
            self.log.note(b"refused %s: load average over %d" % (who, self.max_load))
            self._refuse(conn, loadavg.reply(esc))
            return
        facts = ChildFacts(conn, peer, ls, childcnt, sameip)
        if self.idle and self._hand_over(facts, kind, key):
            return
        if self._may_wait():
            self._token -= 1
            self.counts.add(self._token, kind, key)  # counted from now on, like a forked one
            self.waiting.append(Waiting(self._token, facts, kind, key,
                                        time.monotonic() + FORK_WAIT))
            return
        self._fork_child(facts, kind, key)

    def _may_wait(self) -> bool:
        """Whether a new connection should wait a moment for a busy child to finish.

        A fork costs far more than a session, and new children are slow at
        first: forking for every connection that finds all children busy
        snowballs into dozens of children under a burst.  So a connection
        waits up to FORK_WAIT, but only while there are busy children that may
        still take more sessions, more of them than connections waiting.
        """
        if self.child_max_sessions <= 1:
            return False
        busy = len(self.workers) - len(self.idle)
        return busy > len(self.waiting)

    def _serve_waiting(self, *, now: bool = False) -> None:
        """Waiting connections go to idle children, oldest first; one waited enough gets a fork.

        ``now``: every one gets a child at once (SIGHUP, before the listeners change).
        """
        if not self.waiting or self.sig_term:  # SIGTERM: shutdown() closes them
            return
        clock = time.monotonic()
        while self.waiting:
            p = self.waiting[0]
            if not self.idle and p.until > clock and not now:
                return
            del self.waiting[0]
            self.counts.remove(p.token)
            try:
                if self.idle and self._hand_over(p.facts, p.kind, p.key):
                    continue
                self._fork_child(p.facts, p.kind, p.key)
            except Exception:  # the parent survives whatever one connection does
                p.facts.conn.close()
                self.log.note(b"waiting connection: "
                              + traceback.format_exc().encode(errors="replace"))

    def _drop_waiting(self) -> None:
        """Shutdown: waiting connections are closed, as the listen queue's are."""
        for p in self.waiting:
            self.counts.remove(p.token)
            p.facts.conn.close()
        self.waiting = []

    def _hand_over(self, f: ChildFacts, kind: str, key: bytes) -> bool:
        """Give the connection to the most recently idle child; False if none took it.

        The message names the listener, the counts and the peer address (what
        accept() told us: the child need not ask the socket again).
        """
        msg = b"%d %d %d %s %d" % (self.listeners.index(f.listener), f.childcnt, f.sameip,
                                   str(f.peer[0]).encode(), int(f.peer[1]))
        while self.idle:
            w = self.idle.pop()  # the newest: its pages are the warmest
            try:
                socket.send_fds(w.chan, [msg], [f.conn.fileno()])
            except OSError:  # it died or is exiting: the reap collects it
                self._retire(w)
                continue
            self.counts.add(w.pid, kind, key)
            f.conn.close()
            return True
        return False

    def _fork_child(self, f: ChildFacts, kind: str, key: bytes) -> None:
        conn = f.conn
        chan = mine = None
        if self.child_max_sessions > 1:
            try:
                mine, chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError:
                mine = chan = None  # this child serves one session only
        try:
            pid = os.fork()
        except OSError as e:
            conn.close()
            for s in (mine, chan):
                if s is not None:
                    s.close()
            argv0 = opt(self.opts, "smtpserver", "argv0", "progname")
            print(f"{argv0}: fork(): {e.strerror}", file=sys.stderr)
            self.log.note(b"fork(): %s" % (e.strerror or "").encode())
            time.sleep(1)
            return
        if pid == 0:
            if mine is not None:
                mine.close()
            self.child(f, chan)  # never returns
        self.counts.add(pid, kind, key)
        conn.close()
        if mine is not None and chan is not None:
            chan.close()
            w = Worker(pid, mine, self.generation)
            self.workers[pid] = w
            if self.selector is not None:
                self.selector.register(mine, selectors.EVENT_READ, w)

    def _session_ended(self, w: Worker) -> None:
        """A child's end byte (its session is over) or end of file (it is exiting)."""
        try:
            data = w.chan.recv(16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data != SESSION_DONE:
            self._retire(w)  # gone or going: waitpid collects the status
            return
        self.counts.remove(w.pid)
        if w.generation != self.generation or self.sig_term:
            self._retire(w)
            return
        w.idle_since = time.monotonic()
        self.idle.append(w)

    def _retire(self, w: Worker) -> None:
        """Close the parent's end: an idle child reads end of file and exits."""
        if self.workers.pop(w.pid, None) is None:
            return
        if self.selector is not None:
            try:
                self.selector.unregister(w.chan)
            except (KeyError, ValueError):
                pass
        w.chan.close()
        if w in self.idle:
            self.idle.remove(w)

    def _retire_idle(self) -> float:
        """Let children idle for child-max-idle go (the oldest are first); seconds to the next."""
        max_idle = self.child_max_idle
        limit = time.monotonic() - max_idle
        while self.idle and self.idle[0].idle_since <= limit:
            self._retire(self.idle[0])
        if not self.idle:
            return POLL_SECONDS
        return max(0.05, self.idle[0].idle_since - limit)

    def _retire_all(self) -> None:
        """SIGHUP: the idle children go now, the busy ones at their end byte (generation)."""
        for w in list(self.idle):
            self._retire(w)

    def reap(self) -> bool:
        """Collect every exited child; log the abnormal ends (§3.6 step 1).

        False when no child is left at all.
        """
        self.sig_chld = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            except InterruptedError:
                continue
            if pid <= 0:
                return True
            known = self.counts.remove(pid)
            w = self.workers.get(pid)
            if w is not None:
                self._retire(w)
                known = True
            text, bad = decode_status(status)
            if bad:
                self.log.note(
                    b"child %d %s%s" % (pid, text.encode(), b"" if known else b" (unknown)")
                )

    # --- SIGHUP ---------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the configuration; on failure keep the old one and say why."""
        self.sig_hup = False
        self._serve_waiting(now=True)  # under the configuration (and listeners) they came in by
        self.log.close()
        self.log = self._open_log()  # log rotation
        self._prime()  # resolv.conf and the interfaces may have changed too
        if self.loader is None:
            self.log.note(b"SIGHUP: no configuration loader; configuration kept")
            return
        try:
            new = self.loader()
        except Exception as e:  # any failure keeps the running configuration
            self.log.note(
                b"SIGHUP: configuration not re-read, keeping the old one: %s"
                % f"{type(e).__name__}: {e}".encode(errors="replace")
            )
            return
        if getattr(self.config, "read", False) and not getattr(new, "read", True):
            self.log.note(
                b"SIGHUP: %s could not be read, keeping the old configuration"
                % str(getattr(new, "path", "?")).encode(errors="replace")
            )
            return
        errors = getattr(new, "errors", None)
        if errors:
            self.log.note(
                b"SIGHUP: configuration has errors, keeping the old one: %s"
                % "; ".join(str(x) for x in errors).encode(errors="replace")
            )
            return
        old_listeners = self.listeners
        self.config = new
        self.groups = config_groups(new)
        self.generation += 1  # children forked before now finish their session and exit
        self._retire_all()
        self._rebind(old_listeners)
        gc.collect()
        gc.freeze()
        self.log.note(b"SIGHUP: configuration re-read; %d listeners" % len(self.listeners))

    def _rebind(self, old: list[Listener]) -> None:
        """Keep sockets whose address stays, open new ones, close the rest."""
        if any(ls.inherited for ls in old):
            for ls in old:
                ls.settings = self.groups[-1]
            return
        plan = listen_plan(self.opts, self.config, self.use_v6)
        by_addr = {(ls.spec.family, ls.spec.addr, ls.spec.port): ls for ls in old}
        new: list[Listener] = []
        for spec in plan:
            g = self.groups[spec.group]
            cur = by_addr.pop((spec.family, spec.addr, spec.port), None)
            if cur is not None:
                new.append(Listener(spec, cur.sock, g))
                continue
            s = open_listener(spec, g, self.log)
            if s is not None:
                new.append(Listener(spec, s, g))
        for ls in by_addr.values():
            ls.sock.close()
        self.listeners = new
        self._make_selector()

    # --- SIGTERM and exit (§3.8) ------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting, let sessions finish (bounded), remove the pidfile, log."""
        if self.tracker is not None:
            self.tracker.close()  # draining sessions find it unreachable at once: no limits
        for ls in self.listeners:
            ls.sock.close()
        self.listeners = []
        self._drop_waiting()
        for w in list(self.workers.values()):
            # a running session ends first; its child then reads end of file
            self._retire(w)
        if self.selector is not None:
            self.selector.close()
            self.selector = None
        pid = os.getpid()
        self.drain()
        self._reap_idle_children()
        if self.pidfile is not None:
            self.pidfile.remove()
        self.log.syslog(LOG_INFO, b"killed server.")
        self.log.raw(b"killed server pid %d at %s" % (pid, rfc822_date(time.time())))
        self.log.close()

    def _wait_children(self, until: float, stop_on_term: int | None) -> None:
        while self.counts.children and time.monotonic() < until:
            if stop_on_term is not None and self.sig_term > stop_on_term:
                return
            self.reap()
            if not self.counts.children:
                return
            # sleep until a signal arrives (the wakeup fd) or a short tick passes
            try:
                import select

                select.select([self.pipe_r], [], [], min(0.5, max(0.0, until - time.monotonic())))
            except (InterruptedError, OSError):
                pass
            self._drain_pipe()

    def _reap_idle_children(self) -> None:
        """Idle children read end of file and exit at once: collect them, not leave zombies."""
        until = time.monotonic() + IDLE_EXIT_SECONDS
        while self.reap() and time.monotonic() < until:
            time.sleep(0.01)

    def drain(self) -> None:
        if not self.counts.children:
            return
        seen = self.sig_term
        self.log.note(b"SIGTERM: waiting for %d sessions" % len(self.counts.children))
        self._wait_children(time.monotonic() + DRAIN_SECONDS, seen)
        self.reap()
        if self.counts.children:
            for pid in list(self.counts.children):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
            self._wait_children(time.monotonic() + DRAIN_TERM_SECONDS, None)
        if self.counts.children:
            self.log.note(b"exiting with %d sessions still running" % len(self.counts.children))

    # --- the child (§3.7) --------------------------------------------------------

    def child(self, facts: ChildFacts, chan: socket.socket | None = None) -> None:
        """Set up and run sessions (more if ``chan`` brings them); always ends with os._exit."""
        rc = 0
        try:
            self._child_reset(facts)
            rc = self._child_session(facts)
            if chan is not None:
                rc = self._serve_more(chan, rc)
        except SessionDeadline:
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            try:
                self.log.note(
                    b"session child crashed: " + traceback.format_exc().encode(errors="replace")
                )
            except BaseException:
                pass
            rc = 1
        finally:
            os._exit(rc)

    def _child_reset(self, facts: ChildFacts) -> None:
        signal.set_wakeup_fd(-1)
        for s in (signal.SIGCHLD, signal.SIGINT, signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP):
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        if self.selector is not None:
            self.selector.close()
            self.selector = None
        for ls in self.listeners:
            ls.sock.close()  # the Listener objects stay: spec and settings of handed-over sessions
        for w in self.workers.values():
            w.chan.close()  # the other children's pairs: their ends must reach EOF without us
        self.workers = {}
        self.idle = []
        for p in self.waiting:
            p.facts.conn.close()  # the parent's: another child gets them
        self.waiting = []
        if self.tracker is not None:
            self.tracker.close()  # the child keeps only its address (ctx.extra["ratetracker"])
        for fd in (self.pipe_r, self.pipe_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.counts = Counts()
        self.log.close()

    def _session_facts(self, ctx: Any) -> None:
        """The session's collaborators, set up exactly as for -i and -n.

        Host name, version, spool, policy, router, content filter, TLS, AUTH,
        reverse DNS and ident all come from cli.complete_context, so the three
        modes cannot drift apart.
        """
        from .cli import complete_context

        complete_context(ctx, self.opts, self.zenv)

    def _serve_more(self, chan: socket.socket, rc: int) -> int:
        """Between sessions: report the end, wait for the parent's next connection.

        End of file (the parent retired us, or died) or an unusable message
        ends the child.  SIGTERM while idle ends it too.
        """
        served = 1
        limit = self.child_max_sessions
        while served < limit:
            _set_handler(signal.SIGTERM, _SIG_DFL)
            signal.alarm(0)
            try:
                chan.send(SESSION_DONE)
                proctitle.set_title(None, proctitle.IDLE)  # after the byte: idle = uncounted soon
                msg, fds = _recv_conn(chan)
            except OSError:
                return rc
            if not fds:
                return rc
            try:
                words = msg.split()
                li, childcnt, sameip, port = (int(words[i]) for i in (0, 1, 2, 4))
                ls = self.listeners[li]
                peer = (words[3].decode(), port)
            except (ValueError, IndexError, UnicodeError):
                os.close(fds[0])
                return rc
            # family and type given: socket() need not ask the kernel for them
            conn = socket.socket(ls.spec.family, socket.SOCK_STREAM, 0, fileno=fds[0])
            conn.setblocking(True)
            rc = self._child_session(ChildFacts(conn, peer, ls, childcnt, sameip))
            served += 1
        return rc

    def _child_session(self, facts: ChildFacts) -> int:
        from . import session as session_mod
        from .stream import SocketTransport

        conn = facts.conn
        ls = facts.listener
        peer_addr = _addr_text(facts.peer)
        try:
            local = conn.getsockname()
            local_addr, local_port = _addr_text(local), int(local[1])
        except OSError:
            local_addr, local_port = None, -1
        must_exit: dict[str, Any] = {"flag": False, "reason": ""}
        rhostaddr = f"[IPv6:{peer_addr}]" if ":" in peer_addr else f"[{peer_addr}]"
        log = SessionLog(
            self.log_path(rhostaddr),
            use_syslog=bool(opt(self.opts, False, "log_syslog", "syslog", "use_syslog")),
        )
        self.log = log  # crash notes of child() go to the session's log
        deadline = int(setting(ls.settings, "session-timeout", SESSION_TIMEOUT) or 0)

        def end_input(reason: str) -> None:
            """The session sees end of input at its next read; a reply in progress completes."""
            must_exit["flag"] = True
            must_exit["reason"] = reason
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass

        def on_term(signum: int, frame: Any) -> None:
            end_input("SIGTERM")

        def on_alarm(signum: int, frame: Any) -> None:
            if must_exit["reason"] != "session deadline":
                end_input("session deadline")
                log.note(b"session deadline of %d s passed; ending the session" % deadline)
                signal.alarm(HARD_GRACE)
                return
            log.note(b"session did not end %d s after its deadline; exiting" % HARD_GRACE)
            raise SessionDeadline()

        _set_handler(signal.SIGTERM, on_term)
        _set_handler(signal.SIGALRM, on_alarm)
        if deadline > 0:
            signal.alarm(deadline)
        proctitle.set_title(rhostaddr, proctitle.CONNECTED)
        ctx = session_mod.SessionContext(
            options=self.opts,
            config=self.config,
            settings=ls.settings,
            zenv=self.zenv,
            mode="daemon",
            network=True,
            peer_addr=peer_addr,
            peer_port=int(facts.peer[1]),
            local_addr=local_addr,
            local_port=local_port,
            sameip=facts.sameip,
            listener_kind=ls.spec.kind,
            log=log,
            extra={"childcnt": facts.childcnt, "must_exit": must_exit, "socket": conn,
                   "ratetracker": self.tracker.address if self.tracker is not None else None},
            session_deadline=float(deadline) if deadline > 0 else None,
            must_exit=lambda: bool(must_exit["flag"]),
        )
        if self.runner is None:  # a stand-in runner (tests, bench) brings its own set-up
            self._session_facts(ctx)
        # §3.7 step 7 (rhostname/ident as far as the context knows them)
        log.note(
            b"connection from %s %s:%d on port %d ipcnt %d childs %d pid %d ident: %s"
            % (
                ctx.rhostname or rhostaddr.encode(),
                rhostaddr.encode(),
                ctx.peer_port,
                local_port,
                facts.sameip,
                facts.childcnt,
                os.getpid(),
                ctx.ident or b"IDENT-NOT-QUERIED",
            )
        )
        runner = self.runner or session_mod.run_session
        rc = runner(ctx, SocketTransport(conn))
        signal.alarm(0)
        try:
            conn.close()
        except OSError:
            pass
        log.close()
        return int(rc or 0)


def run_daemon(
    opts: Any,
    config: Any,
    zenv: Any,
    *,
    runner: Runner | None = None,
    loader: Callable[[], Any] | None = None,
) -> int:
    """Daemon mode (§3.4): returns the exit status for cli.main.

    ``loader`` re-reads the configuration on SIGHUP; by default it calls
    ``config.load_config(config.path, zenv)`` again.
    ``runner`` replaces ``session.run_session`` (benchmarks, stand-ins).
    """
    if loader is None and config is not None and getattr(config, "path", None):
        from . import config as config_mod

        path = config.path
        ipv6 = bool(getattr(config, "ipv6", True))

        def loader() -> Any:
            return config_mod.load_config(path, zenv, ipv6=ipv6)

    return Daemon(opts, config, zenv, runner=runner, loader=loader).run()
