"""The AUTH state machine: EHLO lines, pre-checks, LOGIN/PLAIN exchanges (vectors A1–A6).

The password checks are real: the t/peers/authpipe_good.py program (alice /
s3cret) and, for smtp-auth-sasl, a saslauthd stand-in on a UNIX socket.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from zmailer_smtpd import auth, config

PEERS = Path(__file__).parent / "peers"
ADDR = b"[192.0.2.7]"


def Settings(values: dict[str, object] | None = None) -> config.Settings:  # noqa: N802
    """The real Settings of config.py, made from keyword -> value."""
    return config.Settings.from_values(values)


class Log(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def b64(s: bytes) -> bytes:
    return base64.b64encode(s)


def make(**conf: object) -> tuple[auth.Authenticator, Log]:
    log = Log()
    settings = Settings({"smtp-auth": True, "smtp-auth-pipe": str(PEERS / "authpipe_good.py"), **conf})
    return auth.Authenticator(settings, log=log, syslog=lambda _p, _m: None), log


def facts(**kw: bool) -> auth.AuthFacts:
    base = dict(helo_seen=True, in_transaction=False, authenticated=False, tls_active=True)
    base.update(kw)
    return auth.AuthFacts(rhostaddr=ADDR, **base)  # type: ignore[arg-type]


def run(a: auth.Authenticator, arg: bytes, *lines: bytes | None, f: auth.AuthFacts | None = None) -> list[auth.AuthStep]:
    steps = [a.start(arg, f or facts())]
    for line in lines:
        assert not steps[-1].done, steps
        steps.append(a.step(line))
    return steps


def replies(steps: list[auth.AuthStep]) -> list[auth.Reply]:
    return [s.reply for s in steps]


# -- EHLO ----------------------------------------------------------------------


def test_a1_ehlo_lines_login_only() -> None:
    a, _ = make(**{"sasl-mechanisms": "LOGIN"})
    assert a.ehlo_lines(tls_active=True) == [b"AUTH=LOGIN", b"AUTH LOGIN"]


def test_ehlo_lines_default_offer_login_and_plain() -> None:
    a, _ = make()
    assert a.ehlo_lines(tls_active=True) == [b"AUTH=LOGIN PLAIN", b"AUTH LOGIN PLAIN"]
    assert a.ehlo_lines(tls_active=False) == []  # only under TLS
    assert a.ehlo_lines(tls_active=True, plain_listener=True) == [b"AUTH=LOGIN PLAIN", b"AUTH LOGIN PLAIN"]


def test_ehlo_lines_gates() -> None:
    a, _ = make(**{"auth-login-also-without-tls": True})
    assert a.ehlo_lines(tls_active=False) == [b"AUTH=LOGIN PLAIN", b"AUTH LOGIN PLAIN"]
    a, _ = make(**{"no-smtp-auth-on-25": True})
    assert a.ehlo_lines(tls_active=True, plain_listener=True) == []
    a, _ = make(**{"smtp-auth": False})
    assert not a.enabled and a.ehlo_lines(tls_active=True) == []
    a, _ = make(**{"smtp-mechanisms": "plain"})
    assert a.ehlo_lines(tls_active=True) == [b"AUTH=PLAIN", b"AUTH PLAIN"]


def test_a5_sasl_ehlo_lines() -> None:
    a, _ = make(**{"smtp-auth-sasl": True})
    assert a.ehlo_lines(tls_active=True) == [b"AUTH PLAIN LOGIN", b"AUTH=LOGIN", b"AUTH LOGIN"]
    assert a.ehlo_lines(tls_active=False) == []


# -- LOGIN ---------------------------------------------------------------------


def test_a2_login_two_prompts() -> None:
    a, log = make()
    steps = run(a, b"LOGIN", b64(b"alice"), b64(b"s3cret"))
    assert replies(steps) == [
        (334, None, b"VXNlcm5hbWU6"),
        (334, None, b"UGFzc3dvcmQ6"),
        (235, None, b"Authentication successful."),
    ]
    assert steps[-1].done and steps[-1].success and steps[-1].user == b"alice"
    assert not any("s3cret" in m for m in log)


def test_a2_login_wrong_password() -> None:
    a, log = make()
    steps = run(a, b"LOGIN", b64(b"alice"), b64(b"hunter2"))
    assert steps[-1].reply == (535, None, b"Authentication failed")
    assert steps[-1].failed and not steps[-1].success and steps[-1].disconnect is None
    assert any("AUTH failure from [192.0.2.7]" in m and "alice" in m for m in log)
    assert not any("hunter2" in m for m in log)


def test_a3_initial_response_then_cancel() -> None:
    a, _ = make()
    steps = run(a, b"LOGIN YWxpY2U=", b"*")
    assert replies(steps) == [(334, None, b"UGFzc3dvcmQ6"), (501, None, b"AUTH command cancelled")]
    assert steps[-1].failed


def test_login_initial_response_success_and_blanks() -> None:
    a, _ = make()
    steps = run(a, b"  login   YWxpY2U=", b64(b"s3cret"))
    assert steps[-1].reply == (235, None, b"Authentication successful.")


def test_custom_prompt_is_correctly_padded() -> None:
    """3.0.1 sends "VXNlciBuYW1lOg=" (one "="); we send valid base64 (§9 Q11)."""
    a, _ = make(**{"smtp-auth-username-prompt": "User name:", "smtp-auth-password-prompt": "Passwort:"})
    steps = run(a, b"LOGIN", b64(b"alice"))
    assert replies(steps) == [(334, None, b"VXNlciBuYW1lOg=="), (334, None, b"UGFzc3dvcnQ6")]


def test_eof_during_auth() -> None:
    a, _ = make()
    steps = run(a, b"LOGIN", None)
    assert steps[-1].reply == (501, None, b"Err... Seen EOF during AUTH ??") and steps[-1].done


# -- PLAIN ---------------------------------------------------------------------


def test_plain_initial_response() -> None:
    a, _ = make()
    steps = run(a, b"PLAIN AGFsaWNlAHMzY3JldA==")
    assert steps[0].reply == (235, None, b"Authentication successful.") and steps[0].user == b"alice"


def test_plain_empty_challenge_then_response() -> None:
    a, _ = make()
    steps = run(a, b"PLAIN", b"AGFsaWNlAHMzY3JldA==")
    assert replies(steps) == [(334, None, b""), (235, None, b"Authentication successful.")]


def test_plain_authzid_is_ignored_like_3_0_1() -> None:
    a, _ = make()
    steps = run(a, b"PLAIN " + b64(b"bob\0alice\0s3cret"))
    assert steps[0].success and steps[0].user == b"alice"


@pytest.mark.parametrize(
    "arg",
    [b"PLAIN =", b"PLAIN " + b64(b"alice\0s3cret"), b"PLAIN " + b64(b"\0alice\0wrong"), b"PLAIN " + b64(b"\0\0s3cret")],
)
def test_plain_bad_credentials(arg: bytes) -> None:
    a, _ = make()
    step = run(a, arg)[0]
    assert step.reply == (535, None, b"Authentication failed") and step.failed


def test_login_equals_is_an_empty_user() -> None:
    a, _ = make()
    steps = run(a, b"LOGIN =", b64(b"s3cret"))
    assert replies(steps) == [(334, None, b"UGFzc3dvcmQ6"), (535, None, b"Authentication failed")]


@pytest.mark.parametrize("bad", [b"YWxpY2U", b"YWx*aWNl", b"YWxp Y2U=", b"YW=xpY2U", b"=YWxpY2U"])
def test_base64_is_strict(bad: bytes) -> None:
    a, _ = make()
    assert run(a, b"LOGIN", bad)[-1].reply == (501, "5.5.4", b"cannot BASE64 decode AUTH parameter")
    a, _ = make()
    step = run(a, b"PLAIN " + bad)[-1]
    assert step.reply[0] == 501 and step.done and step.failed


def test_cr_lf_tab_nul_in_credentials_never_reach_the_verifier() -> None:
    a, log = make()
    for user in (b"ali\tce", b"alice\r", b"al\x00ice"):
        step = run(a, b"LOGIN " + b64(user), b64(b"s3cret"))[-1]
        assert step.reply == (535, None, b"Authentication failed")
    assert sum("CR, LF, TAB or NUL" in m for m in log) == 3


# -- pre-checks (A4) -----------------------------------------------------------


def test_a4_refusals() -> None:
    a, _ = make(**{"sasl-mechanisms": "LOGIN"})
    assert a.start(b"LOGIN", facts(tls_active=False)).reply == (
        503, "5.7.1", b"Hello [192.0.2.7], Plaintext password authentication must be run under SSL/TLS")
    a, _ = make(**{"sasl-mechanisms": "LOGIN"})
    assert a.start(b"PLAIN AGFsaWNlAHMzY3JldA==", facts()).reply == (
        504, "5.7.1", b"Hello [192.0.2.7], Only 'AUTH LOGIN' supported.")
    a, _ = make()
    assert a.start(b"LOGIN", facts(in_transaction=True)).reply == (
        503, "5.5.1", b"Hi [192.0.2.7], AUTH not allowed during MAIL transaction!")
    assert a.start(b"LOGIN", facts(authenticated=True)).reply == (
        503, "5.5.1", b"Hello [192.0.2.7], already authenticated, second attempt rejected!")
    a, _ = make()
    assert a.start(b"LOGIN YWxpY2U= junk", facts()).reply == (501, "5.5.2", b"unrecognized input/extra junk ??")


def test_precheck_order_and_texts() -> None:
    a, _ = make(**{"no-smtp-auth-on-25": True})
    step = a.start(b"LOGIN", facts(plain_listener=True, helo_seen=False))
    assert step.reply == (503, "5.5.1", b"Hi [192.0.2.7], AUTH NOT SUPPORTED AT PORT 25!")
    assert step.tarpit == 2 and not step.failed
    step = a.start(b"LOGIN", facts(too_many_failures=True, helo_seen=False))
    assert step.reply == (503, "5.5.1", b"Hi [192.0.2.7], Too many authentication failures from your IP this hour..")
    assert not step.failed
    step = a.start(b"LOGIN", facts(helo_seen=False, in_transaction=True))
    assert step.reply == (503, "5.5.1", b"Hi [192.0.2.7], EHLO first, then - perhaps - AUTH!") and step.failed
    a, _ = make()
    assert a.start(b"LOGINX", facts()).reply == (
        504, "5.7.1", b"Hello [192.0.2.7], Only 'AUTH LOGIN' and 'AUTH PLAIN' supported.")


def test_failed_attempts_disconnect() -> None:
    a, log = make()
    for i in range(3):
        step = run(a, b"PLAIN " + b64(b"\0alice\0wrong"))[-1]
        assert step.reply == (535, None, b"Authentication failed")
        if i < 2:
            assert step.disconnect is None
    assert step.disconnect == (421, "4.7.0", b"Too many failed authentication attempts, closing connection")
    assert any("3 failures from [192.0.2.7]" in m for m in log)


# -- logging -------------------------------------------------------------------


def test_loggable_lines_hide_the_password() -> None:
    a, _ = make()
    a.start(b"LOGIN", facts())
    user_line = b64(b"alice")
    assert a.loggable(user_line) == user_line  # 3.0.1 logs the base64 user name
    a.step(user_line)
    assert a.loggable(b64(b"s3cret")) == b"**base64-password**"
    a2, _ = make()
    a2.start(b"PLAIN", facts())
    assert a2.loggable(b"AGFsaWNlAHMzY3JldA==") == b"**base64-password**"
    assert a2.loggable(b"*") == b"*"
    assert auth.Authenticator.redact_command(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==") == (
        b"AUTH PLAIN **base64-credentials**")
    assert auth.Authenticator.redact_command(b"AUTH LOGIN YWxpY2U=") == b"AUTH LOGIN YWxpY2U="


# -- SASL path (saslauthd) -----------------------------------------------------


@pytest.fixture
def saslauthd(tmp_path: Path) -> Iterator[tuple[str, list[tuple[bytes, ...]]]]:
    path = str(tmp_path / "mux")
    seen: list[tuple[bytes, ...]] = []
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(5)
    lsock.settimeout(30)

    stop = threading.Event()

    def serve() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            if stop.is_set():
                conn.close()
                return
            with conn:
                f = conn.makefile("rb")
                fields = []
                for _ in range(4):
                    (n,) = struct.unpack("!H", f.read(2))
                    fields.append(f.read(n))
                seen.append(tuple(fields))
                ok = fields[0] == b"alice" and fields[1] == b"s3cret" and fields[2] == b"smtpserver"
                answer = b"OK" if ok else b"NO authentication failed"
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, seen
    stop.set()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
        wake.connect(path)
    thread.join(30)
    lsock.close()


def make_sasl(mux: str, **conf: object) -> auth.Authenticator:
    settings = Settings({"smtp-auth": True, "smtp-auth-sasl": True, **conf})
    return auth.Authenticator(settings, saslauthd_mux=mux)


def test_sasl_plain_success_and_failure(saslauthd: tuple[str, list[tuple[bytes, ...]]]) -> None:
    mux, seen = saslauthd
    a = make_sasl(mux)
    assert run(a, b"PLAIN AGFsaWNlAHMzY3JldA==")[0].reply == (235, "2.0.0", b"OK Authenticated")
    a = make_sasl(mux)
    assert replies(run(a, b"PLAIN", b"AGFsaWNlAHMzY3JldA==")) == [(334, None, b""), (235, "2.0.0", b"OK Authenticated")]
    a = make_sasl(mux)
    steps = run(a, b"LOGIN", b64(b"alice"), b64(b"nope"))
    assert steps[-1].reply == (535, "5.7.0", b"authentication failed")
    assert seen[0] == (b"alice", b"s3cret", b"smtpserver", b"")


def test_a5_sasl_texts(saslauthd: tuple[str, list[tuple[bytes, ...]]]) -> None:
    mux, _ = saslauthd
    a = make_sasl(mux)
    assert a.start(b"PLAIN", facts(tls_active=False)).reply == (503, "5.3.3", b"AUTH mechanism PLAIN not available")
    a = make_sasl(mux)
    assert run(a, b"PLAIN", b"*")[-1].reply == (501, "5.0.0", b"AUTH aborted")
    a = make_sasl(mux)
    assert run(a, b"PLAIN", b"")[-1].reply == (501, "5.5.2", b"missing input")
    a = make_sasl(mux)
    assert run(a, b"PLAIN", b"!!!!")[-1].reply == (501, "5.5.4", b"cannot decode AUTH parameter")


def test_sasl_without_saslauthd_is_temporary(tmp_path: Path) -> None:
    a = make_sasl(str(tmp_path / "no-such-mux"))
    step = run(a, b"PLAIN AGFsaWNlAHMzY3JldA==")[0]
    assert step.reply == (454, "4.7.0", b"Temporary authentication failure") and not step.success


# -- MAIL AUTH= and MSA ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, reply",
    [
        (b"<>", None),
        (b"alice+40example.org", None),
        (b"", (501, "5.5.4", b"AUTH= without data!")),
        (b"a=b", (501, "5.5.4", b"AUTH data contains illegal characters!")),
        (b"a+4", (501, "5.5.4", b"AUTH data contains illegal characters!")),
        (b"a+4a", (501, "5.5.4", b"AUTH data contains illegal characters!")),
        (b"\xe4", (501, "5.5.4", b"AUTH data contains illegal characters!")),
    ],
)
def test_mail_auth_param(value: bytes, reply: auth.Reply | None) -> None:
    assert auth.check_mail_auth_param(value) == reply


def test_a6_msa() -> None:
    assert auth.msa_active(Settings({"msa-mode": True}), "smtp")
    assert auth.msa_active(Settings(), "submit") and not auth.msa_active(Settings(), "smtp")
    assert auth.msa_check(b"MAIL", authenticated=False, trusted=False, rhostaddr=ADDR) == (
        530, "5.3.0", b"Sorry [192.0.2.7]; Authentication required")
    assert auth.msa_check(b"MAIL", authenticated=False, trusted=True, rhostaddr=ADDR) == (
        530, "5.5.1", b"Hello [192.0.2.7], In SUBMISSION mode sender must authenticate first!")
    assert auth.msa_check(b"RCPT", authenticated=False, trusted=True, rhostaddr=ADDR) is None
    for verb in (b"EHLO", b"ehlo", b"STARTTLS", b"AUTH", b"NOOP", b"RSET", b"QUIT", b"HELO"):
        assert auth.msa_check(verb, authenticated=False, trusted=False, rhostaddr=ADDR) is None
    assert auth.msa_check(b"MAIL", authenticated=True, trusted=False, rhostaddr=ADDR) is None
