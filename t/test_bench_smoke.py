"""bench/harness.py in a tiny configuration: it runs, measures, prints, and cleans up.

Not a timed test: it asserts that every server was measured and that no
process of the run survives it (also after an interrupt), never a speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, str(REPO / "bench" / "harness.py")]
PEERS = "sink,postfix,aiosmtpd"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a private Postfix instance needs root"),
    pytest.mark.skipif(not shutil.which("smtp-source") and not os.path.exists(
        "/usr/sbin/smtp-source"), reason="Postfix (smtp-source) not installed"),
]


@pytest.fixture
def work() -> Iterator[Path]:
    """The harness's --workdir: Postfix's unprivileged processes must reach it, so
    not under pytest's private tmp_path."""
    d = Path(tempfile.mkdtemp(prefix="zmbench-test.", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def procs_using(path: Path) -> list[str]:
    """Live processes whose working directory or command line lies under ``path``."""
    found = []
    needle = str(path)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_bytes()
            if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
                continue
            cwd = os.readlink(f"/proc/{d}/cwd")
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                "utf-8", "replace")
        except OSError:
            continue
        if cwd.startswith(needle) or needle in cmd:
            out = f"{d} cwd={cwd} cmd={cmd[:120]}"
            found.append(out)
    return found


def run_harness(tmp: Path, work: Path,
                servers: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    out = tmp / "results.json"
    p = subprocess.run([*HARNESS, "--scale", "0.002", "--servers", servers, "--timeout", "120",
                        "--workdir", str(work), "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    results = json.loads(out.read_text()) if out.exists() else []
    assert procs_using(work) == []
    assert list(work.iterdir()) == []  # the temporary directory is removed
    return p, results


def test_peers_measured_in_every_scenario(tmp_path: Path, work: Path) -> None:
    p, results = run_harness(tmp_path, work, PEERS)
    assert p.returncode == 0, p.stdout + p.stderr
    got = {(r["scenario"], r["server"]) for r in results}
    assert got == {(sc, s) for sc in ("1/conn", "many", "1MB") for s in PEERS.split(",")}
    for r in results:
        assert r["error"] == ""
        assert r["messages"] == {"1/conn": 10, "many": 40, "1MB": 1}[r["scenario"]]
        assert r["rate"] > 0 and r["seconds"] > 0
        assert r["peak_child_kib"] > 0 and r["peak_total_kib"] >= r["peak_child_kib"] // 2
    pf = [r for r in results if r["server"] == "postfix"]
    assert all(r["max_procs"] >= 4 for r in pf)  # master, smtpd, cleanup, qmgr at least
    text = p.stdout
    assert "nproc " in text and "memory " in text and " UTC" in text
    assert "msg/s" in text and "cpu ms/msg" in text and "RSS/child" in text
    for line in text.splitlines():
        if line.startswith(("1/conn", "many", "1MB")) and " postfix " in line:
            assert " 1.00x " in line  # ratios are to Postfix


def test_our_daemon_measured(tmp_path: Path, work: Path) -> None:
    p, results = run_harness(tmp_path, work, "zmailer")
    errors = [r["error"] for r in results if r["error"]]
    if errors and any("preflight" in e and (" 400" in e or "(450" in e or "(400" in e)
                      for e in errors):
        pytest.skip(f"daemon sessions do not accept mail yet: {errors[0][:200]}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(results) == 3 and not errors
    for r in results:
        # a 1-message run may end between two samples of its short-lived child
        assert r["rate"] > 0 and r["peak_total_kib"] > 0


def test_interrupt_stops_every_server(work: Path) -> None:
    # 10000 messages: the interrupt lands long before the run could end
    proc = subprocess.Popen([*HARNESS, "--scale", "0.5", "--servers", "postfix",
                             "--scenarios", "many", "--timeout", "120", "--workdir", str(work),
                             "--keep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)
    try:
        pidfiles: list[Path] = []
        end = time.monotonic() + 60
        while not pidfiles and time.monotonic() < end and proc.poll() is None:
            pidfiles = [f for f in work.glob("*/*/queue/pid/master.pid") if f.stat().st_size]
            time.sleep(0.05)
        assert pidfiles, "postfix never started"
        master = int(pidfiles[0].read_text().split()[0])
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert procs_using(work) == []
    try:
        state = Path(f"/proc/{master}/stat").read_bytes()
        assert state[state.rfind(b")") + 2:][:1] in (b"Z", b"X")
    except FileNotFoundError:
        pass
