"""The real smtpserver program as the tests run it: launched as inetd would, read reply by reply."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROG = str(ROOT / "bin" / "smtpserver")


def make_site(tmp: Path, *, zextra: bytes = b"", empty_db: bool = False,
              conf: bytes | None = None) -> Path:
    """A POSTOFFICE with its directories, db/, and z.conf naming them (plus ``zextra``);
    with ``empty_db`` an empty policy database, with ``conf`` an smtpserver.conf."""
    po = tmp / "po"
    for d in ("public", "router", "freezer", "transport"):
        (po / d).mkdir(parents=True)
    (tmp / "db").mkdir(exist_ok=True)
    (tmp / "z.conf").write_bytes(
        b"POSTOFFICE=%s\nMAILSHARE=%s\nMAILVAR=%s\n" % (bytes(po), bytes(tmp), bytes(tmp)) + zextra)
    if empty_db:
        make_policy_db(tmp)
    if conf is not None:
        (tmp / "smtpserver.conf").write_bytes(conf)
    return tmp


def make_policy_db(site: Path) -> None:
    """An empty policy database where PARAM policydb btree $MAILVAR/db/smtp-policy looks."""
    from zmailer_smtpd.policy import db as pdb

    pdb.write_db("btree", str(site / "db" / "smtp-policy.db"), [])


def program_env(**extra: str) -> dict[str, str]:
    """This environment without POSIXLY_CORRECT (it would change getopt's argument order)."""
    e = {k: v for k, v in os.environ.items() if k != "POSIXLY_CORRECT"}
    e.update(extra)
    return e


def read_reply(sock: socket.socket, size: int = 4096) -> bytes:
    """One whole SMTP reply, up to and including its final line; end of file fails the test."""
    buf = b""
    while True:
        chunk = sock.recv(size)
        assert chunk, f"EOF; got {buf!r}"
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return buf


def inetd_launch(*args: str, stdout_too: bool = False, stderr: Any = subprocess.DEVNULL,
                 env: dict[str, str] | None = None,
                 timeout: float = 30) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """``smtpserver ARGS`` with an accepted loopback TCP connection on its stdin
    (and stdout with ``stdout_too``), as inetd starts it: (our client end, the process)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    client = socket.create_connection(ls.getsockname(), timeout=timeout)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen([sys.executable, PROG, *args], stdin=conn.fileno(),
                            stdout=conn.fileno() if stdout_too else subprocess.DEVNULL,
                            stderr=stderr, env=env if env is not None else program_env())
    conn.close()
    return client, proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the program if it is still running and collect it; close its stderr pipe."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()
