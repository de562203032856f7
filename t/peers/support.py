"""Shared bits of the t/test_ext_* tests: where the peers are, how to run them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PEERS = Path(__file__).resolve().parent


def peer(name: str) -> str:
    return str(PEERS / name)


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


@contextmanager
def server(name: str, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start a TCP peer; yield (port, process) once it printed READY."""
    proc = subprocess.Popen(
        [sys.executable, peer(name), *args], stdout=subprocess.PIPE, env=env, close_fds=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == b"READY", line
        yield (int(line[1]) if len(line) > 1 else 0), proc
    finally:
        proc.kill()
        proc.wait()
