"""SMTP AUTH (interfaces.md §3, protocol.md §4.7.18; decisions in spec/README.md).

The AUTH verb as a small state machine the session drives; it never touches
the stream.  Mechanisms are PLAIN and LOGIN (pysasl parses the client
messages), limited by ``sasl-mechanisms`` / ``smtp-mechanisms``, offered only
under TLS unless ``AUTH-LOGIN-also-without-TLS``.  Passwords are checked by
the ``SMTP-auth-pipe`` program when set, else by PAM (service
``smtpauth-login``); ``smtp-auth-sasl`` asks saslauthd (what Cyrus SASL's
``pwcheck_method: saslauthd`` does) and uses the SASL reply texts.

Passwords never reach a log, a reply or an argv.

How the session uses it (the seam; session.py wires it in)::

    auth = Authenticator(settings, zenv=zenv, log=sessionlog_note)  # one per session
    # EHLO, after X-RCPTLIMIT and before STARTTLS (§3.2):
    for text in auth.ehlo_lines(tls_active=..., plain_listener=...):
        continuation line "250-" + text
    # AUTH <arg> (the verb is unknown without smtp-auth: auth.enabled):
    step = auth.start(arg, AuthFacts(rhostaddr=b"[192.0.2.7]", helo_seen=...,
                      in_transaction=..., authenticated=authuser is not None,
                      tls_active=..., plain_listener=..., too_many_failures=policy...))
    reply(*step.reply)                   # (code, enhanced code or None, text)
    while not step.done:
        line = stream.s_gets()           # None at EOF / timeout
        sessionlog(auth.loggable(line))  # never the password line itself
        step = auth.step(line)
        reply(*step.reply)
    if step.success: authuser = step.user; with-flag "A" (survives RSET, EHLO, STARTTLS)
    if step.failed:  policy.auth_failed()   # the rate tracker (auth-failrate)
    if step.disconnect: reply(*step.disconnect); end the session
    # the AUTH command line itself goes to the session log as auth.redact_command(line)
    # MAIL FROM parameter AUTH=: esmtp.py calls check_mail_auth_param(value)
    # MSA: before each verb, r = auth.msa_check(verb, ...); if r: reply(*r)
    # After success: comment/rcvdfrom "smtp-auth" fields, "with ...A" (received.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import signal
import socket
import struct
import subprocess
import syslog as _syslog
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pysasl (and the importlib.metadata it pulls in) loads on the first AUTH
    from pysasl.mechanism import ChallengeResponse, ServerMechanism


def load_sasl() -> None:
    """Import pysasl now: the daemon parent does so when AUTH is configured, once for all children."""
    import pysasl.creds.plain
    import pysasl.exception
    import pysasl.mechanism.login
    import pysasl.mechanism.plain  # noqa: F401


Reply = tuple[int, str | None, bytes]  # code, enhanced status code, text
LogFn = Callable[[str], None]
SyslogFn = Callable[[int, str], None]

PAM_SERVICE = "smtpauth-login"
SASL_SERVICE = "smtpserver"
SASLAUTHD_MUX = "/run/saslauthd/mux"
PIPE_TIMEOUT = 30.0  # 3.0.1 has none (T-9)
MAX_SESSION_FAILURES = 3  # failed AUTH attempts before the session is closed
DEFAULT_MECHANISMS = (b"LOGIN", b"PLAIN")
PIPE_DEFAULT_PATH = "/usr/bin:/bin:/usr/ucb"
ZCONFIG_DEFAULT = "/etc/zmailer/zmailer.conf"
_BAD_FIELD = re.compile(rb"[\r\n\t\0]")

# Replies of the PLAIN/LOGIN path (3.0.1 texts; mostly no enhanced codes).
R_LOGIN_OK: Reply = (235, None, b"Authentication successful.")
R_CANCELLED: Reply = (501, None, b"AUTH command cancelled")
R_EOF: Reply = (501, None, b"Err... Seen EOF during AUTH ??")
R_JUNK: Reply = (501, "5.5.2", b"unrecognized input/extra junk ??")
R_BAD_BASE64: Reply = (501, "5.5.4", b"cannot BASE64 decode AUTH parameter")
R_FAIL_PIPE: Reply = (535, None, b"Authentication failed")
R_FAIL_PAM: Reply = (535, None, b"Authentication Failed")
# Replies of the SASL path (§3.5 texts; a failure is 535, not 3.0.1's 500).
R_SASL_OK: Reply = (235, "2.0.0", b"OK Authenticated")
R_SASL_FAIL: Reply = (535, "5.7.0", b"authentication failed")
R_SASL_ABORTED: Reply = (501, "5.0.0", b"AUTH aborted")
R_SASL_MISSING: Reply = (501, "5.5.2", b"missing input")
R_SASL_BAD_BASE64: Reply = (501, "5.5.4", b"cannot decode AUTH parameter")
R_TEMPFAIL: Reply = (454, "4.7.0", b"Temporary authentication failure")
R_TOO_MANY: Reply = (421, "4.7.0", b"Too many failed authentication attempts, closing connection")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def b64decode_strict(data: bytes) -> bytes | None:
    """RFC 4648 base64 with padding, nothing else; None when it is not that."""
    if len(data) % 4:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _printable(text: bytes, limit: int = 32) -> bytes:
    return bytes(b if 0x21 <= b <= 0x7E else 0x3F for b in text[:limit])


def check_mail_auth_param(value: bytes | None) -> Reply | None:
    """MAIL FROM ``AUTH=``: valid xtext is accepted and discarded (§3.7)."""
    if not value:
        return (501, "5.5.4", b"AUTH= without data!")
    i = 0
    while i < len(value):
        c = value[i]
        if c == 0x2B:  # "+HH", upper-case hex
            hh = value[i + 1 : i + 3]
            if len(hh) != 2 or any(h not in b"0123456789ABCDEF" for h in hh):
                return (501, "5.5.4", b"AUTH data contains illegal characters!")
            i += 3
            continue
        if not (0x21 <= c <= 0x7E) or c == 0x3D:
            return (501, "5.5.4", b"AUTH data contains illegal characters!")
        i += 1
    return None


# -- verifiers -----------------------------------------------------------------


@dataclass
class Verdict:
    """A verifier's answer: ok, or failed (fail_reply), or temporary."""

    ok: bool
    temporary: bool = False
    detail: str = ""


class PipeVerifier:
    """``SMTP-auth-pipe PATH`` (interfaces.md §3.6.1): argv [PATH, user], password on stdin.

    Exit status 0 is success; anything else — non-zero exit, a signal, a
    program that cannot be started, a timeout — is a failure (fail closed,
    unlike 3.0.1's T-8).  Output is read while the program runs (no T-9
    deadlock); its first line goes to syslog authpriv.info as
    ``<user>: <line>``.
    """

    fail_reply = R_FAIL_PIPE

    def __init__(
        self,
        path: str,
        zenv: Any = None,
        syslog: SyslogFn | None = None,
        timeout: float = PIPE_TIMEOUT,
    ) -> None:
        self.path = path[:200]
        self.zenv = zenv
        self.syslog = syslog if syslog is not None else _default_syslog
        self.timeout = timeout

    def environment(self) -> dict[str, str]:
        """The replaced environment of §3.6.1 (TZ with its name, unlike 3.0.1)."""
        env = {"SHELL": "/bin/sh", "IFS": " \t\n"}
        tz = os.environ.get("TZ")
        if tz is not None:
            env["TZ"] = tz
        env["PATH"] = _zenv_get(self.zenv, "PATH") or PIPE_DEFAULT_PATH
        env["ZCONFIG"] = _zenv_get(self.zenv, "ZCONFIG") or ZCONFIG_DEFAULT
        return env

    def verify(self, user: bytes, password: bytes) -> Verdict:
        try:
            proc = subprocess.Popen(
                [os.fsencode(self.path), user],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={k.encode(): v.encode() for k, v in self.environment().items()},
                close_fds=True,
                start_new_session=True,  # a timeout kills the whole group
            )
        except OSError as e:
            self.syslog(_syslog.LOG_INFO, f"{_shown(user)}: cannot start {self.path}: {e.strerror}")
            return Verdict(False, detail=f"cannot start {self.path}: {e.strerror}")
        try:
            out, _ = proc.communicate(password + b"\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            self.syslog(_syslog.LOG_INFO, f"{_shown(user)}: {self.path} timed out")
            return Verdict(False, detail=f"{self.path} timed out after {self.timeout:g}s")
        first = out.split(b"\n", 1)[0][:255]
        self.syslog(_syslog.LOG_INFO, f"{_shown(user)}: {_shown(first)}")
        if proc.returncode == 0:
            return Verdict(True)
        return Verdict(False, detail=f"{self.path} exit status {proc.returncode}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild keeps the pipe: give up on it
        pass


def _zenv_get(zenv: Any, name: str) -> str | None:
    if zenv is None:
        return None
    try:
        value = zenv.get(name)
    except (KeyError, LookupError, AttributeError):
        return None
    if value is None:
        return None
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _shown(text: bytes) -> str:
    return text.decode("utf-8", "backslashreplace")


def _default_syslog(priority: int, message: str) -> None:
    facility = getattr(_syslog, "LOG_AUTHPRIV", _syslog.LOG_AUTH)
    _syslog.syslog(facility | priority, message)


class PamVerifier:
    """PAM service ``smtpauth-login`` (interfaces.md §3.6.2) through python-pam.

    Runs with effective uid 0 for the call when the real uid is 0 (the
    session process keeps root as its real/saved uid, T-32).  python-pam
    also runs the account stack after a good password.
    """

    fail_reply = R_FAIL_PAM

    def __init__(self, service: str = PAM_SERVICE) -> None:
        self.service = service

    def verify(self, user: bytes, password: bytes) -> Verdict:
        import pam

        p = pam.PamAuthenticator()
        old_euid = os.geteuid()
        switch = os.getuid() == 0 and old_euid != 0
        try:
            if switch:
                os.seteuid(0)
            ok = p.authenticate(user, password, service=self.service, resetcreds=False)
        except (ValueError, OSError) as e:
            return Verdict(False, detail=f"PAM: {e}")
        finally:
            if switch:
                os.seteuid(old_euid)
        return Verdict(bool(ok), detail="" if ok else f"PAM: {p.reason} ({p.code})")


class SaslauthdVerifier:
    """``smtp-auth-sasl``: ask saslauthd, as Cyrus SASL's sasl_checkpass would.

    Wire format: four counted strings (2-byte big-endian length) — login,
    password, service, realm — answered by one counted string "OK…"/"NO…".
    An unreachable saslauthd is a temporary failure (454).
    """

    fail_reply = R_SASL_FAIL

    def __init__(self, mux: str = SASLAUTHD_MUX, service: str = SASL_SERVICE, timeout: float = PIPE_TIMEOUT) -> None:
        self.mux = mux
        self.service = service.encode()
        self.timeout = timeout

    def verify(self, user: bytes, password: bytes) -> Verdict:
        fields = (user, password, self.service, b"")
        if any(len(f) > 0xFFFF for f in fields):
            return Verdict(False, detail="field too long")
        req = b"".join(struct.pack("!H", len(f)) + f for f in fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.mux)
                s.sendall(req)
                head = _recv_exact(s, 2)
                answer = _recv_exact(s, struct.unpack("!H", head)[0])
        except (OSError, EOFError) as e:
            return Verdict(False, temporary=True, detail=f"saslauthd {self.mux}: {e}")
        if answer.startswith(b"OK"):
            return Verdict(True)
        return Verdict(False, detail="saslauthd: " + _shown(answer))


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("short answer")
        buf += chunk
    return buf


class _VerifierIdentity:
    """pysasl's Identity protocol over one of our verifiers (the secret never leaves it)."""

    def __init__(self, authcid: str, verifier: PipeVerifier | PamVerifier | SaslauthdVerifier) -> None:
        self._authcid = authcid
        self.verifier = verifier
        self.verdict = Verdict(False, detail="not checked")

    @property
    def authcid(self) -> str:
        return self._authcid

    def compare_authcid(self, authcid: str) -> bool:
        return authcid == self._authcid

    def compare_secret(self, secret: str) -> bool:
        password = secret.encode("utf-8")
        if _BAD_FIELD.search(password):
            self.verdict = Verdict(False, detail="password holds CR, LF, TAB or NUL")
            return False
        self.verdict = self.verifier.verify(self._authcid.encode("utf-8"), password)
        return self.verdict.ok

    def get_clear_secret(self) -> str | None:
        return None


# -- the exchange --------------------------------------------------------------


@dataclass
class AuthFacts:
    """What the session knows when AUTH arrives (pre-checks of §3.3)."""

    rhostaddr: bytes  # b"[192.0.2.7]"
    helo_seen: bool
    in_transaction: bool
    authenticated: bool
    tls_active: bool
    plain_listener: bool = False  # accepted on a plain SMTP listener, not cleared by HELO
    too_many_failures: bool = False  # the rate tracker's verdict (auth-failrate)


@dataclass
class AuthStep:
    """One reply of the exchange and what it means for the session."""

    reply: Reply
    done: bool = True
    success: bool = False
    failed: bool = False  # counts for auth-failrate
    user: bytes | None = None
    tarpit: int = 1  # how many tarpit delays precede the reply (2 for "port 25")
    disconnect: Reply | None = None  # send after `reply`, then end the session


@dataclass
class _Exchange:
    mech: ServerMechanism
    name: bytes
    responses: list[ChallengeResponse] = field(default_factory=list)
    challenge: bytes = b""


class Authenticator:
    """The AUTH settings of one session and the state of its exchange."""

    def __init__(
        self,
        settings: Any,
        *,
        zenv: Any = None,
        log: LogFn | None = None,
        syslog: SyslogFn | None = None,
        pipe_timeout: float = PIPE_TIMEOUT,
        saslauthd_mux: str = SASLAUTHD_MUX,
        pam_service: str = PAM_SERVICE,
        max_failures: int = MAX_SESSION_FAILURES,
    ) -> None:
        self.enabled = bool(settings.get("smtp-auth"))
        self.also_without_tls = bool(settings.get("auth-login-also-without-tls"))
        self.sasl = bool(settings.get("smtp-auth-sasl"))
        self.no_auth_on_25 = bool(settings.get("no-smtp-auth-on-25"))
        prompt = settings.get("smtp-auth-username-prompt")
        self.user_prompt = _as_bytes(b"Username:" if prompt is None else prompt)
        prompt = settings.get("smtp-auth-password-prompt")
        self.pass_prompt = _as_bytes(b"Password:" if prompt is None else prompt)
        self.log: LogFn = log if log is not None else (lambda _m: None)
        self.max_failures = max_failures
        self.failures = 0
        configured = settings.get("sasl-mechanisms")
        wanted = [m.upper() for m in _as_bytes(configured).split()] if configured else []
        known = [m for m in wanted if m in DEFAULT_MECHANISMS]
        if configured and not known:
            self.log(f"AUTH: sasl-mechanisms {_shown(_as_bytes(configured))!r} names nothing we offer")
        if configured:
            self.mechs = known
        else:
            self.mechs = [b"PLAIN", b"LOGIN"] if self.sasl else list(DEFAULT_MECHANISMS)
        pipe = settings.get("smtp-auth-pipe")
        self.verifier: PipeVerifier | PamVerifier | SaslauthdVerifier
        if self.sasl:
            self.verifier = SaslauthdVerifier(saslauthd_mux)
        elif pipe:
            path = pipe.decode("utf-8", "surrogateescape") if isinstance(pipe, bytes) else str(pipe)
            self.verifier = PipeVerifier(path, zenv=zenv, syslog=syslog, timeout=pipe_timeout)
        else:
            self.verifier = PamVerifier(pam_service)
        self._x: _Exchange | None = None
        self._rhost = b""

    # -- advertisement ----------------------------------------------------

    def mechanisms(self, tls_active: bool) -> list[bytes]:
        """Mechanisms usable now; PLAIN and LOGIN are both plaintext ones."""
        if not self.enabled or not (tls_active or self.also_without_tls):
            return []
        return list(self.mechs)

    def ehlo_lines(self, *, tls_active: bool, plain_listener: bool = False) -> list[bytes]:
        """The EHLO lines (without "250-"): ``AUTH=<mechs>`` then ``AUTH <mechs>``.

        The ``AUTH=`` form serves pre-RFC 2554 clients, as 3.0.1 (and Postfix's
        broken_sasl_auth_clients) do; with only LOGIN it is vector A1 exactly.
        The SASL path keeps 3.0.1's form: ``AUTH <list>`` and, with LOGIN in
        it, ``AUTH=LOGIN`` and ``AUTH LOGIN`` after it (vector A5).
        """
        if plain_listener and self.no_auth_on_25:
            return []
        mechs = self.mechanisms(tls_active)
        if not mechs:
            return []
        listed = b" ".join(mechs)
        if self.sasl:
            lines = [b"AUTH " + listed]
            if b"LOGIN" in mechs:
                lines += [b"AUTH=LOGIN", b"AUTH LOGIN"]
            return lines
        return [b"AUTH=" + listed, b"AUTH " + listed]

    # -- the verb ---------------------------------------------------------

    def start(self, arg: bytes, facts: AuthFacts) -> AuthStep:
        """``AUTH <arg>``: the pre-checks of §3.3 in order, then the first step."""
        self._x = None
        self._rhost = facts.rhostaddr
        hi, hello = b"Hi " + facts.rhostaddr + b", ", b"Hello " + facts.rhostaddr + b", "
        if facts.plain_listener and self.no_auth_on_25:
            return AuthStep((503, "5.5.1", hi + b"AUTH NOT SUPPORTED AT PORT 25!"), tarpit=2)
        if facts.too_many_failures:
            return AuthStep(
                (503, "5.5.1", hi + b"Too many authentication failures from your IP this hour..")
            )
        if not facts.helo_seen:
            return self._refuse((503, "5.5.1", hi + b"EHLO first, then - perhaps - AUTH!"))
        if facts.in_transaction:
            return self._refuse((503, "5.5.1", hi + b"AUTH not allowed during MAIL transaction!"))
        if facts.authenticated:
            return self._refuse(
                (503, "5.5.1", hello + b"already authenticated, second attempt rejected!")
            )
        words = arg.strip(b" \t").split()
        name = words[0].upper() if words else b""
        if self.sasl:
            if name not in self.mechanisms(facts.tls_active):
                return self._refuse(
                    (503, "5.3.3", b"AUTH mechanism " + _printable(name) + b" not available")
                )
        else:
            if name not in self.mechs:
                offered = b" and ".join(b"'AUTH " + m + b"'" for m in self.mechs) or b"nothing"
                return self._refuse((504, "5.7.1", hello + b"Only " + offered + b" supported."))
            if not (facts.tls_active or self.also_without_tls):
                return self._refuse(
                    (503, "5.7.1", hello + b"Plaintext password authentication must be run under SSL/TLS")
                )
        if len(words) > 2:
            return self._refuse(R_JUNK)
        from pysasl.mechanism.login import LoginMechanism
        from pysasl.mechanism.plain import PlainMechanism

        mech: ServerMechanism = LoginMechanism() if name == b"LOGIN" else PlainMechanism()
        self._x = _Exchange(mech, name)
        if len(words) == 2:
            initial = b"" if words[1] == b"=" else b64decode_strict(words[1])
            if initial is None:
                self._x = None
                return self._refuse(R_SASL_BAD_BASE64 if self.sasl else R_BAD_BASE64)
            return self._advance(initial)
        return self._advance(None)

    def step(self, line: bytes | None) -> AuthStep:
        """One client line answering a 334 (None: EOF or timeout)."""
        if self._x is None:
            raise RuntimeError("AUTH step without an exchange")
        if line is None:
            self._x = None
            return AuthStep(R_SASL_MISSING if self.sasl else R_EOF, failed=True)
        line = line.rstrip(b"\r\n")
        if line.strip(b" \t") == b"*":
            self._x = None
            return self._refuse(R_SASL_ABORTED if self.sasl else R_CANCELLED)
        if self.sasl and not line:
            self._x = None
            return self._refuse(R_SASL_MISSING)
        data = b64decode_strict(line.strip(b" \t"))
        if data is None:
            self._x = None
            return self._refuse(R_SASL_BAD_BASE64 if self.sasl else R_BAD_BASE64)
        return self._advance(data)

    def loggable(self, line: bytes | None) -> bytes:
        """What the session log may show of a client line inside the exchange."""
        if line is None:
            return b"<EOF>"
        x = self._x
        if x is not None and x.name == b"LOGIN" and not x.responses and line.strip() != b"*":
            return line.rstrip(b"\r\n")  # the base64 user name, as 3.0.1 logs it
        if line.strip() == b"*":
            return b"*"
        return b"**base64-password**"

    @staticmethod
    def redact_command(line: bytes) -> bytes:
        """The AUTH command line for logs: a PLAIN initial response holds the password."""
        words = line.split()
        if len(words) >= 3 and words[0].upper() == b"AUTH" and words[1].upper() != b"LOGIN":
            return b" ".join(words[:2]) + b" **base64-credentials**"
        return line

    # -- internals ----------------------------------------------------------

    def _advance(self, response: bytes | None) -> AuthStep:
        from pysasl.creds.plain import PlainCredentials
        from pysasl.exception import InvalidResponse
        from pysasl.mechanism import ChallengeResponse, ServerChallenge

        x = self._x
        assert x is not None
        if response is not None:
            x.responses.append(ChallengeResponse(x.challenge, response))
        try:
            creds, _final = x.mech.server_attempt(x.responses)
        except ServerChallenge as chal:
            x.challenge = chal.data
            text = chal.data
            if x.name == b"LOGIN":
                text = self.user_prompt if len(x.responses) == 0 else self.pass_prompt
            return AuthStep((334, None, base64.b64encode(text)), done=False)
        except (InvalidResponse, UnicodeDecodeError):
            self._x = None
            return self._failure(b"", "malformed credentials")
        self._x = None
        assert isinstance(creds, PlainCredentials)
        user = creds.authcid.encode("utf-8")
        if not user or _BAD_FIELD.search(user):
            return self._failure(user, "user name holds CR, LF, TAB or NUL")
        identity = _VerifierIdentity(creds.authcid, self.verifier)
        if creds.verify(identity):
            self.log(f"AUTH {x.name.decode()} ok: user {_shown(user)!r} from {_shown(self._rhost)}")
            return AuthStep(R_SASL_OK if self.sasl else R_LOGIN_OK, success=True, user=user)
        verdict = identity.verdict
        if verdict.temporary:
            self.log(f"AUTH {x.name.decode()} temporary failure from {_shown(self._rhost)}: {verdict.detail}")
            return AuthStep(R_TEMPFAIL)
        return self._failure(user, verdict.detail)

    def _failure(self, user: bytes, detail: str) -> AuthStep:
        fail = self.verifier.fail_reply
        self.log(
            f"AUTH failure from {_shown(self._rhost)}: user {_shown(user)!r}"
            + (f": {detail}" if detail else "")
        )
        return self._refuse(fail)

    def _refuse(self, reply: Reply) -> AuthStep:
        """A refusal that counts as a failed attempt (§3.3 checks 3–7, the exchange)."""
        self.failures += 1
        step = AuthStep(reply, failed=True)
        if self.failures >= self.max_failures:
            self.log(f"AUTH: {self.failures} failures from {_shown(self._rhost)}, closing the session")
            step.disconnect = R_TOO_MANY
        return step

    # -- MSA mode (§3.8) ----------------------------------------------------


MSA_FREE_VERBS = frozenset({b"STARTTLS", b"AUTH", b"HELO", b"EHLO", b"NOOP", b"RSET", b"QUIT"})


def msa_active(settings: Any, listener_kind: str) -> bool:
    """``MSA-mode`` (all listeners) or a submission listener."""
    return bool(settings.get("msa-mode")) or listener_kind == "submit"


def msa_check(
    verb: bytes, *, authenticated: bool, trusted: bool, rhostaddr: bytes
) -> Reply | None:
    """The MSA gate (§3.8, T-18); call only when msa_active().

    `trusted`: the client IP has ``relaycustnet +`` or ``fulltrustnet +``.
    MAIL needs authentication even from trusted networks.
    """
    if authenticated:
        return None
    verb = verb.upper()
    if verb in MSA_FREE_VERBS:
        return None
    if not trusted:
        return (530, "5.3.0", b"Sorry " + rhostaddr + b"; Authentication required")
    if verb == b"MAIL":
        return (530, "5.5.1", b"Hello " + rhostaddr + b", In SUBMISSION mode sender must authenticate first!")
    return None
