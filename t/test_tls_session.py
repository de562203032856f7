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
from zmailer_smtpd.session import Session
from zmailer_smtpd.stream import SmtpStream, SocketTransport

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

    def __init__(self, tmp: Path, pki: dict[str, Any], ctx: Any = None, **values: Any) -> None:
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
                **(ctx or {}),
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
            # Harness.run reads commands with a 5 s timeout; a client that is a
            # program (openssl, swaks) may start slower than that under load.
            ctx = self.harness.context()
            sess = Session(ctx, SmtpStream(SocketTransport(conn), cmd_timeout=60, data_timeout=60))
            rc = sess.run()
            self.result = Result(b"", [], ctx.log.lines, sess, self.harness.postoffice, rc)
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


def test_pipelined_starttls_discards_plaintext_per_readme(tmp_path: Path, pki: dict[str, Any]) -> None:
    """spec/README.md: 220, the buffered `EHLO x` is thrown away, the state is "before EHLO"."""
    live = LiveSession(tmp_path, pki)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        read_reply(raw.recv)
        raw.sendall(b"STARTTLS\r\nEHLO x\r\n")
        assert read_reply(raw.recv) == b"220 Ready to start TLS\r\n"
        with client_ctx(pki).wrap_socket(raw, server_hostname="mx.example.org") as s:
            s.sendall(b"NOOP\r\n")
            assert read_reply(s.recv) == b"250 2.0.0 Ok\r\n"  # nothing answered for "EHLO x"
            s.sendall(b"MAIL FROM:<a@example.org>\r\n")
            assert read_reply(s.recv).startswith(b"503 5.5.1 ")  # RFC 3207: HELO/EHLO forgotten
            s.sendall(b"QUIT\r\n")
            read_reply(s.recv)
    res = live.join()
    assert not any(ln.endswith(b"r\tEHLO x\n") for ln in res.log)


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
    # Default mechanisms: PLAIN and LOGIN (spec/README.md), both forms.
    assert b"250-AUTH=LOGIN PLAIN\r\n" in lines and b"250-AUTH LOGIN PLAIN\r\n" in lines
    assert lines[-1] == b"250 HELP\r\n"
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


def test_plain_initial_response_never_in_the_session_log(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki)
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        c.docmd("AUTH", "PLAIN AGFsaWNlAHMzY3JldA==")
    res = live.join()
    logged = b"\n".join(res.log)
    assert b"AGFsaWNlAHMzY3JldA==" not in logged
    assert b"r\tAUTH PLAIN **base64-credentials**" in logged  # the command is logged, redacted


# ---------------------------------------------------------------- implicit TLS, outlook-tls-bug


def _tls_client(port: int, pki: dict[str, Any]) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return client_ctx(pki).wrap_socket(raw, server_hostname="mx.example.org")


def test_smtps_listener_handshakes_before_the_greeting(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, ctx={"listener_kind": "smtps", "local_port": 465})
    with _tls_client(live.port, pki) as c:
        assert read_reply(c.recv).startswith(b"220 mx.example.org ")
        c.sendall(b"EHLO client.example.net\r\n")
        ehlo = read_reply(c.recv)
        assert b"STARTTLS" not in ehlo and b"250-AUTH=LOGIN PLAIN\r\n" in ehlo
        c.sendall(b"STARTTLS\r\n")
        assert read_reply(c.recv).startswith(b"554 5.4.0 ")
        c.sendall(b"QUIT\r\n")
        assert read_reply(c.recv).startswith(b"221 ")
    res = live.join()
    assert res.session.tls_active and res.rc == 0


def test_smtps_handshake_failure_ends_with_status_2(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, ctx={"listener_kind": "smtps", "local_port": 465})
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        raw.sendall(b"EHLO plain.text.client\r\n")
        assert raw.recv(4096)[:3] != b"220"  # no greeting in plaintext: a TLS alert or EOF
    res = live.join()
    assert res.rc == 2
    assert any(b"000-Implicite STARTTLS failed" in ln for ln in res.log)


def test_outlook_tls_bug_answers_a_tls_hello_on_port_587(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, ctx={"local_port": 587}, **{"outlook-tls-bug": True})
    with _tls_client(live.port, pki) as c:
        assert read_reply(c.recv).startswith(b"220 mx.example.org ")
        c.sendall(b"QUIT\r\n")
        assert read_reply(c.recv).startswith(b"221 ")
    res = live.join()
    assert res.session.tls_active and res.rc == 0


def test_outlook_tls_bug_leaves_plain_smtp_alone(tmp_path: Path, pki: dict[str, Any]) -> None:
    """A client that talks first in plaintext is served as SMTP; its bytes are kept."""
    live = LiveSession(tmp_path, pki, ctx={"local_port": 587}, **{"outlook-tls-bug": True})
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        raw.sendall(b"EHLO client.example.net\r\n")
        assert read_reply(raw.recv).startswith(b"220 ")
        assert read_reply(raw.recv).startswith(b"250-mx.example.org Hello client.example.net")
        raw.sendall(b"QUIT\r\n")
        assert read_reply(raw.recv).startswith(b"221 ")
    assert not live.join().session.tls_active


def _client_hello() -> bytes:
    obj = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(),
                                                server_hostname="mx.example.org")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.parametrize("settings", [{"outlook-tls-bug": True}, {}])
def test_no_sniffing_on_port_25_or_without_the_param(tmp_path: Path, pki: dict[str, Any],
                                                     settings: dict[str, Any]) -> None:
    port = 25 if settings else 587
    live = LiveSession(tmp_path, pki, ctx={"local_port": port}, **settings)
    hello = _client_hello()
    assert hello[:1] == b"\x16"
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        raw.sendall(hello)
        assert read_reply(raw.recv).startswith(b"220 mx.example.org ")  # plaintext greeting
    assert not live.join().session.tls_active


# ---------------------------------------------------------------- MSA, MAIL AUTH=, failed AUTH


def _login(c: Any) -> None:
    c.sendall(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")
    assert read_reply(c.recv) == b"235 Authentication successful.\r\n"


@pytest.mark.parametrize("how", [{"values": {"msa-mode": True}}, {"ctx": {"listener_kind": "submit"}}])
def test_msa_mode_needs_authentication(tmp_path: Path, pki: dict[str, Any], how: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, ctx=how.get("ctx"), **how.get("values", {}))
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        assert b"250-ETRN" not in read_reply(raw.recv)
        raw.sendall(b"STARTTLS\r\n")
        assert read_reply(raw.recv) == b"220 Ready to start TLS\r\n"
        with client_ctx(pki).wrap_socket(raw, server_hostname="mx.example.org") as c:
            c.sendall(b"EHLO client.example.net\r\n")
            read_reply(c.recv)
            c.sendall(b"MAIL FROM:<alice@example.org>\r\n")
            assert read_reply(c.recv) == b"530 5.3.0 Sorry [192.0.2.10]; Authentication required\r\n"
            _login(c)
            c.sendall(b"MAIL FROM:<alice@example.org>\r\n")
            assert read_reply(c.recv).startswith(b"250 2.1.0 ")
            c.sendall(b"QUIT\r\n")
            read_reply(c.recv)
    live.join()


@pytest.mark.parametrize("param,ok", [(b"AUTH=<>", True), (b"AUTH=alice+40example.org", True),
                                      (b"AUTH=a+4a", False), (b"AUTH=", False)])
def test_mail_auth_parameter(tmp_path: Path, pki: dict[str, Any], param: bytes, ok: bool) -> None:
    live = LiveSession(tmp_path, pki, **{"auth-login-also-without-tls": True})
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        read_reply(raw.recv)
        raw.sendall(b"MAIL FROM:<alice@example.org> " + param + b"\r\n")
        got = read_reply(raw.recv)
        raw.sendall(b"QUIT\r\n")
        read_reply(raw.recv)
    live.join()
    if ok:
        assert got.startswith(b"250 2.1.0 "), got
    else:
        assert got.split(b"\r\n")[-2].startswith(b"501 5.5.4 "), got


def test_failed_auth_disconnects_and_logs_each_failure(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, **{"auth-login-also-without-tls": True})
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
        read_reply(raw.recv)
        raw.sendall(b"EHLO client.example.net\r\n")
        read_reply(raw.recv)
        got = []
        for _ in range(3):
            raw.sendall(b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n")  # alice / wrong
            got.append(read_reply(raw.recv))
        rest = b""
        while chunk := raw.recv(4096):
            rest += chunk
    res = live.join()
    assert got[0] == got[1] == b"535 Authentication failed\r\n"
    assert got[2].startswith(b"535 Authentication failed\r\n") or got[2] == b"535 Authentication failed\r\n"
    assert (got[2] + rest).endswith(b"421 4.7.0 Too many failed authentication attempts, closing connection\r\n")
    fails = [m for m in live.authlog if m.startswith("AUTH failure from [192.0.2.10]")]
    assert len(fails) == 3 and all("alice" in m for m in fails)
    assert b"d3Jvbmc" not in b"\n".join(res.log)


def test_rcvdfrom_fields_are_off_by_default(tmp_path: Path, pki: dict[str, Any]) -> None:
    """spool.md §5.3: smtp-auth / TLS-CIPHER / TLS-PEER-CN1 only with their rcvd-* PARAMs."""
    live = LiveSession(tmp_path, pki)
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        c.login("alice", "s3cret")
        c.sendmail("alice@example.org", ["bob@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
    res = live.join()
    (spool,) = res.files().values()
    (rcvdfrom,) = [ln for ln in spool.split(b"\n") if ln.startswith(b"rcvdfrom ")]
    for field in (b"smtp-auth:", b"TLS-CIPHER:", b"TLS-PEER-CN1:"):
        assert field not in rcvdfrom
    assert b"with ESMTPSA\n" in spool


def test_rcvdfrom_fields_when_switched_on(tmp_path: Path, pki: dict[str, Any]) -> None:
    live = LiveSession(tmp_path, pki, **{"rcvd-auth-user": True, "rcvd-tls-mode": True, "rcvd-tls-peer": True})
    with smtplib.SMTP("127.0.0.1", live.port, local_hostname="client.example.net", timeout=30) as c:
        c.starttls(context=client_ctx(pki))
        c.ehlo()
        c.login("alice", "s3cret")
        c.sendmail("alice@example.org", ["bob@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
    res = live.join()
    (spool,) = res.files().values()
    (rcvdfrom,) = [ln for ln in spool.split(b"\n") if ln.startswith(b"rcvdfrom ")]
    assert b' smtp-auth: "alice" ' in rcvdfrom
    assert f' TLS-CIPHER: "{res.session.tls_info.cipher_info}" '.encode() in rcvdfrom
    assert b" TLS-PEER-CN1: <none>" in rcvdfrom
