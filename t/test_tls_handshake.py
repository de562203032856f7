"""Real TLS handshakes over loopback: TLS 1.2 and 1.3, client certificates, openssl s_client.

The server side is zmailer_smtpd.tls on an accepted socket (a thread); the
clients are Python's ssl module and `openssl s_client -starttls smtp`.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from zmailer_smtpd import config, tls


def Settings(values: dict[str, object] | None = None) -> config.Settings:  # noqa: N802
    """The real Settings of config.py, made from keyword -> value."""
    return config.Settings.from_values(values)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="Example CA")
    rogue = trustme.CA(organization_name="Rogue CA")
    srv = ca.issue_cert("mx.example.net", "127.0.0.1", key_type=trustme.KeyType.RSA)
    good = ca.issue_cert("client.example", common_name="client.example", organization_name="Example")
    bad = rogue.issue_cert("evil.example", common_name="evil.example", organization_name="Evil")
    out: dict[str, Any] = {"ca": ca, "good": good, "bad": bad}
    for name, blob in (
        ("cert", srv.cert_chain_pems[0]),
        ("key", srv.private_key_pem),
        ("cafile", ca.cert_pem),
        ("good_pem", good.private_key_and_cert_chain_pem),
        ("bad_pem", bad.private_key_and_cert_chain_pem),
    ):
        path = d / f"{name}.pem"
        blob.write_to_path(str(path))
        out[name] = path
    return out


def server_settings(pki: dict[str, Any], **extra: object) -> config.Settings:
    return Settings(
        {"use-tls": True, "tls-cert-file": str(pki["cert"]), "tls-key-file": str(pki["key"]), **extra}
    )


class OneShotServer:
    """Accept one connection on 127.0.0.1 and run `body(conn)` in a thread."""

    def __init__(self, body: Callable[[socket.socket], Any]) -> None:
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(body,), daemon=True)
        self.thread.start()

    def _run(self, body: Callable[[socket.socket], Any]) -> None:
        conn, _ = self.lsock.accept()
        try:
            self.result = body(conn)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            conn.close()
            self.lsock.close()

    def join(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive(), "server thread hung"
        return self.result


def read_line(t: Any) -> bytes:
    """One line from a TLS transport, byte by byte (nothing of the next is taken)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = t.recv(1)
        assert chunk, "EOF before a line"
        line += chunk
    return line


def echo_once(server: Any) -> Callable[[socket.socket], Any]:
    """Handshake, read one line, answer it in upper case, return the facts."""

    def body(conn: socket.socket) -> Any:
        t = server.handshake(conn, timeout=20)
        line = read_line(t)
        t.send(line.upper())
        t.close()
        return t.info

    return body


def client_ctx(pki: dict[str, Any], version: ssl.TLSVersion, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki["ca"].configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(str(pki[cert]))
    return ctx


def talk(port: int, ctx: ssl.SSLContext, text: bytes = b"hello\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="mx.example.net") as s:
            s.sendall(text)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
            return data


VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"), pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]


@pytest.mark.parametrize("version", VERSIONS)
def test_handshake_and_data(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    server = tls.ServerTLS(server_settings(pki))
    srv = OneShotServer(echo_once(server))
    assert talk(srv.port, client_ctx(pki, version)) == b"HELLO\n"
    info = srv.join()
    assert srv.error is None
    assert info.protocol == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert info.cipher and info.secret_bits >= 128
    assert info.cipher_info == f"{info.cipher} keybits {info.secret_bits}/{info.secret_bits} version {info.cipher_version}"
    assert info.peer_subject is None and info.verify_ok is None


@pytest.mark.parametrize("version", VERSIONS)
def test_ask_cert_records_a_good_client_certificate(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-ask-cert": 1}))
    srv = OneShotServer(echo_once(server))
    assert talk(srv.port, client_ctx(pki, version, "good_pem")) == b"HELLO\n"
    info = srv.join()
    assert info.verify_ok is True and info.verify_errors == []
    assert info.peer_subject == "/O=Example/OU=" + _ou(pki["good"]) + "/CN=client.example"
    assert info.peer_cn == "client.example"
    assert info.peer_issuer is not None and "/O=Example CA/" in info.peer_issuer
    assert info.peer_fingerprint is not None and len(info.peer_fingerprint.split("-")) == 16


def _ou(leaf: trustme.LeafCert) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)


@pytest.mark.parametrize("version", VERSIONS)
def test_ask_cert_records_a_bad_client_certificate_without_failing(
    pki: dict[str, Any], version: ssl.TLSVersion
) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-ask-cert": 1}))
    srv = OneShotServer(echo_once(server))
    assert talk(srv.port, client_ctx(pki, version, "bad_pem")) == b"HELLO\n"
    info = srv.join()
    assert info.verify_ok is False
    code, depth, text = info.verify_errors[0]
    assert (code, depth) == (20, 0)  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert "issuer" in text
    assert info.peer_cn == "evil.example"


@pytest.mark.parametrize("version", VERSIONS)
def test_ask_cert_without_client_certificate(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-ask-cert": 1}))
    srv = OneShotServer(echo_once(server))
    assert talk(srv.port, client_ctx(pki, version)) == b"HELLO\n"
    info = srv.join()
    assert info.peer_subject is None and info.verify_ok is None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cert", [None, "bad_pem"])
def test_require_cert_refuses(pki: dict[str, Any], version: ssl.TLSVersion, cert: str | None) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-require-cert": 1}))
    srv = OneShotServer(echo_once(server))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reply = talk(srv.port, client_ctx(pki, version, cert))
        assert reply == b"", "the server must not answer"  # TLS 1.3: refusal seen at read
        raise ConnectionError("closed without data")
    srv.join()
    assert isinstance(srv.error, tls.TLSError)
    assert "SSL_accept error" in str(srv.error)


@pytest.mark.parametrize("version", VERSIONS)
def test_require_cert_accepts_a_good_certificate(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-require-cert": 1}))
    srv = OneShotServer(echo_once(server))
    assert talk(srv.port, client_ctx(pki, version, "good_pem")) == b"HELLO\n"
    assert srv.join().verify_ok is True


def test_sniffed_bytes_are_given_back_to_the_handshake(pki: dict[str, Any]) -> None:
    """outlook-tls-bug: a byte read to sniff the hello is pushed back."""
    server = tls.ServerTLS(server_settings(pki))

    def body(conn: socket.socket) -> Any:
        first = conn.recv(1)
        assert first == b"\x16"  # a TLS handshake record
        return echo_once(_Pushback(server, first))(conn)

    srv = OneShotServer(body)
    assert talk(srv.port, client_ctx(pki, ssl.TLSVersion.TLSv1_3)) == b"HELLO\n"
    assert srv.join() is not None and srv.error is None


class _Pushback:
    def __init__(self, server: tls.ServerTLS, initial: bytes) -> None:
        self.server, self.initial = server, initial

    def handshake(self, conn: socket.socket, timeout: float) -> tls.TLSTransport:
        return self.server.handshake(conn, initial=self.initial, timeout=timeout)


def test_pipelined_plaintext_is_buffered_and_reported(pki: dict[str, Any]) -> None:
    """Two lines in one TLS write: both decrypted at once; pending() says so."""
    server = tls.ServerTLS(server_settings(pki))

    def body(conn: socket.socket) -> Any:
        t = server.handshake(conn, timeout=20)
        first = t.recv(6)
        left = t.pending()
        rest = t.recv(100)
        t.send(b"ok\n")
        tail = t.recv(100)  # client closes: EOF
        t.close()
        return first, left, rest, tail

    srv = OneShotServer(body)
    ctx = client_ctx(pki, ssl.TLSVersion.TLSv1_3)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="mx.example.net") as s:
            s.sendall(b"EHLO x\r\nNOOP\r\n")
            got = s.recv(10)
            s.unwrap()
    result = srv.join()
    assert srv.error is None, repr(srv.error)
    assert got == b"ok\n"
    first, left, rest, tail = result
    assert (first, left, rest, tail) == (b"EHLO x", 8, b"\r\nNOOP\r\n", b"")


def test_handshake_on_plaintext_fails_cleanly(pki: dict[str, Any]) -> None:
    server = tls.ServerTLS(server_settings(pki))
    srv = OneShotServer(lambda conn: server.handshake(conn, timeout=20))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(b"EHLO client.example.org\r\n")
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):  # an alert at most, never an SMTP reply
            pass
    srv.join()
    assert isinstance(srv.error, tls.TLSError)


def test_handshake_eof(pki: dict[str, Any]) -> None:
    server = tls.ServerTLS(server_settings(pki))
    srv = OneShotServer(lambda conn: server.handshake(conn, timeout=20))
    socket.create_connection(("127.0.0.1", srv.port), timeout=20).close()
    srv.join()
    assert isinstance(srv.error, tls.TLSError)


# -- openssl s_client -starttls smtp against a minimal STARTTLS dialogue -------


def mini_smtp(server: tls.ServerTLS) -> Callable[[socket.socket], Any]:
    """Just enough SMTP for s_client: greeting, EHLO, STARTTLS, then QUIT inside TLS."""

    def lines(recv: Callable[[int], bytes]) -> Iterator[bytes]:
        buf = b""
        while True:
            while b"\n" not in buf:
                chunk = recv(4096)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            yield line.rstrip(b"\r")

    def body(conn: socket.socket) -> Any:
        conn.sendall(b"220 mx.example.net ESMTP\r\n")
        for line in lines(conn.recv):
            verb = line.split(b" ")[0].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-mx.example.net Hello\r\n250-STARTTLS\r\n250 HELP\r\n")
            elif verb == b"STARTTLS":
                conn.sendall(b"220 Ready to start TLS\r\n")
                break
        t = server.handshake(conn, timeout=20)
        seen = []
        for line in lines(t.recv):
            seen.append(line)
            if line.upper() == b"QUIT":
                t.send(b"221 mx.example.net Out\r\n")
                break
            t.send(b"250 ok\r\n")
        return t.info, seen

    return body


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
@pytest.mark.parametrize("flag, proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_openssl_s_client_starttls(pki: dict[str, Any], flag: str, proto: str) -> None:
    server = tls.ServerTLS(server_settings(pki, **{"tls-cafile": str(pki["cafile"]), "tls-ask-cert": 1}))
    srv = OneShotServer(mini_smtp(server))
    out = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{srv.port}", flag,
         "-CAfile", str(pki["cafile"]), "-cert", str(pki["good_pem"]), "-ign_eof"],
        input=b"NOOP\r\nQUIT\r\n", capture_output=True, timeout=60, check=False,
    )
    info, seen = srv.join()
    assert srv.error is None, srv.error
    assert seen == [b"NOOP", b"QUIT"]
    assert info.protocol == proto and info.verify_ok is True
    assert b"Verify return code: 0 (ok)" in out.stdout
    assert b"221 mx.example.net Out" in out.stdout


def test_loglevel_1_logs_the_connection_and_keeps_the_old_transport_alive(pki: dict[str, Any]) -> None:
    log: list[str] = []
    server = tls.ServerTLS(server_settings(pki, **{"tls-loglevel": 1}), log=log.append)

    class Holder:  # a plaintext transport whose socket object owns the fd
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def fileno(self) -> int:
            return self.sock.fileno()

    def body(conn: socket.socket) -> Any:
        t = server.handshake(Holder(conn.dup()), timeout=20)  # only t references the dup
        line = b""
        while not line.endswith(b"\n"):
            line += t.recv(100)
        t.send(line.upper())
        return t.info

    srv = OneShotServer(body)
    assert talk(srv.port, client_ctx(pki, ssl.TLSVersion.TLSv1_3)) == b"HELLO\n"
    info = srv.join()
    assert "TLS connection established" in log and f"Cipher: {info.cipher_info}" in log
    quiet: list[str] = []
    tls.ServerTLS(server_settings(pki), log=quiet.append)
    assert quiet == []
