"""STARTTLS and AUTH in whole sessions over real loopback sockets (vectors T1–T6, A7).

The server is session.py's Session on a SocketTransport with tls.ServerTLS and
auth.Authenticator as its collaborators (fixture F0 of sessionkit); the
clients are raw sockets with Python's ssl, smtplib, `openssl s_client` and swaks.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from sessionkit import Harness, Result

from zmailer_smtpd import auth, config, tls
from zmailer_smtpd.stream import SocketTransport

PEERS = Path(__file__).parent / "peers"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="Example CA")
    srv = ca.issue_cert("mx.example.org", "127.0.0.1", key_type=trustme.KeyType.RSA)
    client = ca.issue_cert("client.example", common_name="client.example", organization_name="Example")
    out: dict[str, Any] = {"ca": ca}
    for name, blob in (("cert", srv.cert_chain_pems[0]), ("key", srv.private_key_pem),
                       ("cafile", ca.cert_pem), ("client", client.private_key_and_cert_chain_pem)):
        path = d / f"{name}.pem"
        blob.write_to_path(str(path))
        out[name] = path
    return out


class LiveSession:
    """One Session on an accepted loopback socket, in a thread."""

    def __init__(self, tmp: Path, pki: dict[str, Any], **values: Any) -> None:
        self.values = {
            "use-tls": True,
            "tls-cert-file": str(pki["cert"]),
            "tls-key-file": str(pki["key"]),
            "smtp-auth": True,
            "smtp-auth-pipe": str(PEERS / "authpipe_good.py"),
            **values,
        }
        settings = config.Settings.from_values(self.values)
        self.authlog: list[str] = []
        self.harness = Harness(
            tmp,
            values=self.values,
            ctx_extra={
                "tls": tls.ServerTLS.from_settings(settings),
                "auth": auth.Authenticator(settings, log=self.authlog.append, syslog=lambda _p, _m: None),
            },
        )
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.lsock.accept()
        try:
            self.result = self.harness.run(transport=SocketTransport(conn))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            conn.close()
            self.lsock.close()

    def join(self) -> Result:
        self.thread.join(60)
        assert not self.thread.is_alive(), "session hung"
        assert self.error is None, repr(self.error)
        assert self.result is not None
        return self.result


def read_reply(recv: Any) -> bytes:
    """One whole (multi-line) SMTP reply."""
    data = b""
    while True:
        chunk = recv(1)
        if not chunk:
            return data
        data += chunk
        if data.endswith(b"\r\n"):
            last = data[:-2].rsplit(b"\r\n", 1)[-1]
            if len(last) >= 4 and last[3:4] == b" ":
                return data


def client_ctx(pki: dict[str, Any], version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki["ca"].configure_trust(ctx)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"), pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]


@pytest.mark.parametrize("version", VERSIONS)
def test_t1_starttls_then_ehlo_inside(tmp_path: Path, pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        assert read_reply(raw.recv).startswith(b"220 mx.example.org")
        raw.sendall(b"EHLO client.example.net\r\n")
        plain_ehlo = read_reply(raw.recv)
        assert b"250-STARTTLS\r\n" in plain_ehlo and b"AUTH" not in plain_ehlo  # AUTH only under TLS
        raw.sendall(b"STARTTLS\r\n")
        assert read_reply(raw.recv) == b"220 Ready to start TLS\r\n"
        with client_ctx(pki, version).wrap_socket(raw, server_hostname="mx.example.org") as s:
            s.sendall(b"EHLO client.example.net\r\n")
            ehlo = read_reply(s.recv)
            assert ehlo.startswith(b"250-mx.example.org Hello client.example.net\r\n")
            assert b"STARTTLS" not in ehlo and b"250-AUTH" in ehlo and ehlo.endswith(b"250 HELP\r\n")
            s.sendall(b"STARTTLS\r\n")
            assert read_reply(s.recv) == b"554 5.4.0 TLS already active, restart not allowed!\r\n"
            s.sendall(b"QUIT\r\n")
            assert read_reply(s.recv).startswith(b"221 ")
    res = live.join()
    assert res.session.tls_active
    assert res.session.tls_info.protocol == {"tls1.2": "TLSv1.2", "tls1.3": "TLSv1.3"}[
        "tls1.2" if version == ssl.TLSVersion.TLSv1_2 else "tls1.3"]


def test_t3_argument_refused(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"STARTTLS now\r\n")
        assert read_reply(raw.recv) == b"501 5.1.3 Extra junk following 'STARTTLS' command!\r\n"
        raw.sendall(b"QUIT\r\n")
        read_reply(raw.recv)
    live.join()


def test_t6_handshake_failure_ends_the_session_without_a_reply(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"STARTTLS\r\n")
        assert read_reply(raw.recv) == b"220 Ready to start TLS\r\n"
        raw.sendall(b"EHLO this is not a client hello\r\n")
        rest = b""
        while chunk := raw.recv(4096):
            rest += chunk
        assert not rest.startswith((b"2", b"4", b"5"))  # a TLS alert at most
    assert live.join().rc == 2


def test_injected_plaintext_is_never_answered_inside_tls(tmp_path: Path, pki: dict[str, Any]) -> None:
    """`STARTTLS\\r\\nEHLO x\\r\\n` in one write: the EHLO never gets an answer under TLS.

    Either the server refuses the STARTTLS (3.0.1, T2) and the EHLO is
    handled in plaintext, or it starts TLS and throws the EHLO away
    (spec/README.md); in the TLS case the first reply inside TLS must be
    the one to our own NOOP.
    """
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        read_reply(raw.recv)
        raw.sendall(b"STARTTLS\r\nEHLO x\r\n")
        first = read_reply(raw.recv)
        if first.startswith(b"501 "):
            assert first == b"501 5.1.3 Extra junk following 'STARTTLS' command!\r\n"
            assert read_reply(raw.recv).startswith(b"250-mx.example.org Hello x\r\n")  # plaintext
            raw.sendall(b"QUIT\r\n")
            read_reply(raw.recv)
        else:
            assert first == b"220 Ready to start TLS\r\n"
            with client_ctx(pki).wrap_socket(raw, server_hostname="mx.example.org") as s:
                s.sendall(b"NOOP\r\n")
                assert read_reply(s.recv).startswith(b"250 ")
                s.sendall(b"QUIT\r\n")
                read_reply(s.recv)
    live.join()


@pytest.mark.xfail(strict=True, reason="session.py answers 501 to pipelined STARTTLS (3.0.1, "
                   "interfaces.md §8.4 T2); spec/README.md and issue 5 want 220, discard, handshake")
def test_pipelined_starttls_discards_plaintext_per_readme(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        read_reply(raw.recv)
        raw.sendall(b"STARTTLS\r\nEHLO x\r\n")
        try:
            assert read_reply(raw.recv) == b"220 Ready to start TLS\r\n"
        finally:
            raw.sendall(b"QUIT\r\n")
            live.join()


def test_smtplib_starttls_login_and_a_message(tmp_path: Path, pki: dict[str, Any]) -> None:
    """Vector A7 in spirit: the spool file carries cipher, smtp-auth user and ESMTPSA."""
    live = LiveSession(tmp_path, pki, **{"rcvd-auth-user": True, "rcvd-tls-mode": True, "rcvd-tls-peer": True})
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.ehlo()
        assert not c.has_extn("auth")
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        assert c.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("alice", "wrong")
        assert c.login("alice", "s3cret")[0] == 235
        c.sendmail("alice@example.org", ["bob@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
    res = live.join()
    assert res.session.authuser == b"alice"
    (spool,) = res.files().values()
    info = res.session.tls_info
    assert b'comment smtp-auth: "alice"\n' in spool
    assert b"with ESMTPSA\n" in spool
    assert f'TLS-CIPHER: "{info.cipher_info}"'.encode() in spool
    assert b"TLS-PEER-CN1: <none>" in spool and b"TLS-PEER: <none>" in spool
    logged = b"\n".join(res.log)
    assert b"s3cret" not in logged and b"wrong" not in logged
    assert b"czNjcmV0" not in logged and b"d3Jvbmc=" not in logged  # nor in base64
    assert not any("s3cret" in m for m in live.authlog)
    assert any("AUTH failure from" in m and "alice" in m for m in live.authlog)


def test_client_certificate_subject_reaches_the_spool(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, **{"tls-cafile": str(pki["cafile"]), "tls-ask-cert": 1,
                                         "rcvd-tls-peer": True})
    ctx = client_ctx(pki)
    ctx.load_cert_chain(str(pki["client"]))
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.starttls(context=ctx)
        c.ehlo()
        c.sendmail("carol@example.org", ["bob@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
    res = live.join()
    subject = res.session.tls_info.peer_subject
    assert subject.endswith("/CN=client.example") and res.session.tls_info.verify_ok
    spool = next(iter(res.files().values()))
    assert f'TLS-PEER-CN1: "{subject}"'.encode() in spool


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
@pytest.mark.parametrize("flag", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_against_the_session(tmp_path: Path, pki: dict[str, Any], flag: str) -> None:
    """Interactive: EHLO first, QUIT only after its reply (no pipelining before EHLO)."""
    live = LiveSession(tmp_path, pki)
    proc = subprocess.Popen(
        ["openssl", "s_client", "-starttls", "smtp", "-name", "client.example.net", "-quiet",
         "-connect", f"127.0.0.1:{live.port}", flag, "-CAfile", str(pki["cafile"]),
         "-verify_return_error", "-ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"EHLO client.example.net\r\n")
        proc.stdin.flush()
        lines: list[bytes] = []
        while not lines or not lines[-1].startswith((b"250 ", b"5")):
            line = proc.stdout.readline()
            assert line, b"".join(lines)
            lines.append(line)
        proc.stdin.write(b"QUIT\r\n")
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.wait()
    finally:
        watchdog.cancel()
    live.join()
    assert b"250-AUTH=LOGIN\r\n" in lines and lines[-1] == b"250 HELP\r\n"
    assert rest.startswith(b"221 ")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks missing")
def test_swaks_tls_auth_login(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    out = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{live.port}", "--helo", "client.example.net",
         "--tls", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret",
         "--from", "alice@example.org", "--to", "bob@example.net", "--timeout", "30"],
        capture_output=True, timeout=120, check=False,
    )
    live.join()
    assert b"235 Authentication successful." in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0


@pytest.mark.xfail(strict=True, reason="session.py logs the whole AUTH command line; it should log "
                   "auth.Authenticator.redact_command(line) (a PLAIN initial response holds the password)")
def test_plain_initial_response_never_in_the_session_log(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        c.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
    res = live.join()
    assert b"AGFsaWNlAHMzY3JldA==" not in b"\n".join(res.log)
