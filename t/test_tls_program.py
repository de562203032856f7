"""Implicit TLS with the real program: `-t` under -n and -i on a TCP socket (issue 5;
interfaces.md §4.4): the handshake comes before the greeting; a failed one is
logged as "Implicite STARTTLS failed" and the program exits 2.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from progkit import PROG, inetd_launch, make_site, program_env, read_reply, stop


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Any]:
    ca = trustme.CA()
    srv = ca.issue_cert("mx.example.org", "127.0.0.1")
    srv.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    srv.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    make_site(tmp_path, empty_db=True, conf=(
        b"PARAM policydb btree $MAILVAR/db/smtp-policy\nPARAM use-tls\n"
        b"PARAM tls-cert-file $MAILVAR/cert.pem\nPARAM tls-key-file $MAILVAR/key.pem\n"
        b"PARAM rcvd-tls-mode\n*       ve\n"))
    return {"dir": tmp_path, "ca": ca, "po": tmp_path / "po"}


def _start(site: dict[str, Any], mode: str) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    d = site["dir"]
    return inetd_launch(mode, "-t", "-Z", str(d / "z.conf"), "-l", str(d / "log"),
                        stdout_too=True, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=30)
    finally:
        stop(proc)


@pytest.mark.parametrize("mode", ["-n", "-i"])
def test_dash_t_greets_inside_tls_and_spools_the_cipher(site: dict[str, Any], mode: str) -> None:
    client, proc = _start(site, mode)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    site["ca"].configure_trust(ctx)
    with ctx.wrap_socket(client, server_hostname="mx.example.org") as c:
        assert read_reply(c).startswith(b"220 ")
        c.sendall(b"EHLO client.example.net\r\n")
        assert b"STARTTLS" not in read_reply(c)
        for cmd in (b"MAIL FROM:<a@example.net>", b"RCPT TO:<b@example.org>", b"DATA"):
            c.sendall(cmd + b"\r\n")
            assert read_reply(c)[:1] in (b"2", b"3")
        c.sendall(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        assert read_reply(c).startswith(b"250 ")
        c.sendall(b"QUIT\r\n")
        assert read_reply(c).startswith(b"221 ")
    assert _finish(proc) == 0
    (name,) = os.listdir(site["po"] / "router")
    spooled = (site["po"] / "router" / name).read_bytes()
    assert b"TLS-CIPHER: " in spooled and b"with ESMTPS" in spooled


@pytest.mark.parametrize("mode", ["-n", "-i"])
def test_dash_t_handshake_failure_exits_2_and_logs(site: dict[str, Any], mode: str) -> None:
    client, proc = _start(site, mode)
    with client:
        client.sendall(b"EHLO not.tls\r\n")
        got = client.recv(4096)
        assert not got.startswith(b"220")
    assert _finish(proc) == 2
    assert b"Implicite STARTTLS failed" in (site["dir"] / "log").read_bytes()
    assert os.listdir(site["po"] / "router") == []


def test_swaks_tlsc_against_dash_n_dash_t(site: dict[str, Any]) -> None:
    """swaks --tlsc (implicit TLS, as on port 465) against `-n -t`: the whole dialogue inside TLS."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    sw = subprocess.Popen(
        ["swaks", "--server", f"127.0.0.1:{port}", "--tlsc", "--helo", "client.example.net",
         "--from", "a@example.net", "--to", "b@example.org", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lsock.settimeout(30)
    conn, _ = lsock.accept()
    lsock.close()
    d = site["dir"]
    proc = subprocess.Popen([sys.executable, PROG, "-n", "-t", "-Z", str(d / "z.conf"), "-l", str(d / "log")],
                            stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.PIPE,
                            env=program_env())
    conn.close()
    out, _ = sw.communicate(timeout=60)
    assert sw.returncode == 0, out.decode("latin-1")
    assert b"=== TLS started" in out and b"<~  220 " in out  # greeting arrives inside TLS
    assert b"<~  250 2.0.0 " in out
    assert _finish(proc) == 0
    (name,) = os.listdir(site["po"] / "router")
    spooled = (site["po"] / "router" / name).read_bytes()
    assert b"TLS-CIPHER: " in spooled and b"with ESMTPS" in spooled
