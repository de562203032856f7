"""The benchmark: Postfix's smtp-source against four servers, side by side.

Servers (each started fresh for each scenario, all on 127.0.0.1 high ports):

* ``sink``     -- Postfix's smtp-sink: accepts and forgets; the load generator's ceiling.
* ``postfix``  -- a private Postfix instance (own config and queue directory under
                  the run's temporary directory, ``default_transport = discard``):
                  smtpd, cleanup, the real queue, qmgr, discard.
* ``zmailer``  -- this project's ``bin/smtpserver --foreground``, spooling into
                  a temporary POSTOFFICE with a permissive policy database.
* ``aiosmtpd`` -- aiosmtpd with a handler that fsyncs each message and its
                  directory before the 250 (bench/aiosmtpd_spool.py).

Scenarios (``--scale`` multiplies the message counts):

* ``1/conn``  -- ``smtp-source -s 10 -m 5000``: one message per connection.
* ``many``    -- ``smtp-source -s 10 -m 20000 -d``: many messages per connection.
* ``1MB``     -- ``smtp-source -s 10 -m 500 -l 1000000``: 1 MB messages.

Measured per server and scenario: messages/s (wall time of smtp-source),
server CPU seconds per message (utime+stime+cutime+cstime summed over the
server's process tree from /proc, after minus before, so children that were
reaped during the run are counted through their parent), the peak VmHWM of
one session process (Postfix: an smtpd; ours: a child of the daemon;
aiosmtpd and smtp-sink: their single process) and the peak total VmRSS of the
tree, sampled from /proc during the run; and ratios to Postfix.

Run it through ``bench/run`` (a private network namespace whose resolver is
127.0.0.1): this program refuses to start when /etc/resolv.conf names any
other resolver, because our daemon resolves client addresses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER, RECIPIENT = "bench@example.org", "bench@example.net"
T = TypeVar("T")
SERVERS = ("sink", "postfix", "zmailer", "aiosmtpd")


@dataclass(frozen=True)
class Scenario:
    name: str
    messages: int
    flags: tuple[str, ...]
    what: str


SCENARIOS = (
    Scenario("1/conn", 5000, (), "one message per connection"),
    Scenario("many", 20000, ("-d",), "many messages per connection"),
    Scenario("1MB", 500, ("-l", "1000000"), "1 MB messages"),
)


class BenchError(Exception):
    """A server could not be set up or measured; the row says why."""


# --------------------------------------------------------------------------
# /proc


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    comm: str
    state: str
    starttime: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    sys_ticks: int = 0  # stime + cstime: the kernel's part


def read_stat(pid: int) -> ProcInfo | None:
    """One /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    lpar, rpar = raw.find(b"("), raw.rfind(b")")
    comm = raw[lpar + 1:rpar].decode("latin-1")
    rest = raw[rpar + 2:].split()
    # rest[0] is field 3 (state); utime..cstime are fields 14..17, starttime 22
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return ProcInfo(pid, int(rest[1]), comm, rest[0].decode(), int(rest[19]), ticks,
                    int(rest[12]) + int(rest[14]))


def all_procs() -> dict[int, ProcInfo]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            p = read_stat(int(d))
            if p is not None:
                out[p.pid] = p
    return out


def tree(root: int, procs: dict[int, ProcInfo] | None = None) -> list[ProcInfo]:
    """``root`` and all its descendants (root first); empty if root is gone."""
    procs = all_procs() if procs is None else procs
    if root not in procs:
        return []
    kids: dict[int, list[int]] = {}
    for p in procs.values():
        kids.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(procs[pid])
        todo.extend(kids.get(pid, ()))
    return out


def tree_cpu_seconds(root: int) -> tuple[float, float]:
    """(user+system, system) seconds of the tree, reaped children included."""
    procs = tree(root)
    return (sum(p.cpu_ticks for p in procs) / CLK_TCK,
            sum(p.sys_ticks for p in procs) / CLK_TCK)


def own_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` alone (not its reaped children)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return 0.0
    rest = raw[raw.rfind(b")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def status_kib(pid: int, *keys: bytes) -> list[int]:
    """VmHWM/VmRSS-style fields of /proc/PID/status in KiB (0 when absent)."""
    vals = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                k, _, v = line.partition(b":")
                if k in vals:
                    vals[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return [vals[k] for k in keys]


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts as gone)."""
    p = read_stat(pid)
    return p is None or p.state in ("Z", "X")


def kill_listed(procs: list[ProcInfo]) -> None:
    """SIGKILL what is left of ``procs`` (start times checked against pid reuse)."""
    for p in procs:
        again = read_stat(p.pid)
        if again is not None and again.starttime == p.starttime and again.state not in "ZX":
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGKILL)


class Sampler(threading.Thread):
    """Samples a server's process tree during a run: peak RSS per session process and total."""

    def __init__(self, root: int, is_session: Callable[[ProcInfo, int], bool],
                 interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.is_session, self.interval = root, is_session, interval
        self.stop_event = threading.Event()
        self.peak_child_kib = 0
        self.peak_total_kib = 0
        self.max_procs = 0

    def sample(self) -> None:
        procs = tree(self.root)
        total = 0
        for p in procs:
            hwm, rss = status_kib(p.pid, b"VmHWM", b"VmRSS")
            total += rss
            if self.is_session(p, self.root):
                self.peak_child_kib = max(self.peak_child_kib, hwm)
        self.peak_total_kib = max(self.peak_total_kib, total)
        self.max_procs = max(self.max_procs, len(procs))

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.sample()


# --------------------------------------------------------------------------
# helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], T], what: str, limit: float) -> T:
    """Poll ``cond`` (bounded); raise BenchError naming ``what`` on timeout."""
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.05)


def greeting(port: int) -> bytes:
    """The server's first reply line, or b'' if it does not answer yet."""
    try:
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.settimeout(5)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
            with contextlib.suppress(OSError):
                s.sendall(b"QUIT\r\n")
                s.recv(512)
            return data
    except OSError:
        return b""


def preflight(port: int) -> None:
    """One message by smtplib: proves the server accepts mail before the timed run."""
    try:
        with smtplib.SMTP(HOST, port, local_hostname="bench.client", timeout=30) as c:
            c.sendmail(SENDER, [RECIPIENT], b"Subject: preflight\r\n\r\nhello\r\n")
    except (smtplib.SMTPException, OSError) as e:
        raise BenchError(f"preflight message refused: {e}") from e


def untraversable(path: Path) -> Path | None:
    """The first ancestor of ``path`` that other users cannot search, if any."""
    for d in reversed(path.resolve().parents):
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def count_files(top: Path) -> int:
    n = 0
    for _dirpath, _dirs, files in os.walk(top):
        n += sum(1 for f in files if not f.startswith("."))
    return n


# --------------------------------------------------------------------------
# servers


class Server:
    """One server under test: start, the root of its process tree, settle, stop."""

    name = "?"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def is_session(self, p: ProcInfo, root: int) -> bool:
        """Whether ``p`` handles SMTP sessions (its VmHWM is the "per child" figure)."""
        return p.pid != root

    def accepts_mail(self) -> bool:
        return True

    def delivered(self) -> int | None:
        """Messages on disk so far (None: not countable)."""
        return None

    def settle(self, limit: float) -> None:
        """After the load: wait until the server's work for it is done (bounded)."""

    def stop(self) -> None:
        if self.proc is None:
            return
        root = self.proc.pid
        doomed = tree(root)
        with contextlib.suppress(OSError):
            os.kill(root, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        kill_listed(doomed)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def wait_ready(self) -> None:
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with status {self.proc.returncode}"
                                 f"{self.stderr_tail()}")
            return greeting(self.port).startswith(b"220")
        wait_until(up, f"{self.name} on port {self.port}", 30)

    def stderr_tail(self) -> str:
        path = self.work / "stderr"
        try:
            text = path.read_text("utf-8", "replace").strip()
        except OSError:
            return ""
        return (": " + text[-600:]) if text else ""

    def popen(self, argv: list[str]) -> None:
        err = open(self.work / "stderr", "wb")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True, cwd=self.work)
        finally:
            err.close()


class Sink(Server):
    name = "sink"

    def start(self) -> None:
        self.port = free_port()
        self.popen([SMTP_SINK, "-u", "nobody", f"{HOST}:{self.port}", "256"])
        self.wait_ready()

    def is_session(self, p: ProcInfo, root: int) -> bool:
        return True


class Aiosmtpd(Server):
    name = "aiosmtpd"

    def start(self) -> None:
        self.port = free_port()
        self.spool = self.work / "spool"
        self.spool.mkdir()
        self.popen([PYTHON, str(BENCH / "aiosmtpd_spool.py"), HOST, str(self.port),
                    str(self.spool)])
        self.wait_ready()

    def is_session(self, p: ProcInfo, root: int) -> bool:
        return True

    def delivered(self) -> int:
        return count_files(self.spool)


POLICY_SRC = BENCH / "smtp-policy.src"


class Zmailer(Server):
    name = "zmailer"

    def start(self) -> None:
        self.port = free_port()
        w = self.work
        self.po = w / "postoffice"
        for d in ("public", "router", "freezer", "postman", "transport", "queue", "deferred"):
            (self.po / d).mkdir(parents=True)
        db = w / "db"
        db.mkdir()
        shutil.copy(POLICY_SRC, db / "smtp-policy.src")
        (db / "localnames").write_text("")
        b = subprocess.run([PYTHON, "-m", "zmailer_smtpd.policy.builder", "-d", str(db),
                            "-t", "btree"], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "ZCONFIG": str(w / "zmailer.conf")})
        if b.returncode != 0 or not (db / "smtp-policy.db").exists():
            raise BenchError(f"policy builder failed: {b.stderr.strip()[-400:]}")
        (w / "zmailer.conf").write_text(
            f"POSTOFFICE={self.po}\nMAILVAR={w}\nMAILSHARE={w}\nMAILBIN={w}\nLOGDIR={w}\n")
        (w / "smtpserver.conf").write_text(
            f"PARAM policydb btree {db}/smtp-policy\n"
            f"PARAM BindSmtp [{HOST}] {self.port}\n"
            "*  ve\n")
        self.popen([PYTHON, str(REPO / "bin" / "smtpserver"), "-Z", str(w / "zmailer.conf"),
                    "-C", str(w / "smtpserver.conf"), "-P", str(self.po), "--foreground",
                    "-p", str(self.port)])
        self.wait_ready()

    def delivered(self) -> int:
        return count_files(self.po / "router")

    def settle(self, limit: float) -> None:
        # every 250 came after its fsync; children wait idle for the next connection
        # (PARAM child-max-idle), so wait only until none is in a session any more
        root = self.root_pid()

        def settled() -> bool:
            # a session child's title (and so its comm) starts with "<client"
            return not any(p.comm.startswith("<") for p in tree(root) if p.pid != root)

        with contextlib.suppress(BenchError):
            wait_until(settled, "zmailer sessions to end", limit)


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
default_transport = discard
relay_transport = discard
local_transport = discard
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
"""

MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix(Server):
    name = "postfix"

    def start(self) -> None:
        self.port = free_port()
        w = self.work
        self.confdir, self.queue, data = w / "etc", w / "queue", w / "data"
        for d in (self.confdir, self.queue, data):
            d.mkdir()
        os.chmod(w, 0o755)
        shutil.chown(data, "postfix", "postfix")
        (self.confdir / "main.cf").write_text(MAIN_CF.format(queue=self.queue, data=data))
        (self.confdir / "master.cf").write_text(MASTER_CF.format(host=HOST, port=self.port))
        blocked = untraversable(self.queue)
        if blocked:
            raise BenchError(f"{blocked} is not searchable by others; Postfix's unprivileged"
                             " processes need it (use --workdir)")
        r = self.postfix("start")
        if r.returncode != 0:
            raise BenchError(f"postfix start failed: {(r.stdout + r.stderr).strip()[-600:]}")
        self.master = wait_until(self.master_from_pidfile, "postfix master.pid", 30)
        self.wait_ready()

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([POSTFIX, "-c", str(self.confdir), *args], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)

    def root_pid(self) -> int:
        return self.master

    def is_session(self, p: ProcInfo, root: int) -> bool:
        return p.comm == "smtpd"

    def queued(self) -> int:
        return sum(count_files(self.queue / d) for d in ("maildrop", "incoming", "active",
                                                           "deferred", "hold"))

    def settle(self, limit: float) -> None:
        wait_until(lambda: self.queued() == 0, "the postfix queue to drain", limit)

    def master_from_pidfile(self) -> int:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (AttributeError, OSError, ValueError, IndexError):
            return 0

    def stop(self) -> None:
        # also after an interrupted start: the pidfile may name a master we never saw
        master = getattr(self, "master", 0) or self.master_from_pidfile()
        doomed = tree(master) if master else []
        if hasattr(self, "confdir") and (self.confdir / "main.cf").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.postfix("stop")
        if not master:
            return
        with contextlib.suppress(BenchError):
            wait_until(lambda: gone(master), "postfix master to exit", 20)
        kill_listed(doomed)
        self.master = 0


CLASSES: dict[str, type[Server]] = {
    "sink": Sink, "postfix": Postfix, "zmailer": Zmailer, "aiosmtpd": Aiosmtpd}


# --------------------------------------------------------------------------
# one measurement


@dataclass
class Result:
    scenario: str
    server: str
    messages: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    cpu_per_msg: float = 0.0
    sys_per_msg: float = 0.0  # of cpu_per_msg: system (kernel) time
    root_cpu_per_msg: float = 0.0  # of cpu_per_msg: the root process itself (ours: the parent)
    peak_child_kib: int = 0
    peak_total_kib: int = 0
    max_procs: int = 0
    busy_pct: float = 0.0
    load_cpu: float = 0.0
    error: str = ""


def smtp_source_argv(sc: Scenario, messages: int, sessions: int, port: int) -> list[str]:
    return [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), *sc.flags,
            "-M", "bench.client", "-f", SENDER, "-t", RECIPIENT, f"{HOST}:{port}"]


def measure(server: Server, sc: Scenario, messages: int, sessions: int,
            timeout: float) -> Result:
    res = Result(sc.name, server.name, messages)
    server.start()
    if server.name != "sink":
        preflight(server.port)
    root = server.root_pid()
    server.settle(30)
    before_files = server.delivered()
    (cpu0, sys0), own0 = tree_cpu_seconds(root), own_cpu_seconds(root)
    busy0, total0 = machine_busy_ticks()
    ru0 = os.times()
    sampler = Sampler(root, server.is_session)
    sampler.start()
    t0 = time.monotonic()
    try:
        run = subprocess.run(smtp_source_argv(sc, messages, sessions, server.port),
                             capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        sampler.finish()
        raise BenchError(f"smtp-source did not finish within {timeout:.0f} s") from e
    res.seconds = time.monotonic() - t0
    sampler.finish()
    ru1 = os.times()
    busy1, total1 = machine_busy_ticks()
    problems = [ln for ln in run.stderr.splitlines() if ln.strip()]
    if run.returncode != 0 or problems:
        raise BenchError(f"smtp-source status {run.returncode}: {' | '.join(problems[:3])}")
    server.settle(max(60.0, timeout / 4))
    (cpu1, sys1), own1 = tree_cpu_seconds(root), own_cpu_seconds(root)
    after_files = server.delivered()
    if before_files is not None and after_files is not None:
        got = after_files - before_files
        if got != messages:
            raise BenchError(f"{got} of {messages} messages on disk after the run")
    res.rate = messages / res.seconds if res.seconds > 0 else 0.0
    res.cpu_per_msg = (cpu1 - cpu0) / messages
    res.sys_per_msg = (sys1 - sys0) / messages
    res.root_cpu_per_msg = (own1 - own0) / messages
    res.peak_child_kib = sampler.peak_child_kib
    res.peak_total_kib = sampler.peak_total_kib
    res.max_procs = sampler.max_procs
    res.busy_pct = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
    res.load_cpu = (ru1.children_user + ru1.children_system
                    - ru0.children_user - ru0.children_system)
    return res


# --------------------------------------------------------------------------
# report


def machine_line() -> str:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        load = "?"
    return (f"{date}; nproc {os.cpu_count()}; memory {mem_kib / 1048576:.1f} GiB; "
            f"{model}; Linux {platform.release()}; Python {platform.python_version()};"
            f" load average {load} at the start")


def median_run(runs: list[Result]) -> Result:
    """The run with the median rate (a failed run wins: it must be seen)."""
    failed = [r for r in runs if r.error]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def versions_line() -> str:
    """What was measured: the peers' versions and ours."""
    out = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run([shutil.which("postconf") or "/usr/sbin/postconf", "-d", "-h",
                            "mail_version"], capture_output=True, text=True, timeout=30)
        out.append(f"Postfix {r.stdout.strip()}")
    with contextlib.suppress(ImportError, AttributeError):
        import aiosmtpd  # type: ignore[import-untyped]
        out.append(f"aiosmtpd {aiosmtpd.__version__}")
    sys.path.insert(0, str(REPO))
    with contextlib.suppress(ImportError, AttributeError):
        import zmailer_smtpd
        out.append(f"zmailer_smtpd {zmailer_smtpd.__version__}")
    return ", ".join(out)


def ratio(v: float, ref: float | None) -> str:
    if not ref or not v:
        return "-"
    return f"{v / ref:.2f}x"


def table(results: list[Result]) -> str:
    head = (f"{'scenario':<8} {'server':<9} {'msgs':>6} {'secs':>7} {'msg/s':>8} {'vs pf':>6}"
            f" {'cpu ms/msg':>10} {'vs pf':>6} {'sys':>4} {'RSS/child':>9} {'vs pf':>6}"
            f" {'tree RSS':>9} {'busy':>5}")
    lines = [head, "-" * len(head)]
    ref = {r.scenario: r for r in results if r.server == "postfix" and not r.error}
    for r in results:
        pf = ref.get(r.scenario)
        if r.error:
            lines.append(f"{r.scenario:<8} {r.server:<9} {r.messages:>6}  NOT MEASURED: {r.error}")
            continue
        lines.append(
            f"{r.scenario:<8} {r.server:<9} {r.messages:>6} {r.seconds:>7.2f} {r.rate:>8.0f}"
            f" {ratio(r.rate, pf.rate if pf else None):>6}"
            f" {1000 * r.cpu_per_msg:>10.3f}"
            f" {ratio(r.cpu_per_msg, pf.cpu_per_msg if pf else None):>6}"
            f" {100 * r.sys_per_msg / r.cpu_per_msg if r.cpu_per_msg else 0:>3.0f}%"
            f" {r.peak_child_kib / 1024:>7.1f}Mi"
            f" {ratio(r.peak_child_kib, pf.peak_child_kib if pf else None):>6}"
            f" {r.peak_total_kib / 1024:>7.1f}Mi {r.busy_pct:>4.0f}%")
    return "\n".join(lines)


LEGEND = """\
msg/s: messages / wall seconds of smtp-source (10 parallel sessions).
cpu ms/msg: server CPU (user+system of its whole process tree) per message;
  Postfix's includes cleanup, qmgr and discard (the real queue); sink's is smtp-sink's.
sys: the kernel's share of that CPU (system time: fsync, sockets, ...).
RSS/child: peak VmHWM of one session process (postfix: smtpd; zmailer: a child of
  the daemon; aiosmtpd, sink: the one process).  tree RSS: peak sum of VmRSS.
busy: all CPUs busy during the run (load generator included); "vs pf": ratio to Postfix."""


# --------------------------------------------------------------------------
# main


def resolver_is_loopback() -> bool:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return False
    servers = [ln.split()[1] for ln in text.splitlines()
               if ln.startswith("nameserver") and len(ln.split()) > 1]
    return bool(servers) and all(s.startswith("127.") for s in servers)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the message counts (5000, 20000, 500) by this")
    ap.add_argument("--sessions", type=int, default=10, help="smtp-source -s (default 10)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help=f"comma-separated subset of {','.join(SERVERS)}")
    ap.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                    help="comma-separated subset of " + ",".join(s.name for s in SCENARIOS))
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds one smtp-source run may take (default 900)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per server and scenario; the table shows the median (default 1)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--workdir", help="parent of the temporary directory (default /var/tmp)")
    args = ap.parse_args(argv)
    args.server_list = [s for s in args.servers.split(",") if s]
    for s in args.server_list:
        if s not in CLASSES:
            ap.error(f"unknown server {s!r}")
    names = {s.name: s for s in SCENARIOS}
    args.scenario_list = []
    for n in args.scenarios.split(","):
        if n not in names:
            ap.error(f"unknown scenario {n!r}")
        args.scenario_list.append(names[n])
    if args.scale <= 0 or args.sessions < 1 or args.timeout <= 0 or args.repeat < 1:
        ap.error("--scale, --sessions, --repeat and --timeout must be positive")
    return args


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop every server."""
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C: also when started with SIGINT ignored (a background job of a shell)
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not resolver_is_loopback():
        print("bench: /etc/resolv.conf names a resolver off loopback; run bench/run "
              "(a private network namespace) instead", file=sys.stderr)
        return 2
    for prog in (SMTP_SOURCE, SMTP_SINK, POSTFIX):
        if not os.access(prog, os.X_OK):
            print(f"bench: {prog} missing (Debian package postfix)", file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="zmbench.", dir=args.workdir or "/var/tmp"))
    os.chmod(base, 0o755)
    # ext4's Orlov allocator puts each run's directory (and so its spool or queue
    # files) in a block group of its own when the parent is marked a top directory.
    # On an ext4 without a journal (this VM's root) every file create skips, one by
    # one, the inodes of its group deleted in the last minutes (recently_deleted()):
    # one run's removed files would otherwise slow the next run's spool or queue.
    subprocess.run(["chattr", "+T", str(base)], capture_output=True, check=False)
    results: list[Result] = []
    machine = machine_line()
    print(f"bench: {machine}", flush=True)
    print(f"bench: scale {args.scale:g}, {args.sessions} sessions, work in {base}", flush=True)
    current: Server | None = None
    try:
        with terminate_as_exception():
            for sc in args.scenario_list:
                n = max(1, round(sc.messages * args.scale))
                for name in args.server_list:
                    runs: list[Result] = []
                    for i in range(args.repeat):
                        # a random name: ext4 places a top directory's child by a hash of
                        # its name, and a fixed name would land where the last bench run's
                        # removed files were (see chattr +T above)
                        work = Path(tempfile.mkdtemp(
                            prefix=f"{sc.name.replace('/', '')}-{name}-{i}.", dir=base))
                        os.chmod(work, 0o755)
                        current = CLASSES[name](work)
                        print(f"bench: {sc.name} ({sc.what}), {n} messages -> {name} ...",
                              end="", flush=True)
                        try:
                            r = measure(current, sc, n, args.sessions, args.timeout)
                            print(f" {r.rate:.0f} msg/s", flush=True)
                        except BenchError as e:
                            r = Result(sc.name, name, n, error=str(e))
                            print(f" not measured: {e}", flush=True)
                        finally:
                            current.stop()
                            current = None
                            # Removed at once: kept, a run's files would crowd the page
                            # cache for the next runs.  The next run's files are in
                            # another block group (chattr +T above), so the inodes freed
                            # here do not slow its creates.
                            if not args.keep:
                                shutil.rmtree(work, ignore_errors=True)
                        runs.append(r)
                        if r.error:
                            break
                    results.append(median_run(runs))
    except KeyboardInterrupt:
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if current is not None:
            current.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(f"zmailer_smtpd benchmark, {machine}")
    print(versions_line())
    print(f"smtp-source -s {args.sessions}; scale {args.scale:g}; median of {args.repeat} run(s)")
    print(table(results))
    print(LEGEND)
    for r in results:
        if r.server == "zmailer" and not r.error:
            print(f"zmailer {r.scenario}: daemon parent {1000 * r.root_cpu_per_msg:.3f} ms/msg,"
                  f" session children {1000 * (r.cpu_per_msg - r.root_cpu_per_msg):.3f} ms/msg,"
                  f" up to {r.max_procs} processes")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1) + "\n")
    return 0 if all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
