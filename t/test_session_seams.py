"""The session's collaborators, with the real modules: STARTTLS (tls.ServerTLS over a
socket pair, Python's ssl as the client), the content filter and the interactive
router (stand-in peers), AUTH LOGIN."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from peers.support import peer
from sessionkit import Harness, cmds, crlf
from spoolutil import mask_spoolid

from zmailer_smtpd import auth, config, tls
from zmailer_smtpd.contentfilter import ContentFilter
from zmailer_smtpd.router import RouterClient
from zmailer_smtpd.session import Session
from zmailer_smtpd.stream import SmtpStream, SocketTransport

pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


# ---------------------------------------------------------------- STARTTLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    srv = ca.issue_cert("mx.example.org", key_type=trustme.KeyType.RSA)
    srv.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    srv.private_key_pem.write_to_path(str(d / "key.pem"))
    return {"ca": ca, "cert": str(d / "cert.pem"), "key": str(d / "key.pem")}


class Client:
    """Line-oriented test client over a socket (plain, then TLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return lines


def run_in_thread(h: Harness, sock: socket.socket, **ctx: Any) -> tuple[threading.Thread, dict[str, Any]]:
    c = h.context()
    for k, v in ctx.items():
        setattr(c, k, v)
    box: dict[str, Any] = {}

    def body() -> None:
        s = Session(c, SmtpStream(SocketTransport(sock), cmd_timeout=60, data_timeout=60))
        box["rc"] = s.run()
        box["session"] = s
        sock.close()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


def test_starttls_discards_plaintext_and_resets_state(h: Harness, pki: dict[str, Any]) -> None:
    h.values.update({"use-tls": True, "tls-cert-file": pki["cert"], "tls-key-file": pki["key"]})
    server_tls = tls.ServerTLS.from_settings(h.context().settings)
    assert server_tls is not None
    a, b = socket.socketpair()
    t, box = run_in_thread(h, a, tls=server_tls)
    cl = Client(b)
    assert cl.reply()[0].startswith(b"220 mx.example.org")
    cl.send(b"EHLO client.example.net\r\n")
    caps = cl.reply()
    assert b"250-STARTTLS" in caps
    # the injected command after STARTTLS must never be executed (RFC 3207, CVE-2011-0411)
    cl.send(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
    assert cl.reply() == [b"220 Ready to start TLS"]
    ctx = ssl.create_default_context()
    pki["ca"].configure_trust(ctx)
    ctx.check_hostname = False
    tsock = ctx.wrap_socket(b, server_hostname="mx.example.org")
    tc = Client(tsock)
    tc.send(b"MAIL FROM:<alice@example.net>\r\n")
    assert tc.reply() == [b"503 5.5.1 Hello [192.0.2.10], Waiting for HELO/EHLO command"]
    tc.send(b"EHLO client.example.net\r\n")
    caps2 = tc.reply()
    assert b"250-STARTTLS" not in caps2 and caps2[-1] == b"250 HELP"
    tc.send(b"STARTTLS\r\n")
    assert tc.reply() == [b"554 5.4.0 TLS already active, restart not allowed!"]
    tc.send(b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert tc.reply()[0].startswith(b"250 2.1.0")
    tc.reply()
    assert tc.reply() == [b"354 Start mail input; end with <CRLF>.<CRLF>"]
    tc.send(b"Subject: tls\r\n\r\nsecret\r\n.\r\nQUIT\r\n")
    assert tc.reply()[0].startswith(b"250 2.0.0 accepted; S")
    assert tc.reply() == [b"221 2.0.0 mx.example.org Out"]
    t.join(10)
    assert not t.is_alive()
    tsock.close()
    (data,) = {k: v for k, v in _files(h).items()}.values()
    assert b"\nwith ESMTPS\n" in data
    assert b"TLS-CIPHER: <none>" not in data and b"TLS-CIPHER: \"" in data
    assert b"injected" not in data


def test_starttls_refusals(h: Harness) -> None:
    r = h.run(*cmds("STARTTLS"))
    assert r.output.endswith(crlf("502 5.4.0 Command not implemented"))


def _files(h: Harness) -> dict[str, bytes]:
    from spoolutil import spool_files

    return {k: v for k, v in spool_files(h.postoffice).items() if not k.startswith(".")}


# ---------------------------------------------------------------- content filter


@pytest.mark.parametrize(
    "script,reply,where",
    [
        (b"-1 550 5.7.1 No spam here\n", b"550 5.7.1 Content-Policy reject msg: No spam here; <spoolid>", None),
        (b"0 Thanks\n", b"250 2.0.0 Thanks; <spoolid>", "router/"),
        (b"1 Held\n", b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: Held; <spoolid>", "freezer/"),
    ],
)
def test_content_filter_verdicts(h: Harness, script: bytes, reply: bytes, where: str | None) -> None:
    cf = ContentFilter(peer("contentfilter.py"), cwd=h.postoffice, start_timeout=30, answer_timeout=30)
    h.ctx_extra["contentfilter"] = cf
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", "RCPT TO:<b@example.org>", "DATA"),
        b"Subject: f\r\n\r\nPEER-SCRIPT\r\n" + script.replace(b"\n", b"\r\n") + b".\r\n",
        *cmds("QUIT"),
    )
    assert mask_spoolid(r.output).endswith(reply + b"\r\n221 2.0.0 mx.example.org Out\r\n")
    files = r.files()
    if where is None:
        assert files == {}
    else:
        assert len(files) == 1 and next(iter(files)).startswith(where)
    assert cf.pid is None  # closed at session end


# ---------------------------------------------------------------- interactive router


def _router_session(h: Harness, tmp_path: Path, style: bytes) -> tuple[list[bytes], list[str]]:
    rlog = tmp_path / "rlog"
    rc = RouterClient(peer("router.py"), "/etc/zmailer/zmailer.conf", b"[192.0.2.10]",
                      env=dict(os.environ, PEER_LOG=str(rlog)), start_timeout=30, answer_timeout=30)
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n*       " + style + b"\n"
    h.values["enable-router"] = True
    h.ctx_extra["router"] = rc
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"))
    out = r.output.split(b"250 HELP\r\n", 1)[1]
    asked = []
    if rlog.exists():
        asked = [x["request"] for x in map(json.loads, rlog.read_text().splitlines()) if "request" in x]
    return out.split(b"\r\n")[:-1], asked


def test_router_checks_mail_and_rcpt_with_the_f_and_t_style_flags(h: Harness, tmp_path: Path) -> None:
    """spec/README.md: the f/t style flags switch the router checks on, as the manual says."""
    lines, asked = _router_session(h, tmp_path, b"veft")
    assert lines[0].endswith(b"; Ok") and lines[0][:1] == b"2"
    assert lines[-1][:1] == b"2"
    assert asked == ["from\talice@example.net\n", "to\tbob@example.org\n"]


@pytest.mark.parametrize("style,want", [
    (b"ve", []),                                    # the default style: no MAIL/RCPT checks
    (b"vef", ["from\talice@example.net\n"]),        # only MAIL
    (b"vet", ["to\tbob@example.org\n"]),            # only RCPT
    (b"veftF", ["to\tbob@example.org\n"]),          # F wins over f
    (b"veftT", ["from\talice@example.net\n"]),      # T wins over t
    (b"veftFT", []),
])
def test_router_checks_follow_the_style_flags(h: Harness, tmp_path: Path, style: bytes, want: list[str]) -> None:
    lines, asked = _router_session(h, tmp_path, style)
    assert asked == want
    assert lines[0].startswith(b"250 2.") and lines[1].startswith(b"250 2.")
    if not any(w.startswith("from") for w in want):
        assert lines[0].startswith(b"250 2.1.0 Sender syntax Ok")
    if not any(w.startswith("to") for w in want):
        assert lines[1].startswith(b"250 2.1.5 Recipient address syntax Ok")


def test_router_checks_need_enable_router(h: Harness, tmp_path: Path) -> None:
    h.values["enable-router"] = False
    rlog = tmp_path / "rlog"
    rc = RouterClient(peer("router.py"), "/etc/zmailer/zmailer.conf", b"[192.0.2.10]",
                      env=dict(os.environ, PEER_LOG=str(rlog)), start_timeout=30, answer_timeout=30)
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n*       veft\n"
    h.ctx_extra["router"] = rc
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"))
    assert b"250 2.1.0 Sender syntax Ok" in r.output and b"250 2.1.5 Recipient address syntax Ok" in r.output
    assert not rlog.exists() or "request" not in rlog.read_text()


# ---------------------------------------------------------------- AUTH LOGIN


def use_auth(h: Harness, max_failures: int = auth.MAX_SESSION_FAILURES, **values: Any) -> None:
    """The real auth.Authenticator over h.values; the auth pipe knows joe/secret."""
    h.values.update({"smtp-auth": True, "smtp-auth-pipe": peer("authpipe_joe.py"), **values})
    settings = config.Settings.from_values(h.values)
    h.ctx_extra["auth"] = auth.Authenticator(settings, syslog=lambda _p, _m: None, max_failures=max_failures)


@pytest.mark.parametrize(
    "lines,tail",
    [
        (["AUTH LOGIN am9l", "c2VjcmV0"], ["334 UGFzc3dvcmQ6", "235 Authentication successful."]),
        (["AUTH LOGIN", "am9l", "d3Jvbmc="], ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "535 Authentication failed"]),
        (["AUTH LOGIN", "*"], ["334 VXNlcm5hbWU6", "501 AUTH command cancelled"]),
        (["AUTH PLAIN AGpvZQBzZWNyZXQ="], ["504 5.7.1 Hello [192.0.2.10], Only 'AUTH LOGIN' supported."]),
    ],
)
def test_auth_login_exchange(h: Harness, lines: list[str], tail: list[str]) -> None:
    use_auth(h, **{"auth-login-also-without-tls": True, "sasl-mechanisms": "LOGIN"})
    r = h.run(*cmds("EHLO client.example.net", *lines))
    assert r.output.endswith(crlf(*tail))


def test_auth_gates(h: Harness) -> None:
    use_auth(h, max_failures=10)  # three refusals here; the per-session limit is test_auth_exchange's
    r = h.run(*cmds("AUTH LOGIN", "EHLO client.example.net", "AUTH LOGIN", "MAIL FROM:<a@example.net>",
                    "RCPT TO:<b@example.org>", "AUTH LOGIN"))
    assert b"250-AUTH" not in r.output  # not offered without TLS
    assert r.output.split(b"\r\n", 1)[1].startswith(crlf("503 5.5.1 Hi [192.0.2.10], EHLO first, then - perhaps - AUTH!"))
    assert r.output.endswith(crlf("503 5.5.1 Hi [192.0.2.10], AUTH not allowed during MAIL transaction!"))
    assert b"503 5.7.1 Hello [192.0.2.10], Plaintext password authentication must be run under SSL/TLS\r\n" in r.output


def test_auth_no_smtp_auth_on_25(h: Harness) -> None:
    use_auth(h, **{"no-smtp-auth-on-25": True, "auth-login-also-without-tls": True})
    r = h.run(*cmds("EHLO client.example.net", "AUTH LOGIN"))
    assert b"AUTH=LOGIN" not in r.output
    assert r.output.endswith(crlf("503 5.5.1 Hi [192.0.2.10], AUTH NOT SUPPORTED AT PORT 25!"))


def test_router_vrfy_answers_exactly_once(h: Harness, tmp_path: Path) -> None:
    rc = RouterClient(peer("router.py"), "/etc/zmailer/zmailer.conf", b"[192.0.2.10]",
                      env=dict(os.environ, PEER_LOG=str(tmp_path / "rlog")), start_timeout=30, answer_timeout=30)
    h.values.update({"enable-router": True, "vrfycmd": True, "expncmd": True})
    h.ctx_extra["router"] = rc
    r = h.run(*cmds("EHLO client.example.net", "VRFY bob@example.org", "EXPN bob@example.org", "NOOP"))
    tail = r.output.split(b"250 HELP\r\n", 1)[1].split(b"\r\n")[:-1]
    finals = [ln for ln in tail if ln[3:4] == b" "]
    assert len(finals) == 3 and finals[-1] == b"250 2.0.0 Ok"
