"""The SMTP session: one method per verb, over a byte stream (protocol.md §4).

CONTRACT (other modules rely on it; extend, do not break):

    ctx = SessionContext(...)
    rc = run_session(ctx, transport)   # whole session; returns exit status
    Session(ctx, stream).run()         # the same over an existing SmtpStream

`transport` has recv(n)->bytes, send(b)->int, fileno(); see stream.py.

Collaborator seams (optional objects on the context; None = feature off):

* ``policy``: ``status`` (0 ok, 1 no/unknown policydb, 2 db open failure),
  ``connect(addr, rhostname) -> PolicyAnswer``, ``helo(arg)``, ``mail(addr)``,
  ``rcpt(addr)``, ``postmaster(addr)`` (each -> PolicyAnswer), attributes
  ``maxsameip`` (-1 none), ``maxinsize`` (-1 none), ``trusted`` (always-accept
  or full-trust client: passes the MSA gate), optional
  ``auth_failrate_exceeded() -> bool``, ``report_failed_rcpts(n)``, ``close()``.
* ``router``: router.RouterClient (``check(kind, arg) -> RouterAnswer``,
  ``too_many_failures``, ``close()``).
* ``contentfilter``: contentfilter.ContentFilter (``verdict(path) ->
  FilterVerdict``, ``close()``).
* ``tls``: tls.ServerTLS (``handshake(transport) -> TLSTransport`` with ``.info``).
* ``auth``: auth.Authenticator (``ehlo_lines(...)``, ``start(arg, AuthFacts) ->
  AuthStep``, ``step(line)``, ``loggable(line)``); the session feeds it lines.
"""

from __future__ import annotations

import enum
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zmailer_smtpd import esmtp, loadavg, proctitle, rfc821
from zmailer_smtpd import replies as R
from zmailer_smtpd.sessionlog import LOG_EMERG, LOG_ERR, LOG_INFO, LOG_WARNING, rfc822_date
from zmailer_smtpd.spool import SpoolError
from zmailer_smtpd.stream import Line, SmtpStream

try:
    from zmailer_smtpd import received
except ImportError:  # pragma: no cover
    received = None  # type: ignore[assignment]

DEFAULT_VERSION = b"3.0.1 #1"
DEFAULT_VERSION_FULL = b"3.0.1 #1: Sat Nov 28 2026"
PENALTY_SLEEP = 20.0  # seconds after the "not configured"/policy-problem replies


@dataclass
class PolicyAnswer:
    """One policy verdict: result < 0 rejects (see §4.7.2/§4.7.3 tables)."""

    result: int = 0
    msg: bytes | None = None
    freeze: int = 0  # > 0: freeze the message with this verdict


class NeutralPolicy:
    """A usable policy that never objects (tests, trusted set-ups)."""

    status = 0
    maxsameip = -1
    maxinsize = -1
    trusted = False

    def connect(self, addr: str | None, rhostname: bytes) -> PolicyAnswer:
        return PolicyAnswer()

    def helo(self, arg: bytes) -> PolicyAnswer:
        return PolicyAnswer()

    def mail(self, addr: bytes) -> PolicyAnswer:
        return PolicyAnswer()

    def rcpt(self, addr: bytes) -> PolicyAnswer:
        return PolicyAnswer()

    def postmaster(self, addr: bytes) -> PolicyAnswer:
        return PolicyAnswer()


@dataclass
class SessionContext:
    """Everything a session needs that is decided before its first byte."""

    options: Any  # cli.Options
    config: Any  # config.Config (the whole file)
    settings: Any  # config.Settings of this session's group
    zenv: Any  # zenv.ZEnv
    mode: str  # "daemon" | "inetd" | "interactive"
    network: bool  # network-connected (protocol.md §3.1)
    peer_addr: str | None = None  # "192.0.2.1" / "2001:db8::1" (no brackets)
    peer_port: int = -1
    local_addr: str | None = None
    local_port: int = -1
    sameip: int = 0  # sessions from this IP counted by the parent, this one included
    listener_kind: str = "smtp"  # "smtp" | "smtps" | "submit"
    log: Any = None  # sessionlog.SessionLog
    # Optional collaborators, None when not configured:
    policy: Any = None  # policy engine factory / session state
    router: Any = None
    contentfilter: Any = None
    tls: Any = None
    auth: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Session facts (filled by the caller; defaults suit -i and tests):
    spool: Any = None  # spool.Spool; None -> MAIL answers 452
    myhostname: bytes = b"localhost"
    rhostname: bytes | None = None  # reverse-DNS name; None -> the address literal
    rhost_flags: Any = None  # received.RhostFlags (F1/F2 of the connection)
    ident: bytes | None = None  # -a result (identinfo)
    version: bytes = DEFAULT_VERSION  # %V, VERB
    version_full: bytes = DEFAULT_VERSION_FULL
    clock: Callable[[], float] = time.time  # greeting %T, BY=
    sleep: Callable[[float], None] = time.sleep  # tarpit and penalty pauses
    penalty_sleep: float = PENALTY_SLEEP
    cmd_timeout: float = 1200.0
    data_timeout: float = 600.0
    session_deadline: float | None = None  # seconds for the whole session, None = none
    must_exit: Callable[[], bool] = lambda: False  # SIGTERM seen (daemon child)
    helo_resolves: Callable[[bytes], bool] | None = None  # F4: HELO name -> client address
    out_of_band: Callable[[bytes], None] | None = None  # -v echo / -d lines (stdout)
    loadavg_path: str = "/proc/loadavg"
    proctitles: bool = True  # set the process title per command (the daemon child)


class State(enum.Enum):
    HELLO = "Hello"
    MAIL_OR_HELLO = "MailOrHello"
    RECIPIENT = "Recipient"
    RECIPIENT_OR_DATA = "RecipientOrData"
    BDATA = "BData"


# Verb table in HELP order (§4.6): (verb, handler)
VERBS: tuple[tuple[bytes, str], ...] = (
    (b"EHLO", "EHLO"), (b"HELO", "HELO"), (b"LHLO", "LHLO"), (b"MAIL", "MAIL"),
    (b"RCPT", "RCPT"), (b"DATA", "DATA"), (b"BDAT", "BDAT"), (b"RSET", "RSET"),
    (b"VRFY", "VRFY"), (b"EXPN", "EXPN"), (b"HELP", "HELP"), (b"NOOP", "NOOP"),
    (b"QUIT", "QUIT"), (b"TURNME", "ETRN"), (b"ETRN", "ETRN"), (b"AUTH", "AUTH"),
    (b"VERB", "VERB"), (b"ONEX", "NOOP"), (b"SEND", "MAIL"), (b"SOML", "MAIL"),
    (b"SAML", "MAIL"), (b"TURN", "TURN"), (b"TICK", "TICK"), (b"EMAL", "MAIL"),
    (b"ESND", "MAIL"), (b"ESOM", "MAIL"), (b"ESAM", "MAIL"), (b"EVFY", "VRFY"),
    (b"Z-IDENT", "IDENT"), (b"Z-DEBUG", "DEBUG"), (b"STARTTLS", "STARTTLS"),
    (b"Z-REPORT", "REPORT"), (b"550", "SILENT"),
)
VERB_MAP = dict(VERBS)
# handler -> the Session method that serves it
METHODS = {h: "smtp_" + h.lower().replace("-", "_") for _, h in VERBS}
# verbs a PARAM can switch off, and the PARAM (its default: True for the "-ok" ones)
GATES = {
    "DEBUG": "debugcmd", "EXPN": "expncmd", "VRFY": "vrfycmd", "EHLO": "ehlo-ok",
    "ETRN": "etrn-ok", "AUTH": "smtp-auth", "BDAT": "chunking-ok",
}
_VERB = re.compile(rb"[^ \t]*")  # the verb: everything before the first blank


@dataclass
class Transaction:
    """One MAIL ... DATA/BDAT transaction and its spool file."""

    file: Any = None  # spool.SpoolFile
    sender: bytes = b""  # stored (822-quoted, route-stripped) address; b"" for <>
    params: esmtp.MailParams = field(default_factory=esmtp.MailParams)
    accepted: int = 0  # accepted recipients
    spamtrap: bool = False
    sizesum: int = -1
    freeze: int = 0
    bdat: Any = None  # bodyxfer.BdatReceiver
    bdat_failed: bool = False  # file discarded during a BDAT transaction
    data_started: bool = False


class SessionEnd(Exception):
    """Raised to end the session after the current reply (no further reading)."""


class Session:
    """One SMTP session.  ``run()`` drives it to the end."""

    def __init__(self, ctx: SessionContext, stream: SmtpStream) -> None:
        self.ctx = ctx
        self.stream = stream
        self.log = ctx.log
        s = ctx.settings
        self._settings = s
        self._got: dict[str, Any] = {}  # get()'s answers by name
        opts = ctx.options
        self.network = ctx.network
        # options
        style_opt = _opt(opts, "style", None)
        self.strict = 0
        self.global_style = "ve"
        if isinstance(style_opt, bytes):
            style_opt = style_opt.decode("latin-1")
        if style_opt:
            low = style_opt.lower()
            if low == "strict":
                self.strict = 1
            elif low == "sloppy":
                self.strict = -1
            else:
                self.global_style = style_opt
        self.strict = int(_opt(opts, "strict_protocol", self.strict))
        if not self.network:
            self.strict = 0
        self.style = self.global_style
        self.opt_h = bool(_opt(opts, "check_helo", False))
        self.opt_g = bool(_opt(opts, "gullible", False))
        self.opt_a = bool(_opt(opts, "ident", False))
        self.opt_B = bool(_opt(opts, "bsmtp", False))
        self.opt_v = bool(_opt(opts, "verbose", False))
        self.opt_L = int(_opt(opts, "maxloadavg", loadavg.NO_LIMIT) or loadavg.NO_LIMIT)
        # settings
        maxsize = int(self.get("maxsize", 0) or 0)
        opt_m = _opt(opts, "maxsize", None)
        if not maxsize and opt_m:
            maxsize = int(opt_m)
        self.maxsize = maxsize
        self.esc_on = bool(self.get("enhancedstatuscodes-ok", True))
        self.multiline = bool(self.get("multiline-replies-ok", True))
        self.pipelining = bool(self.get("pipelining-ok", True))
        self.lmtp = bool(self.get("lmtp-mode", False)) and self._lmtp_allowed()
        self.msa = bool(self.get("msa-mode", False)) or ctx.listener_kind == "submit"
        t = self.get("tarpit", (0.0, 0.0, 0.0)) or (0.0, 0.0, 0.0)
        self.tarpit_initial, self.tarpit_exp, self.tarpit_top = (float(x) for x in t)
        self.tarpit_delay = self.tarpit_initial
        self.tarpit_total = 0.0
        # peer facts
        self.rhostaddr = (
            received.rhostaddr_text(ctx.peer_addr) if (received and ctx.mode != "interactive") else b""
        )
        if ctx.mode == "interactive":
            self.rhostname = b"stdin"
        else:
            self.rhostname = ctx.rhostname or self.rhostaddr
        self.rdns_ok = ctx.rhostname is not None
        self.insecure = ctx.mode != "interactive"
        # protocol state
        self.state = State.HELLO
        self.ehlo = False  # greeted with EHLO (the pipelining guard)
        self.proto_tls = False
        self.proto_auth = False
        self.proto_bsmtp = self.opt_B
        self.proto_helo_only = False
        self.tls_active = False
        self.tls_info: Any = None
        self.authuser: bytes | None = None
        self.heloline = b""
        self.scan = rfc821.ScanState()
        self.unknown_count = 0
        self.verbose_flag = False
        self.debug_level = 0
        self.txn: Transaction | None = None
        self.sender_ok = False
        self.rcpt_count = 0  # RCPT commands since MAIL (policy reporting)
        self.failed_rcpts = 0
        self.policy = ctx.policy
        self.policy_status = 0
        self.policyresult = 0
        self.policy_msg: bytes | None = None
        self.reject_net = False
        self.maxsameip = -1
        self.maxinsize = 0
        self.net_freeze = 0
        self.ended = False
        self.quit_seen = False
        self.exit_status = 0
        self.rhost_flags = ctx.rhost_flags
        if self.rhost_flags is None and received is not None:
            self.rhost_flags = received.RhostFlags()
        # -d N (§3.10, §6; policy.md §10.2): in -i and -n the notes and the
        # policy traces go on the SMTP stream itself as 000- lines.
        self.debug_on = int(_opt(opts, "debug", 0) or 0) >= 1 and ctx.mode in ("interactive", "inetd")
        self._policy_traced = False
        self._greeted = False
        self._deferred: list[bytes] = []
        if self.debug_on:
            ctx.extra["debug_sink"] = self.policy_trace

    # ------------------------------------------------------------------ settings
    def get(self, name: str, default: Any = None) -> Any:
        """A setting by canonical keyword; the default when absent or unknown."""
        s = self._settings
        if s is None:
            return default
        cache = self._got
        if name in cache:  # the settings do not change during a session
            v = cache[name]
        else:
            try:
                v = s.get(name)
            except (KeyError, AttributeError, ValueError):
                v = None
            cache[name] = v
        return default if v is None else v

    def _lmtp_allowed(self) -> bool:
        if self.ctx.mode == "interactive":
            return True
        port_set = bool(self.get("bindport-set", False))
        port = int(self.get("bindport", 25) or 25)
        opt_p = _opt(self.ctx.options, "port", None)
        if opt_p:
            port_set, port = True, int(opt_p)
        return port_set and port != 25

    # ------------------------------------------------------------------ logging
    def note(self, text: bytes) -> None:
        if self.log is not None:
            self.log.note(text)
        if self.debug_on:
            self.debug_out(b"000-" + text)

    def lograw(self, text: bytes) -> None:
        if self.log is not None:
            self.log.raw(text)
        if self.debug_on and text.startswith(b"--"):
            self.debug_out(b"000-" + text)  # "-- policy result=…" (never an AUTH line)

    def debug_out(self, text: bytes | None = None) -> None:
        """Write -d lines on the SMTP stream, after the replies queued so far.

        Lines traced before the session existed (policy start-up) come first.
        """
        pending = list(self.ctx.extra.pop("debug_pending", None) or [])
        if text is not None:
            pending.append(text)
        if not pending:
            return
        try:
            self.stream.flush()
            for data in pending:
                for ln in data.rstrip(b"\r\n").split(b"\n"):
                    self.stream.write(ln.rstrip(b"\r") + b"\r\n")
            self.stream.flush()
        except Exception:  # a debug line never ends a session
            pass

    def policy_trace(self, text: bytes) -> None:
        """A policy -d line (already ``000-``…): to the session log and the stream."""
        if self.log is not None:
            self.log.raw(text.rstrip(b"\r\n"))
        if text.startswith(b"000--- policyresult="):
            self._policy_traced = True
            if not self._greeted:  # §10.3: it follows the greeting
                self._deferred.append(text)
                return
        self.debug_out(text)

    def syslog(self, prio: int, text: bytes) -> None:
        if self.log is not None and hasattr(self.log, "syslog"):
            self.log.syslog(prio, text)

    # ------------------------------------------------------------------ replies
    def reply(
        self,
        code: int,
        esc: bytes | str | None,
        text: bytes | None = None,
        *,
        cont: bool = False,
        tarpit: bool = False,
        flush: bool = False,
    ) -> None:
        """Queue one reply line (the only place that formats replies, §4.1)."""
        if tarpit:
            self.tarpit()
        if isinstance(esc, str):
            esc = esc.encode("ascii")
        if text is None:
            if code in (220, 221, 421):
                text = self.ctx.myhostname
            else:
                text = R.DEFAULT_TEXT.get(code, R.UNKNOWN_CODE_TEXT)
        line = b"%03d%s" % (code, b"-" if cont else b" ")
        if esc and self.esc_on:
            line += esc + b" "
        line += text
        if self.log is not None:
            self.log.sent(line)
        self.stream.write(line + b"\r\n")
        if flush:
            self.stream.flush()

    def reply_lines(self, code: int, esc: bytes | None, lines: list[bytes], **kw: Any) -> None:
        """A multi-line reply: every line but the last is a continuation."""
        for i, text in enumerate(lines):
            last = i == len(lines) - 1
            self.reply(code, esc, text, cont=not last, **(kw if last else {}))

    def send_replylines(self, lines: list[Any], *, final: bool = True, tarpit: bool = False) -> None:
        """Send router/filter ``ReplyLine`` objects; the last one final unless told."""
        for i, rl in enumerate(lines):
            last = i == len(lines) - 1
            self.reply(rl.code, rl.enh, rl.text, cont=not (last and final), tarpit=tarpit and last)

    def caret(self, code: int, esc: bytes, pos: int | None) -> None:
        """The caret line of §4.1.1 (suppressed by no-multiline-replies)."""
        if not self.multiline:
            return
        line = rfc821.caret_line(code, esc, pos, self.esc_on and bool(esc))
        if self.log is not None:
            self.log.sent(line)
        self.stream.write(line + b"\r\n")

    def tarpit(self) -> None:
        """The tarpit delay of §4.12, applied before the reply it precedes."""
        d = self.tarpit_delay
        if d > 0.9999:
            secs = int(d + 0.5)
            self.note(b"tarpit delay:%04d sec. at %s" % (secs, rfc822_date(self.ctx.clock())))
            self.tarpit_total += d
            self.ctx.sleep(secs)
            d = d + d * self.tarpit_exp
            if d < 0 or d > self.tarpit_top:
                d = self.tarpit_top
            self.tarpit_delay = d

    # ------------------------------------------------------------------ state resets
    def reset_transaction(self) -> None:
        """Throw away the open transaction (file unlinked); state is the caller's business."""
        txn, self.txn = self.txn, None
        if txn is not None and txn.file is not None:
            try:
                txn.file.abort()
            except Exception:  # abort never raises by contract; be safe anyway
                pass

    def reset_to_idle(self) -> None:
        """Transaction gone and MAIL required again (README Q3 deviation)."""
        self.reset_transaction()
        if self.state != State.HELLO:
            self.state = State.MAIL_OR_HELLO

    def reset_session(self) -> None:
        """Back to the state before EHLO (STARTTLS, RFC 3207)."""
        self.reset_transaction()
        self.sender_ok = False
        self.ehlo = False
        self.heloline = b""
        self.style = self.global_style
        self.state = State.HELLO if not self._initial_mail_or_hello() else State.MAIL_OR_HELLO

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Greet, then process commands until the session ends."""
        try:
            if self.start():
                while not self.ended:
                    self.one_command()
        except SessionEnd:
            pass
        except Exception:
            self.internal_error()
        finally:
            self.finish()
        return self.exit_status

    def internal_error(self) -> None:
        """Unexpected exception: 451 4.3.0 to the client, traceback to the log only."""
        for ln in traceback.format_exc().splitlines():
            self.note(ln.encode("latin-1", "replace"))
        try:
            self.reset_to_idle()
            self.reply(451, b"4.3.0", R.INTERNAL_ERROR, flush=True)
        except Exception:
            pass

    def finish(self) -> None:
        """End of session (§4.4.1): drop the transaction, log, flush, close helpers."""
        if self.txn is not None and self.txn.file is not None:
            self.note(b"aborted (%d bytes): session terminated" % self._txn_size())
        self.reset_transaction()
        if not self.quit_seen:
            self.note(b"Session closed w/o QUIT; read() errno=0")
        if self.tarpit_delay != self.tarpit_initial:
            self.note(
                b"tarpit with delay %04d ends at %s" % (int(self.tarpit_total), rfc822_date(self.ctx.clock()))
            )
        if self.policy is not None and self.failed_rcpts and hasattr(self.policy, "report_failed_rcpts"):
            try:
                self.policy.report_failed_rcpts(self.failed_rcpts)
            except Exception:
                pass
        try:
            self.stream.flush()
        except Exception:
            pass
        for helper in (self.ctx.router, self.ctx.contentfilter, self.policy):
            if helper is not None and hasattr(helper, "close"):
                try:
                    helper.close()
                except Exception:
                    pass

    def _txn_size(self) -> int:
        f = self.txn.file if self.txn else None
        if f is None:
            return 0
        return int(getattr(f, "size", 0) or 0) + len(getattr(f, "buf", b""))

    # ------------------------------------------------------------------ session start (§4.2)
    def _initial_mail_or_hello(self) -> bool:
        if self.strict < 0:
            return True
        if not self.insecure or self.rhostaddr == b"[127.0.0.1]":
            cfg = self.ctx.config
            pat = cfg.find_pattern(b"127.0.0.1") if cfg is not None else None
            if pat is None or pat.flags == "-":
                return True
        return False

    def start(self) -> bool:
        """Session start: load limit, policy, greeting.  False: the session is over."""
        ctx = self.ctx
        if loadavg.too_loaded(self.opt_L, self.ctx.loadavg_path):
            self.reply(421, b"4.3.2", loadavg.TEXT, flush=True)
            self.ended = True
            return False
        implicit = ctx.tls is not None and (
            ctx.listener_kind == "smtps" or bool(_opt(ctx.options, "tls_on_connect", False))
        )
        initial = b"" if implicit else self._outlook_hello()
        if implicit or initial:
            try:
                t = ctx.tls.handshake(self.stream.transport, initial=initial)
            except Exception as e:
                self.note(b"Implicite STARTTLS failed: %s" % str(e).encode("latin-1", "replace"))
                self.exit_status = 2
                self.ended = True
                return False
            self.stream.replace_transport(t)
            self.tls_active = True
            self.proto_tls = True
            self.tls_info = getattr(t, "info", None)
        if self.debug_on:
            self.debug_out()  # the policy start-up lines, before the greeting
        if self.network:
            pol = self.policy
            self.policy_status = int(getattr(pol, "status", 1)) if pol is not None else 1
            if self.policy_status == 0:
                ans = self._policy_call("connect", ctx.peer_addr, self.rhostname)
                # a reverse-name rejection keeps the 220 but refuses RCPT later
                self.policyresult = int(getattr(pol, "policyresult", ans.result))
                self.policy_msg = ans.msg
                self.net_freeze = ans.freeze
                self.reject_net = ans.result < 0
                self.maxsameip = int(getattr(pol, "maxsameip", -1))
                mi = getattr(pol, "maxinsize", -1)
                self.maxinsize = -1 if mi is None else int(mi)
                if self.maxsameip == 0:
                    self.reject_net = True
            else:
                self.maxsameip = 0  # 3.0.1: fail closed without a usable policy database
        if self.network and self.get("use-tcp-wrapper", False) and not self._tcpwrap_allows():
            return False
        me = ctx.myhostname
        a = self.rhostaddr
        if self.reject_net:
            self.reply(550, b"5.7.1", R.REJECT_NET_1 % a, cont=True)
            self.reply(550, b"5.7.1", R.REJECT_NET_2 % a, cont=True, flush=True)
            if self.policy_msg:
                self.reply(550, b"5.7.1", R.REJECT_NET_MSG % (a, self.policy_msg), tarpit=True)
            else:
                self.reply(550, b"5.7.1", R.REJECT_NET_DEFAULT % (a, me), tarpit=True)
        elif self.maxsameip >= 0 and ctx.sameip > self.maxsameip:
            self.reply(450, None, R.SAMEIP_450 % (me, ctx.sameip, self.maxsameip), tarpit=True)
        else:
            self.greeting()
        self.stream.flush()
        self.state = State.MAIL_OR_HELLO if self._initial_mail_or_hello() else State.HELLO
        if self.policyresult != 0 or self.policy_msg:
            text = b"-- policyresult=%d initial policy msg: %s" % (self.policyresult, self.policy_msg or b"<NONE!>")
            if not self._policy_traced:  # else the policy's -d trace shows it (below)
                self.note(text)
        self._greeted = True
        if self._deferred:
            self.debug_out(b"\n".join(self._deferred))
            self._deferred = []
        return True

    def _tcpwrap_allows(self) -> bool:
        """§4.2 step 6 (interfaces.md §6.3): hosts.allow/hosts.deny for smtp-receiver.

        A refusal is answered with 421 (no ESC), a 2 s pause, and the end of
        the session.  Files: ``PARAM tcp-wrapper-files ALLOW DENY``.
        """
        from zmailer_smtpd import tcpwrap

        ctx = self.ctx
        files = str(self.get("tcp-wrapper-files", "") or "").split()
        allow, deny = (files + [tcpwrap.HOSTS_ALLOW, tcpwrap.HOSTS_DENY][len(files):])[:2]
        flags = self.rhost_flags
        name = None
        if ctx.rhostname and getattr(flags, "fwd", None) == "OK":
            name = ctx.rhostname.decode("latin-1")
        ident = ctx.ident.decode("latin-1") if (self.opt_a and ctx.ident) else None
        if tcpwrap.allowed(tcpwrap.DAEMON, ctx.peer_addr or "", name, allow, deny,
                           client_user=ident, server_addr=ctx.local_addr):
            return True
        why = b"refusing connection from %s:%d/%s" % (
            self.rhostname, ctx.peer_port, ctx.ident or b"IDENT-NOT-QUERIED")
        self.syslog(LOG_WARNING, why)
        self.note(b"tcp-wrapper: " + why)
        self.reply(421, None, tcpwrap.REFUSAL % (ctx.myhostname, ctx.version, rfc822_date(ctx.clock())),
                   flush=True)
        ctx.sleep(2)
        self.ended = True
        return False

    def _outlook_hello(self) -> bytes:
        """``outlook-tls-bug`` as the manual says: on a port other than 25, a TLS
        hello sent within 2 s without STARTTLS (0x16 record, or 0x80 SSLv2
        hello) gets implicit TLS; its bytes go back to the handshake.
        3.0.1 never did this (interfaces.md T-26)."""
        ctx = self.ctx
        if ctx.tls is None or not self.network or not self.get("outlook-tls-bug", False):
            return b""
        if ctx.local_port in (25, -1) or ctx.local_port is None:
            return b""
        data = self.stream.peek_some(timeout=2.0)
        if data[:1] in (b"\x16", b"\x80"):
            self.stream.consume(len(data))
            self.note(b"outlook-tls-bug: TLS hello without STARTTLS, starting TLS")
            return data
        return b""

    def greeting(self) -> None:
        lines = list(self.get("hdr220", []) or []) or [R.GREETING_DEFAULT]
        lines = [x if isinstance(x, bytes) else str(x).encode("latin-1") for x in lines[:5]]
        out = [self._expand220(x)[:8000] for x in lines]
        self.reply_lines(220, None, out)

    def _expand220(self, tmpl: bytes) -> bytes:
        """The greeting's %-tags; a lone % at the end stays, %X and unknown tags are dropped."""
        if b"%" not in tmpl:
            return tmpl
        ctx = self.ctx
        parts = tmpl.split(b"%")
        out = [parts[0]]
        i = 1
        while i < len(parts):
            p = parts[i]
            i += 1
            if not p:
                if i == len(parts):  # the template ended in a lone %
                    out.append(b"%")
                    break
                out.append(b"%")  # "%%": a literal %, and the text after it is plain
                out.append(parts[i])
                i += 1
                continue
            t = p[:1]
            if t == b"H":
                out.append(ctx.myhostname)
            elif t == b"I":
                out.append(b"+IDENT" if self.opt_a else b"")
            elif t == b"i":
                out.append(self.rhostaddr)
            elif t == b"p":
                out.append(b"%d" % ctx.local_port)
            elif t == b"V":
                out.append(ctx.version)
            elif t == b"T":
                out.append(rfc822_date(ctx.clock()))
            out.append(p[1:])
        return b"".join(out)

    # ------------------------------------------------------------------ command loop (§4.4)
    def one_command(self) -> None:
        st = self.stream
        # Replies wait only for commands already read in: before our reply goes out
        # a client that does not pipeline has sent nothing, so no poll for it.
        if not (self.pipelining and st.buffered()):
            st.flush()
        if self.ctx.must_exit():
            self.ended = True
            return
        line = st.s_gets()
        if line.n == 0 or self.ctx.must_exit():
            self.ended = True
            return
        # step 2: the pipelining guard (network sessions only; README decision)
        pend = st.pending()
        if pend:
            self.note(b"-- pipeline input exists %d bytes" % pend)
            if st.eof and self.tarpit_delay >= 1.0:
                self.note(b"BAILING OUT")
                self.ended = True
                return
            if self.network and self.ctx.mode != "interactive" and not self.ehlo:
                self.reply(550, b"5.7.1", R.PIPELINE_GUARD % self.rhostaddr, flush=True)
                self.ended = True
                return
        text = line.text
        if self.strict < 1:
            text = text.rstrip(b" \t")
        log = self.log
        if log is not None and getattr(log, "active", True):  # an idle log needs no redaction
            log.received(_redact_auth(text))
        # step 5: illegal bytes
        if line.bad is not None and not (self.strict < 1 and text[:4].upper() in (b"HELO", b"EHLO")):
            b = line.stored[line.bad]
            what = R.ILLEGAL_NUL if b == 0 else R.ILLEGAL_8BIT if b >= 0x80 else R.ILLEGAL_CTRL
            self.caret(500, b"5.5.2", line.bad)
            self.reply(500, b"5.5.2", R.ILLEGAL_INPUT % what, flush=True)
            return
        # step 6: termination
        terminated = line.terminated
        if not terminated and line.n > 3 and text.upper() != b"QUIT":
            terminated = True
        if not terminated or (self.strict > 0 and not line.crlf):
            if line.n >= 8191:
                self.reply(500, b"5.5.2", R.LINE_TOO_LONG % line.n, flush=True)
            else:
                self.reply(500, b"5.5.2", R.NOT_TERMINATED, flush=True)
            return
        # step 7
        if self.opt_v and self.ctx.mode == "interactive":
            if self.ctx.out_of_band is not None:
                self.ctx.out_of_band(text + b"\n")
            else:  # stdout is the reply stream in -i
                self.stream.write(text + b"\n")
        if self.network and self.ctx.mode != "interactive" and self.ctx.proctitles:
            try:
                proctitle.command(self.rhostname, text)
            except Exception:
                pass
        try:
            self.dispatch(text, line)
        except SessionEnd:
            raise
        except Exception:
            self.internal_error()
        router = self.ctx.router
        if router is not None and getattr(router, "too_many_failures", False):
            self.ended = True

    def _verb_of(self, text: bytes) -> tuple[bytes, str | None]:
        verb = _VERB.match(text).group()  # type: ignore[union-attr]  # [^ \t]* always matches
        if len(verb) > 8:
            return verb, None
        handler = VERB_MAP.get(verb.upper())
        if handler is None:
            return verb, None
        if handler == "LHLO" and not self.lmtp:
            return verb, None
        if handler in ("HELO", "EHLO") and self.lmtp:
            return verb, None
        g = GATES.get(handler)
        if g is not None:
            default = g.endswith("-ok")
            if not self.get(g, default):
                return verb, None
        if handler == "REPORT":
            return verb, None
        return verb, handler

    def dispatch(self, text: bytes, line: Line) -> None:
        verb, handler = self._verb_of(text)
        if handler is None:
            self.unknown(text)
            return
        if handler == "SILENT":
            return
        if self.network and self.ctx.config is not None and not getattr(self.ctx.config, "configured", True):
            self.reply(400, b"4.7.0", R.NOT_CONFIGURED, tarpit=True, flush=True)
            self.syslog(LOG_EMERG, b"smtpserver configuration missing!")
            self.ctx.sleep(self.ctx.penalty_sleep)
            return
        if self.network and self.policy_status != 0 and handler not in ("QUIT", "HELP"):
            why = R.POLICY_PROBLEM_OPEN if self.policy_status == 2 else R.POLICY_PROBLEM_CONFIG
            self.reply(400, b"4.7.0", R.POLICY_PROBLEM_1, cont=True, tarpit=True)
            self.reply(400, b"4.7.0", R.POLICY_PROBLEM_2 % why, flush=True)
            self.syslog(LOG_EMERG, b"smtpserver policy database problem, code: %d" % self.policy_status)
            self.ctx.sleep(self.ctx.penalty_sleep)
            return
        if self.reject_net and handler not in ("QUIT", "HELP"):
            a = self.rhostaddr
            self.reply(550, b"5.7.1", R.REJECT_NET_CMD_1 % a, cont=True)
            self.reply(550, b"5.7.1", R.REJECT_NET_CMD_2, cont=True, flush=True)
            self.reply(550, b"5.7.1", R.REJECT_NET_CMD_3 % a, tarpit=True, flush=True)
            return
        if self.msa and self.authuser is None:
            from zmailer_smtpd.auth import msa_check

            trusted = bool(getattr(self.policy, "trusted", False))
            gate = msa_check(handler.encode("ascii"), authenticated=False, trusted=trusted, rhostaddr=self.rhostaddr)
            if gate is not None and not trusted:  # trusted MAIL: smtp_mail's own 530 5.5.1 (state first)
                self.reply(gate[0], gate[1], gate[2])
                return
        getattr(self, METHODS[handler])(verb, text, line)

    def unknown(self, text: bytes) -> None:
        """Unknown or disabled verb (§4.4 step 8, §4.11)."""
        self.unknown_count += 1
        limit = int(self.get("max-unknown-commands", 10))
        self.syslog(
            LOG_WARNING,
            b"unknown SMTP command '%s' from %s/%d" % (text, self.rhostname, self.ctx.peer_port),
        )
        if self.unknown_count >= limit:
            self.reply(550, b"5.5.2", R.TOO_MANY_UNKNOWN % (self.rhostaddr, text), flush=True)
            self.ended = True
            return
        self.reply(550, b"5.5.2", R.UNKNOWN_COMMAND % text, tarpit=True, flush=True)

    # ------------------------------------------------------------------ helpers
    def _arg(self, text: bytes, verb: bytes) -> bytes:
        """Text after the verb with leading blanks skipped."""
        return text[len(verb) :].lstrip(b" \t")

    def _has_style(self, letter: str) -> bool:
        return letter in self.style

    def _router_checks(self, on: str, off: str) -> bool:
        """MAIL (f/F) or RCPT (t/T) goes to the router: `on` present, `off` absent.

        The manual's rule (spec/README.md decision); 3.0.1 checked whenever
        ``enable-router`` was set unless F/T was given.
        """
        return bool(self.get("enable-router", False)) and self._has_style(on) and not self._has_style(off)

    def _policy_call(self, kind: str, *args: Any) -> PolicyAnswer:
        pol = self.policy
        fn = getattr(pol, kind, None) if pol is not None else None
        if fn is None:
            return PolicyAnswer()
        ans = fn(*args)
        if ans is None:
            return PolicyAnswer()
        if isinstance(ans, PolicyAnswer):
            return ans
        return PolicyAnswer(
            int(getattr(ans, "result", 0)), getattr(ans, "msg", None), int(getattr(ans, "freeze", 0) or 0)
        )

    def _strict_addr(self) -> bool:
        return (self._has_style("R") and not self._has_style("S")) or self.strict > 0

    def _sloppy(self) -> bool:
        return self._has_style("S")

    def _features(self) -> esmtp.Features:
        return esmtp.Features(
            dsn=bool(self.get("dsn-ok", True)),
            eightbitmime=bool(self.get("8bitmime-ok", True)),
            auth=bool(self.get("smtp-auth", False)),
            deliverby=int(self.get("deliverby", -1)),
            strict=self.strict > 0 or (self._has_style("R") and not self._has_style("S")),
            sloppy=self._sloppy(),
        )

    def _param_error(self, e: esmtp.ParamError, tarpit: bool) -> None:
        if e.caret:
            self.caret(e.code, e.esc, self.scan.error_pos)
        self.reply_lines(e.code, e.esc, e.lines, tarpit=tarpit)

    # ------------------------------------------------------------------ HELO / EHLO / LHLO (§4.7.1)
    def smtp_helo(self, verb: bytes, text: bytes, line: Line) -> None:
        self._hello(b"HELO", verb, text)

    def smtp_ehlo(self, verb: bytes, text: bytes, line: Line) -> None:
        self._hello(b"EHLO", verb, text)

    def smtp_lhlo(self, verb: bytes, text: bytes, line: Line) -> None:
        self._hello(b"LHLO", verb, text)

    def _hello(self, kind: bytes, verb: bytes, text: bytes) -> None:
        me = self.ctx.myhostname
        a = self.rhostaddr
        self.reset_to_idle()
        self.sender_ok = False
        start = len(verb) + 1 if len(text) > len(verb) else len(text)
        self.heloline = text[:199]
        self.scan.reset()
        ok = rfc821.helo_check(self.scan, text, start)
        arg = text[start:]
        if self.strict < 1:
            arg = arg.lstrip(b" \t")
        if self.rhost_flags is not None and hasattr(self.rhost_flags, "add_helo"):
            resolves = False
            if ok and self.ctx.helo_resolves is not None:
                try:
                    resolves = bool(self.ctx.helo_resolves(arg))
                except Exception:
                    resolves = False
            self.rhost_flags.add_helo(ok, resolves)
        if self.network and self.policy_status == 0:
            ans = self._policy_call("helo", arg)
            if ans.result != 0 or ans.msg:
                self.lograw(b"-- policy result=%d, msg: %s" % (ans.result, ans.msg or b""))
            if ans.result < 0:
                self.policyresult = ans.result
        if self.opt_h and not self.opt_g and not ok:
            self.tarpit()
            self.caret(501, b"", self.scan.error_pos)
            self.reply(501, None, R.HELO_INVALID % text[:200], cont=True)
            self.reply(501, b"5.7.1", R.HELO_SORRY_ERR % (a, rfc821.error_message(self.scan)), flush=True)
            self.heloline = R.BAD_HELO_INPUT
            return
        warn = not ok and kind in (b"EHLO", b"LHLO") and not self.opt_h
        pat = self.ctx.config.find_pattern(arg) if self.ctx.config is not None else None
        if pat is not None and pat.reject:
            self.style = pat.flags
            msg = pat.message or R.HELO_PATTERN_DENIED
            self.reply(501, b"5.7.1", R.HELO_PATTERN_REJECT % (a, msg), tarpit=True, flush=True)
            return
        if pat is not None:
            self.style = pat.flags
            if loadavg.too_loaded(pat.maxloadavg, self.ctx.loadavg_path):
                self.reply(421, b"4.3.2", loadavg.TEXT, flush=True)
                self.ended = True
                return
        else:
            self.style = self.global_style
        if warn:
            self.caret(250, b"", self.scan.error_pos)
            self.reply(250, None, R.HELO_INVALID % text[:200], cont=True)
            self.reply(250, b"5.7.1", R.HELO_SORRY_ERR % (a, rfc821.error_message(self.scan)), cont=True)
        router = self.ctx.router
        if self._has_style("h"):
            from zmailer_smtpd import router as rmod

            if router is None or not self.get("enable-router", False):
                # T-12 (interfaces.md §8.1 R11): style h without the router refuses HELO/EHLO
                self.send_replylines([rmod.ROUTER_NOT_ENABLED], tarpit=True)
                self.stream.flush()
                return
            ans = router.check("hello", rmod.prepare_hello(a or b"[0.0.0.0]", self.rhostname))
            if not ans.ok:
                self.send_replylines(ans.lines, tarpit=True)
                self.stream.flush()
                return
            self.send_replylines(ans.lines, final=False)
        is_ehlo = kind == b"EHLO"
        if not self.opt_g and a and self.ctx.rhostname is not None and arg.lower() != self.rhostname.lower():
            if self.opt_h:
                self.reply(250, None, R.HELO_INCONSISTENT_1 % me, cont=True)
                self.reply(250, None, R.HELO_INCONSISTENT_2 % me, cont=True)
            first = R.HELO_EXPECTED % (me, kind, self.rhostname)
        else:
            first = R.HELO_HELLO % (me, arg)
        if is_ehlo:
            self.reply(250, None, first, cont=True)
            self.ehlo_capabilities()
            self.ehlo = True
            self.proto_helo_only = False
        else:
            self.reply(250, None, first)
            # HELO replaces the protocol markers (C quirk kept: visible in the spool "with")
            self.ehlo = False
            self.proto_helo_only = True
            self.proto_tls = False
            self.proto_auth = False
            self.proto_bsmtp = False
        self.state = State.MAIL_OR_HELLO
        self.stream.flush()

    def _size_advert(self) -> int:
        p = self.maxinsize if self.network else 0
        m = self.maxsize
        n = m
        if p >= 0:
            n = p
        if m != 0 and m < n:
            n = m
        if m != 0 and n == 0:
            n = m
        return n

    def _on_port25(self) -> bool:
        return self.network and self.ctx.listener_kind == "smtp" and not self.proto_helo_only

    def ehlo_capabilities(self) -> None:
        caps = [b"SIZE %d" % self._size_advert()]
        if self.get("8bitmime-ok", True):
            caps.append(b"8BITMIME")
        if self.pipelining:
            caps.append(b"PIPELINING")
        if self.get("chunking-ok", True):
            caps.append(b"CHUNKING")
        if self.esc_on:
            caps.append(b"ENHANCEDSTATUSCODES")
        if self.get("expncmd", False) and self._has_style("e"):
            caps.append(b"EXPN")
        if self.get("vrfycmd", False) and self._has_style("v"):
            caps.append(b"VRFY")
        if self.get("dsn-ok", True):
            caps.append(b"DSN")
        db = int(self.get("deliverby", -1))
        if db == 0:
            caps.append(b"DELIVERBY")
        elif db > 0:
            caps.append(b"DELIVERBY %d" % db)
        limit = max(100, int(self.get("rcptlimitcount", 10000)))
        if limit > 100:
            caps.append(b"X-RCPTLIMIT %d" % limit)
        auth = self.ctx.auth
        if auth is not None and self.get("smtp-auth", False):
            caps += list(auth.ehlo_lines(tls_active=self.tls_active, plain_listener=self._on_port25()))
        if self.get("use-tls", False) and self.ctx.tls is not None and not self.tls_active:
            caps.append(b"STARTTLS")
        if self.get("etrn-ok", True) and not self.msa:
            caps.append(b"ETRN")
        caps.append(b"HELP")
        for c in caps[:-1]:
            self.reply(250, None, c, cont=True)
        self.reply(250, None, caps[-1])

    # ------------------------------------------------------------------ MAIL (§4.7.2)
    def smtp_mail(self, verb: bytes, text: bytes, line: Line) -> None:
        a = self.rhostaddr
        self.sender_ok = False
        if self.state != State.MAIL_OR_HELLO:
            why = {
                State.HELLO: R.MAIL_WAIT_HELO % a,
                State.RECIPIENT: R.MAIL_WAIT_RCPT % a,
            }.get(self.state, R.MAIL_NESTED % a)
            self.reply(503, b"5.5.1", why, tarpit=True)
            return
        if self.msa and self.authuser is None:
            self.reply(530, b"5.5.1", R.MSA_MUST_AUTH % a, tarpit=True)
            return
        self.rcpt_count = 0
        buf, p = self._after_verb(verb, text, lax=self.strict < 1 or self._sloppy())
        if buf[p : p + 5].upper() != b"FROM:":
            self.reply(501, b"5.5.2", R.MAIL_NO_FROM % a, tarpit=True)
            return
        res = self._route_path(buf, p + 5, is_mail=True)
        if res is None:
            return
        addr, note, p = res
        try:
            mp = esmtp.parse_mail(bytes(buf), p, self._features(), self.scan, now=self.ctx.clock())
        except esmtp.ParamError as e:
            self._param_error(e, tarpit=True)
            return
        if mp.auth is not None:  # AUTH=: valid xtext is accepted and discarded (interfaces.md §3.7)
            from zmailer_smtpd.auth import check_mail_auth_param

            bad = check_mail_auth_param(mp.auth)
            if bad is not None:
                self.reply(bad[0], bad[1], bad[2], tarpit=True)
                return
        addr = rfc821.quote_local_part(addr)
        # policy
        freeze = 0  # freezesource: this transaction's verdict (spool.md §11)
        if self.network and self.policy_status == 0:
            ans = self._policy_call("mail", addr)
            self.policyresult = ans.result
            self.policy_msg = ans.msg
            if ans.result < 0:
                self._mail_policy_reject(ans, addr)
                return
            freeze = ans.freeze
        go_on, router_ans = self._router_address("from", "f", "F", addr)
        if not go_on:
            return
        spool = self.ctx.spool
        if spool is None:
            self.reply(452, b"4.3.0", R.STORAGE_452, tarpit=True)
            return
        size = mp.size
        if self.maxsize > 0 and size > self.maxsize:
            self._router_prefix(router_ans)
            self.reply(552, b"5.3.4", R.MAIL_TOO_LARGE % self.maxsize, tarpit=True)
            return
        avail = spool.measure()
        if size > avail:
            self._router_prefix(router_ans)
            self.reply(452, b"4.3.1", R.MAIL_NO_SPACE, tarpit=True)
            return
        txn = Transaction(sender=addr, params=mp, freeze=freeze)
        try:
            txn.file = spool.open_message()
            self.txn = txn
            self._write_mail_records(txn, addr, mp, freeze)
        except SpoolError as e:
            self.note(b"spool failure at MAIL: %s" % str(e).encode("latin-1", "replace"))
            self.reset_transaction()
            self._router_prefix(router_ans)
            code, esc, stext = e.reply
            self.reply(int(code), _b(esc), _b(stext), tarpit=True)
            return
        self.sender_ok = True
        self.state = State.RECIPIENT
        if router_ans is not None:
            self.send_replylines(router_ans.lines)  # router.map_answer added "; Ok" (§1.6)
        else:
            self.reply(250, b"2.1.0", R.MAIL_OK_ROUTE if note else R.MAIL_OK)

    def _router_address(self, kind: str, on: str, off: str, addr: bytes) -> tuple[bool, Any]:
        """MAIL/RCPT router check when the style asks for it: (go on?, the router's answer).

        A refusal is answered here (with the tarpit); None means no check was made.
        """
        router = self.ctx.router
        if router is None or not self._router_checks(on, off):
            return True, None
        from zmailer_smtpd import router as rmod

        ans = router.check(kind, rmod.prepare_address(addr, self._allow_route()))
        if not ans.ok:
            self.send_replylines(ans.lines, tarpit=True)
            return False, ans
        return True, ans

    def _router_prefix(self, ans: Any) -> None:
        if ans is not None and len(ans.lines) > 1:
            self.send_replylines(ans.lines[:-1], final=False)

    def _allow_route(self) -> bool:
        if self.get("allowsourceroute", False):
            return True
        z = self.ctx.zenv
        try:
            v = z.get("ALLOWSOURCEROUTE") if z is not None else None
        except Exception:
            v = None
        return bool(v)

    def _mail_policy_reject(self, ans: PolicyAnswer, addr: bytes) -> None:
        a = self.rhostaddr
        r, msg = ans.result, ans.msg
        if msg:
            code, esc = (451, b"4.7.1") if r <= -100 else (553, b"5.7.1")
            text = R.POLICY_MAIL_MSG % (a, addr, msg)
        elif r <= -104:
            code, esc, text = 451, b"4.4.3", R.POLICY_MAIL_TEMPDNS % (a, addr)
        elif -103 <= r <= -101:
            code, esc, text = 451, b"4.4.3", R.POLICY_MAIL_DNS % (a, addr)
        elif r == -100:
            code, esc, text = 451, b"4.7.1", R.POLICY_MAIL_DENIED_TEMP % (a, addr)
        elif r <= -2:
            code, esc, text = 553, b"5.4.3", R.POLICY_MAIL_DNS_PERM % (a, addr)
        else:
            code, esc, text = 553, b"5.7.1", R.POLICY_MAIL_DENIED % (a, addr)
        self.reply(code, esc, text, tarpit=True)

    def _trace_info(self) -> Any:
        assert received is not None
        return received.TraceInfo(
            rhostname=self.rhostname,
            rhostaddr=self.rhostaddr,
            rport=self.ctx.peer_port,
            heloline=self.heloline,
            flags=self.rhost_flags,
            ident=self.ctx.ident,
            whoson=self._whoson_trace(),
            authuser=self.authuser,
            cipherinfo=_tls_field(self.tls_info, "cipher_info"),
            peersubject=_tls_field(self.tls_info, "peer_subject"),
        )

    def _whoson_trace(self) -> bytes | None:
        """The -w lookup's trace text (interfaces.md §6.2); None when not queried."""
        w = self.ctx.extra.get("whoson")
        return None if w is None else str(w.trace).encode("latin-1", "replace")

    def _with_value(self) -> bytes:
        assert received is not None
        return received.with_value(
            ehlo=self.ehlo and not self.proto_helo_only,
            tls=self.proto_tls,
            auth=self.proto_auth,
            bsmtp=self.proto_bsmtp,
            submit=self.ctx.listener_kind == "submit" and not self.proto_helo_only,
        )

    def _write_mail_records(self, txn: Transaction, addr: bytes, mp: esmtp.MailParams, freeze: int) -> None:
        f = txn.file
        assert received is not None
        if self.insecure:
            f.record(b"external")
        if self.authuser is not None:
            f.record(b"comment", received.auth_comment_value(self.authuser))
        if self.network:
            ti = self._trace_info()
            f.record(
                b"rcvdfrom",
                received.rcvdfrom_value(
                    ti,
                    rcvd_ident=self.opt_a and bool(self.get("rcvd-ident", False)),
                    rcvd_whoson=bool(self.get("rcvd-whoson", False)),
                    rcvd_auth_user=bool(self.get("rcvd-auth-user", False)),
                    rcvd_tls_mode=bool(self.get("rcvd-tls-mode", False)),
                    rcvd_tls_peer=bool(self.get("rcvd-tls-peer", False)),
                ),
            )
            f.record(b"comment", received.summary_comment_value(
                ti, whoson=bool(_opt(self.ctx.options, "whoson", False))))
        if mp.body is not None:
            f.record(b"bodytype", mp.body)
        f.record(b"with", self._with_value())
        if self.opt_a and self.ctx.ident is not None:
            f.record(b"identinfo", self.ctx.ident)
        if addr:
            f.record(b"from", b"<" + addr + b">")
        else:
            f.record(b"channel", b"error")
        if freeze or self.net_freeze:
            f.record(b"comment", b"policytest() reported freeze state")
        if mp.envid is not None:
            f.record(b"envid", mp.envid)
        if mp.ret is not None:
            f.record(b"notaryret", mp.ret)

    @staticmethod
    def _after_verb(verb: bytes, text: bytes, *, lax: bool) -> tuple[bytearray, int]:
        """MAIL/RCPT steps 5-6: the line as a buffer and the index after the verb's blank(s)."""
        buf = bytearray(text)
        p = len(verb)
        if p < len(buf) and buf[p] == 0x20:
            p += 1
        if lax:
            while p < len(buf) and buf[p] in (0x20, 0x09):
                p += 1
        return buf, p

    def _route_path(
        self, buf: bytearray, p: int, *, is_mail: bool
    ) -> tuple[bytes, bytes, int] | None:
        """The scanned path without a source route unless allowed: (addr, note, end)."""
        res = self._scan_path(buf, p, is_mail=is_mail)
        if res is None:
            return None
        addr, p = res
        addr, note = rfc821.strip_source_route(addr, self._allow_route())
        return addr, note, p

    def _scan_path(self, buf: bytearray, p: int, *, is_mail: bool) -> tuple[bytes, int] | None:
        """Steps 7-10 of MAIL / 7-10 of RCPT: find and scan the path; None when refused."""
        a = self.rhostaddr
        sloppy = self._sloppy()
        lax = self.strict < 1 or sloppy
        esc = b"5.1.7" if is_mail else b"5.1.3"
        self.scan.reset()
        if lax:
            q = p
            while q < len(buf) and buf[q] in (0x20, 0x09):
                q += 1
            if q < len(buf) and buf[q] != 0x3C:
                if not (sloppy or self.strict < 0):
                    if is_mail:
                        self.reply(501, esc, R.MAIL_WHERE_BRACKET % a, tarpit=True)
                    else:
                        self.reply(501, esc, R.RCPT_WHERE_BRACKET % bytes(buf[q:]), tarpit=True)
                    return None
            p = q
        if p >= len(buf):
            if is_mail:
                self.reply(501, esc, R.MAIL_WHERE_BRACKET_EOL % a, tarpit=True)
            else:
                self.reply(501, esc, R.RCPT_WHERE_BRACKET % b"", tarpit=True)
            return None
        bracketed = buf[p] == 0x3C
        if not bracketed and not (sloppy or self.strict < 0):
            if is_mail:
                self.reply(501, esc, R.MAIL_STRANGENESS % (a, bytes(buf[p:])), tarpit=True)
            else:
                self.reply(501, esc, R.RCPT_STRANGENESS % bytes(buf[p:]), tarpit=True)
            return None
        if bracketed and not is_mail and p + 1 < len(buf) and buf[p + 1] == 0x3E:
            self.reply(501, esc, R.RCPT_NULL % bytes(buf[p:]), tarpit=True)
            return None
        if sloppy and bracketed:
            while p + 1 < len(buf) and buf[p + 1] == 0x3C:
                p += 1
        if bracketed and p + 1 < len(buf) and buf[p + 1] == 0x3C:
            self.reply(501, esc, R.TOO_MANY_LT % bytes(buf[p:]), tarpit=True)
            return None
        strict = self._strict_addr()
        if bracketed and not sloppy:
            e = rfc821.path(self.scan, buf, p, strict)
            if e == p:
                if not is_mail and bytes(buf[p : p + 12]).upper() == b"<POSTMASTER>":
                    e = p + 12
                else:
                    self._path_syntax_error(is_mail, esc, bytes(buf[p:]))
                    return None
            addr = bytes(buf[p + 1 : e - 1])
            if e < len(buf) and buf[e] == 0x3E:
                if is_mail:
                    self.reply(501, esc, R.MAIL_TOO_MANY_GT % (a, bytes(buf[p:])), tarpit=True)
                else:
                    self.reply(501, esc, R.RCPT_TOO_MANY_GT % bytes(buf[p:]), tarpit=True)
                return None
            return addr, e
        if bracketed:  # sloppy
            if not is_mail:
                rfc821.path(self.scan, buf, p, False)  # its blank deletion persists
                esc = b"5.1.7"
            q = p + 1
            while q < len(buf) and buf[q] in (0x20, 0x09):
                q += 1
            e = rfc821.path2(self.scan, buf, q, False)
            if e == q and not (q < len(buf) and buf[q] == 0x3E):
                self._path_syntax_error(is_mail, esc, bytes(buf[q:]))
                return None
            addr = bytes(buf[q:e])
            r = e
            while r < len(buf) and buf[r] in (0x20, 0x09):
                r += 1
            if r >= len(buf) or buf[r] != 0x3E:
                self.caret(501, esc, r)
                if is_mail:
                    self.reply(501, esc, R.MISSING_GT, cont=True)
                    self.reply(501, esc, R.MAIL_THAT_WAS % (a, bytes(buf[q:])), tarpit=True)
                else:
                    self.reply(501, esc, R.RCPT_MISSING_GT % bytes(buf[p + 1 :]))
                return None
            return addr, r + 1
        # bare address (sloppy or -s sloppy)
        e = rfc821.path2(self.scan, buf, p, strict)
        if e == p:
            self._path_syntax_error(is_mail, esc, bytes(buf[p:]))
            return None
        if e < len(buf) and buf[e] == 0x3E:
            if is_mail:
                self.reply(501, esc, R.MAIL_TOO_MANY_GT_BARE % a, tarpit=True)
            else:
                self.reply(501, esc, R.RCPT_TOO_MANY_GT_BARE, tarpit=True)
            return None
        return bytes(buf[p:e]), e

    def _path_syntax_error(self, is_mail: bool, esc: bytes, rest: bytes) -> None:
        """The scanner's complaint at its caret; MAIL also quotes what it got (``rest``)."""
        self.caret(501, esc, self.scan.error_pos)
        if is_mail:
            self.reply(501, esc, rfc821.path_data(self.scan), cont=True)
            self.reply(501, esc, R.MAIL_THAT_WAS % (self.rhostaddr, rest), tarpit=True)
        else:
            self.reply(501, esc, rfc821.path_data(self.scan))

    # ------------------------------------------------------------------ RCPT (§4.7.3)
    def smtp_rcpt(self, verb: bytes, text: bytes, line: Line) -> None:
        a = self.rhostaddr
        self.rcpt_count += 1
        if self.msa and self.authuser is None:
            self.reply(530, b"5.5.1", R.MSA_MUST_AUTH % a, tarpit=True)
            return
        if self.state == State.MAIL_OR_HELLO and self.policy is not None and self.policyresult < 0:
            self.reply(550, b"5.7.1", R.RCPT_EARLIER_REJECT % a, tarpit=True)
            return
        if self.state not in (State.RECIPIENT, State.RECIPIENT_OR_DATA):
            why = {
                State.HELLO: R.RCPT_WAIT_HELO % a,
                State.MAIL_OR_HELLO: R.RCPT_WAIT_MAIL % a,
            }.get(self.state, R.RCPT_IN_BDAT % a)
            self.reply(503, b"5.5.1", why, tarpit=True)
            return
        txn = self.txn
        assert txn is not None
        self.failed_rcpts += 1  # undone on success
        buf, p = self._after_verb(verb, text, lax=self.strict < 1)
        if buf[p : p + 3].upper() != b"TO:":
            self.reply(501, b"5.5.2", R.RCPT_NO_TO % bytes(buf[p:]), tarpit=True)
            return
        res = self._route_path(buf, p + 3, is_mail=False)
        if res is None:
            return
        addr, note, p = res
        if not addr:
            self.reply(501, b"5.1.3", R.RCPT_EMPTY, tarpit=True)
            return
        try:
            rp = esmtp.parse_rcpt(bytes(buf), p, self._features(), self.scan)
        except esmtp.ParamError as e:
            self._param_error(e, tarpit=False)
            return
        limit = max(100, int(self.get("rcptlimitcount", 10000)))
        if txn.accepted >= limit:
            self.reply(452, b"4.5.2", R.RCPT_TOO_MANY, tarpit=True)
            return
        addr = rfc821.quote_local_part(addr)
        freeze = 0
        if self.network and self.policy_status == 0:
            ans = self._policy_call("rcpt", addr)
            # protocol.md §4.7 RCPT step 15 also names a "postmaster only" session:
            # 3.0.1's SS->postmasteronly is never assigned (always 0), so only the
            # negative-result exemption below is reachable.
            if ans.result < 0 and addr.lower().startswith(b"postmaster"):
                if addr.lower() == b"postmaster":
                    ans = PolicyAnswer()
                elif ans.result > -100:
                    pm = self._policy_call("postmaster", addr)
                    if pm.result >= 0:
                        ans = pm
            if ans.result < 0:
                self._rcpt_policy_reject(ans, addr)
                return
            freeze = ans.freeze or txn.freeze or self.net_freeze
        go_on, router_ans = self._router_address("to", "t", "T", addr)
        if not go_on:
            return
        # final checks before anything is written (README: refused RCPT leaves no trace)
        size = txn.params.size
        if self.maxsize > 0 and size > self.maxsize:
            self._router_prefix(router_ans)
            self.reply(552, b"5.3.4", R.RCPT_TOO_LARGE % (self.maxsize, addr), tarpit=True)
            return
        if self.get("sum-sizeoption-value", False):
            total = txn.sizesum + max(0, size)
        else:
            total = max(0, size)
        avail = self.ctx.spool.available if self.ctx.spool is not None else -1
        if total > avail:
            self._router_prefix(router_ans)
            self.reply(452, b"4.3.1", R.RCPT_NO_SPACE, tarpit=True)
            return
        maxerr = int(self.get("max-error-recipients", 3))
        if not txn.sender and txn.accepted + 1 > maxerr:
            txn.spamtrap = True
            self._router_prefix(router_ans)
            self.reply(552, b"5.7.1", R.SPAM_TRAP, tarpit=True)
            return
        assert received is not None
        try:
            txn.file.record(
                b"todsn",
                received.todsn_value(
                    addr,
                    txn.sender,
                    notify_param=rp.notify,
                    orcpt_param=rp.orcpt,
                    force_never=bool(self.get("force-rcpt-notify-never", False)),
                    by_epoch=txn.params.by_time,
                    by_flags=txn.params.by_flags.decode("ascii"),
                ),
            )
            txn.file.record(b"to", b"<" + addr + b">")
            if freeze:
                # N is the policy's answer code, 1 for every freeze verdict (spool.md §11)
                txn.file.record(b"comment", b"policytest() reported freeze state 1")
        except SpoolError as e:
            self.note(b"spool failure at RCPT: %s" % str(e).encode("latin-1", "replace"))
            self.reset_to_idle()
            self.reply(452, b"4.3.0", R.STORAGE_452, tarpit=True)
            return
        if freeze and freeze != self.net_freeze and not txn.freeze:
            txn.freeze = freeze
        txn.sizesum = total
        txn.accepted += 1
        self.failed_rcpts -= 1
        self.state = State.RECIPIENT_OR_DATA
        if router_ans is not None:
            self.send_replylines(router_ans.lines)
        elif size > 0:
            self.reply(250, b"2.1.5", R.RCPT_OK_SIZE % (size, note, addr))
        else:
            self.reply(250, b"2.1.5", R.RCPT_OK % (note, addr))

    def _rcpt_policy_reject(self, ans: PolicyAnswer, addr: bytes) -> None:
        a = self.rhostaddr
        r, msg = ans.result, ans.msg
        if r <= -100 and msg:
            code, esc, text = 451, b"4.7.1", R.POLICY_RCPT_MSG_TEMP % (a, addr, msg)
        elif r <= -104:
            code, esc, text = 451, b"4.4.3", R.POLICY_RCPT_TEMPDNS % (a, addr)
        elif r == -103:
            code, esc, text = 451, b"4.7.1", R.POLICY_RCPT_RELAY % (a, addr)
        elif r in (-101, -102):
            code, esc, text = 451, b"4.4.3", R.POLICY_RCPT_DNS_TEMP % (a, addr)
        elif r == -100:
            code, esc, text = 451, b"4.4.3", R.POLICY_RCPT_REJECT % (a, addr)
        elif msg:
            code, esc, text = 550, b"5.7.1", R.POLICY_RCPT_MSG % (a, msg, addr)
        elif r <= -3:
            code, esc, text = 550, b"5.7.1", R.POLICY_RCPT_RELAY % (a, addr)
        elif r == -2:
            code, esc, text = 550, b"5.4.3", R.POLICY_RCPT_DNS % (a, addr)
        else:
            code, esc, text = 550, b"5.7.1", R.POLICY_RCPT_REJECT % (a, addr)
        self.reply(code, esc, text, tarpit=True)

    # ------------------------------------------------------------------ DATA (§4.7.4, spool §8)
    def _why(self) -> bytes:
        return {
            State.HELLO: R.WHY_HELO,
            State.MAIL_OR_HELLO: R.WHY_MAIL,
            State.RECIPIENT: R.WHY_RCPT,
        }.get(self.state, R.WHY_INTERMIX)

    def smtp_data(self, verb: bytes, text: bytes, line: Line) -> None:
        arg = self._arg(text, verb)
        if self.strict > 0 and arg:
            self.reply(501, b"5.5.4", R.DATA_JUNK)
            return
        if self.state != State.RECIPIENT_OR_DATA:
            self.reply(503, b"5.5.2", R.DATA_WHY % (self.rhostaddr, self._why()), flush=True)
            self.reset_to_idle()
            return
        txn = self.txn
        if not self._data_precheck(txn, bdat=False):
            return
        assert txn is not None
        self.reply(354, None, R.DATA_354, flush=True)
        try:
            self._begin_body(txn)
        except SpoolError as e:
            self.note(b"spool failure at DATA: %s" % str(e).encode("latin-1", "replace"))
            txn.file.abort()
            txn.file = None
            self._consume_data_anyway()
            self.reset_to_idle()
            self._spool_error_reply(e)
            return
        from zmailer_smtpd import bodyxfer

        rx = bodyxfer.DataReceiver(txn.file.write, lf_ok=not self.network or self.ctx.mode == "interactive", maxsize=self.maxsize)
        if not self._pump_data(rx):
            self.note(b"premature EOF on DATA input")
            self.syslog(
                LOG_ERR,
                b"%s - aborted (%d bytes) from %s/%d: premature EOF on DATA input"
                % (self._logtag(), rx.size, self.rhostname, self.ctx.peer_port),
            )
            self._keep_or_abort(txn, ".DATA-EOF")
            self.txn = None
            self.ended = True
            raise SessionEnd
        self._title("data", rx.size)
        self._end_of_body(txn, rx, bdat=False, count=rx.size, last_chunk=0)

    def _data_precheck(self, txn: Transaction | None, *, bdat: bool) -> bool:
        """DATA / first BDAT checks: sender, recipients, SPAM trap (no tarpit)."""
        if txn is None or txn.file is None or not self.sender_ok:
            self.reply(550, b"5.1.3" if bdat else b"5.1.7", R.NO_VALID_SENDER, flush=True)
            self.reset_to_idle()
            return False
        if txn.accepted == 0:
            self.reply(550, b"5.1.3", R.BDAT_NO_VALID_RCPT if bdat else R.NO_VALID_RCPTS, flush=True)
            self.reset_to_idle()
            return False
        maxerr = int(self.get("max-error-recipients", 3))
        if not txn.sender and (txn.spamtrap or txn.accepted > maxerr):
            self.reply(550, b"5.7.1", R.SPAM_TRAP, flush=True)
            self.reset_to_idle()
            return False
        return True

    def _begin_body(self, txn: Transaction) -> None:
        """``env-end`` and the lines of spool.md §5.5."""
        txn.file.record(b"env-end")
        txn.data_started = True
        if self.msa and self.authuser is not None and received is not None:
            txn.file.write(received.msa_comment_header(self.ctx.myhostname, self.authuser))

    def _pump_data(self, rx: Any) -> bool:
        """Feed the stream to a receiver until it is done; False on EOF/timeout.

        Bytes after the end (pipelined commands) stay in the stream: never lost,
        never read twice, never taken as message data.
        """
        st = self.stream
        while not rx.done:
            data = st.peek_some(self.ctx.data_timeout)
            if not data:
                rx.eof()
                return False
            left = rx.feed(data)
            st.consume(len(data) - (0 if left is None else len(left)))
        return not getattr(rx, "premature", False)

    def _consume_data_anyway(self) -> None:
        """Read the DATA body to its end without storing it (stream stays in sync)."""
        from zmailer_smtpd import bodyxfer

        rx = bodyxfer.DataReceiver(None, lf_ok=not self.network or self.ctx.mode == "interactive")
        if not self._pump_data(rx):
            self.ended = True
            raise SessionEnd

    def _logtag(self) -> bytes:
        return getattr(self.log, "tag", b"") if self.log is not None else b""

    def _keep_or_abort(self, txn: Transaction, suffix: str) -> None:
        if txn.file is None:
            return
        if self._has_style("D"):
            try:
                txn.file.keep_debug(suffix)
                return
            except Exception:
                pass
        txn.file.abort()

    def _end_of_body(self, txn: Transaction, rx: Any, *, bdat: bool, count: int, last_chunk: int) -> None:
        """Outcome of DATA / last BDAT (§4.7.4 step 8, spool §8.5, §9.2)."""
        f = txn.file
        try:
            self._end_of_body_inner(txn, rx, bdat=bdat, count=count, last_chunk=last_chunk)
        except SpoolError as e:
            self.note(b"spool failure: %s" % str(e).encode("latin-1", "replace"))
            if f is not None:
                f.abort()
            self._spool_error_reply(e)  # before the transaction is gone: LMTP counts its recipients
            self.txn = None
            self.state = State.MAIL_OR_HELLO
            return
        self.txn = None
        self.state = State.MAIL_OR_HELLO

    def _spool_error_reply(self, e: BaseException) -> None:
        """README: any spool failure answers from the error (451 4.3.0 by default)."""
        code, esc, text = getattr(e, "reply", (451, "4.3.0", R.INTERNAL_ERROR.decode()))
        self._per_rcpt_reply(int(code), _b(esc), _b(text))

    def _lmtp_count(self) -> int:
        """Replies due at the end of DATA/BDAT: one per accepted recipient in LMTP (RFC 2033)."""
        if self.lmtp and self.txn is not None:
            return max(1, self.txn.accepted)
        return 1

    def _per_rcpt_reply(self, code: int, esc: bytes | None, text: bytes) -> None:
        """A final reply to DATA/BDAT, given once per accepted recipient in LMTP mode."""
        for _ in range(self._lmtp_count()):
            self.reply(code, esc, text)
        self.stream.flush()

    def _end_of_body_inner(self, txn: Transaction, rx: Any, *, bdat: bool, count: int, last_chunk: int) -> None:
        f = txn.file
        esc452 = b"4.0.0" if bdat else b"4.3.0"
        if getattr(rx, "bare_eol", False):
            f.abort()
            self._per_rcpt_reply(550, b"5.5.2", R.DATA_BARE_LF)
            self.note(b"aborted (%d bytes): bare LF or CR in DATA" % count)
            return
        if getattr(rx, "out_error", None) is not None:
            f.abort()
            self._spool_error_reply(rx.out_error)
            return
        if not bdat and (getattr(rx, "too_big", False) or (self.maxsize > 0 and count > self.maxsize)):
            f.abort()
            self._per_rcpt_reply(552, b"5.3.4", R.DATA_TOO_LARGE % self.maxsize)
            self.note(b"aborted (%d bytes): message too large" % count)
            return
        spoolid, size = f.flush_point()
        sid = spoolid.encode("ascii") if isinstance(spoolid, str) else spoolid
        if bdat and self.maxsize > 0 and size > self.maxsize:
            f.abort()
            self._per_rcpt_reply(552, b"5.3.4", R.DATA_TOO_LARGE % self.maxsize)
            return
        if not f.free_space_ok(0):
            f.abort()
            self._per_rcpt_reply(452, esc452, R.STORAGE_452)
            return
        verdict = self._content_verdict(txn, f)
        priority = int(getattr(rx, "priority", 0) or 0)
        from zmailer_smtpd.contentfilter import FilterVerdict

        if verdict is None:
            verdict = FilterVerdict.from_text(0, None)
        if verdict.log_text:
            self.note(verdict.log_text.encode("latin-1", "replace"))
        disp = verdict.disposition
        if disp == "reject":
            f.abort()
            for lines in verdict.lmtp_replies(sid, self._lmtp_count()):  # one copy unless LMTP
                self.send_replylines(self._bdat_text(lines, bdat, last_chunk, size))
            self.stream.flush()
            return
        if disp == "freeze":
            try:
                f.freeze(verdict.freezer_suffix(bdat))
            except SpoolError as e:
                self._spool_error_reply(e)
                return
            self.tarpit()
            for lines in verdict.lmtp_replies(sid, self._lmtp_count()):  # one copy unless LMTP
                self.send_replylines(lines)
            self.syslog(
                LOG_INFO,
                b"accepted  %s (%dc) from %s/%d into freeze[%d]"
                % (sid, size, self.rhostname, self.ctx.peer_port, verdict.verdict),
            )
            self.stream.flush()
            return
        f.commit(priority)  # the 250 goes out only after this returned
        accepted = getattr(self.ctx.policy, "data_accepted", None)
        if accepted is not None:  # policy.md §9.3: an accepted message counts for ratelimitmsgs
            accepted(txn.accepted)
        self.note(b"%s: %d bytes" % (sid, size))
        if "s" in str(_zenv_get(self.ctx.zenv, "SYSLOGFLG") or ""):
            self.syslog(LOG_INFO, b"%s: (%dc) accepted from %s/%d" % (sid, size, self.rhostname, self.ctx.peer_port))
        if bdat and verdict.text is None:
            self._lmtp_repeat([type(verdict.reply(sid)[0])(250, b"2.0.0", R.BDAT_LAST_OK % (sid, last_chunk, size))])
        else:
            self._lmtp_repeat(verdict.reply(sid))
        self.stream.flush()

    def _bdat_text(self, lines: list[Any], bdat: bool, last_chunk: int, size: int) -> list[Any]:
        return lines

    def _lmtp_repeat(self, lines: list[Any]) -> None:
        for _ in range(self._lmtp_count()):
            self.send_replylines(lines)

    def _content_verdict(self, txn: Transaction, f: Any) -> Any:
        """Policy freeze first, then the content filter (spool.md §11)."""
        from zmailer_smtpd.contentfilter import FilterVerdict

        verdict = txn.freeze or self.net_freeze
        if verdict > 0:
            return FilterVerdict.from_text(verdict, None)
        cf = self.ctx.contentfilter
        if cf is None or not getattr(self.ctx.policy, "run_filter", True):
            return None  # policy.md §6.7: "filtering -" or an always-accept client
        return cf.verdict(f.path)

    # ------------------------------------------------------------------ BDAT (§4.7.5, spool §9)
    def smtp_bdat(self, verb: bytes, text: bytes, line: Line) -> None:
        if self.state == State.RECIPIENT_OR_DATA:
            self.state = State.BDATA
            if self.txn is not None:
                self.txn.bdat = None
        words = text[len(verb) :].split()
        n = -1
        last = False
        if 1 <= len(words) <= 2:
            n = _c_long(words[0])
            if len(words) == 2:
                if words[1][:7].upper() == b"LAST":
                    last = True
                else:
                    n = -1
        if n < 0:
            self.reply(501, b"5.5.2", R.DEFAULT_TEXT[501], flush=True)
            return
        txn = self.txn
        from zmailer_smtpd import bodyxfer

        first = txn is not None and txn.bdat is None and self.state == State.BDATA
        if first and txn is not None and txn.file is not None and self.sender_ok and txn.accepted:
            try:
                self._begin_body(txn)
                txn.bdat = bodyxfer.BdatReceiver(txn.file.write)
            except Exception as e:
                self.note(b"spool failure at BDAT: %s" % str(e).encode("latin-1", "replace"))
                txn.file.abort()
                txn.file = None
                txn.bdat_failed = True
        rx = txn.bdat if txn is not None else None
        usable = rx is not None and self.state == State.BDATA and txn is not None and txn.file is not None
        if rx is None or not usable:
            rx = bodyxfer.BdatReceiver(None)
        # the chunk is always read, so the byte stream stays in sync (§4.7.5 step 3)
        rx.start_chunk(n, last=last, discard=not usable)
        st = self.stream
        while rx.in_chunk:
            data = st.peek_some(self.ctx.data_timeout)
            if not data:
                rx.eof()
                self.note(b"premature EOF on BDAT input")
                if txn is not None:
                    self._keep_or_abort(txn, ".BDAT-EOF")
                    self.txn = None
                self.ended = True
                raise SessionEnd
            left = rx.feed(data)
            st.consume(len(data) - (0 if left is None else len(left)))
        self._title("bdat", int(getattr(rx, "total", n)), n, last)
        if self.state != State.BDATA:
            why = {
                State.HELLO: R.WHY_HELO,
                State.MAIL_OR_HELLO: R.WHY_MAIL,
                State.RECIPIENT: R.WHY_RCPT,
            }.get(self.state, R.BDAT_BAD_SEQUENCE)
            self.reply(503, b"5.5.2", why, flush=True)
            self.reset_to_idle()
            return
        if first and not self._data_precheck(txn, bdat=True):
            return
        assert txn is not None
        if txn.file is None or txn.bdat_failed:
            self.reply(452, b"4.3.0", R.BDAT_DISCARDED, flush=True)
            if last:
                self.reset_to_idle()
            return
        if rx.out_error is not None:
            self._bdat_fail(452, b"4.0.0", R.STORAGE_452, last)
            return
        if not last:
            try:
                _, size = txn.file.flush_point()
                space_ok = txn.file.free_space_ok(0)
            except Exception:
                self._bdat_fail(452, b"4.0.0", R.STORAGE_452, last)
                return
            if not space_ok:
                self._bdat_fail(452, b"4.0.0", R.STORAGE_452, last)
                return
            if self.maxsize > 0 and size > self.maxsize:
                self._bdat_fail(552, b"5.3.4", R.DATA_TOO_LARGE % self.maxsize, last)
                return
            self.reply(250, b"2.0.0", R.BDAT_RECEIVED % n, flush=True)
            return
        self._end_of_body(txn, rx, bdat=True, count=n, last_chunk=n)

    def _title(self, kind: str, size: int, chunk: int = 0, last: bool = False) -> None:
        """Process title after DATA / each BDAT chunk (§6.3); network sessions only."""
        if not self.network or self.ctx.mode == "interactive" or not self.ctx.proctitles:
            return
        try:
            if kind == "data":
                proctitle.data_done(self.rhostname, size)
            else:
                proctitle.bdat(self.rhostname, chunk, last, size)
        except Exception:
            pass

    def _bdat_fail(self, code: int, esc: bytes, text: bytes, last: bool) -> None:
        txn = self.txn
        if txn is not None and txn.file is not None:
            txn.file.abort()
            txn.file = None
            txn.bdat_failed = True
        self.reply(code, esc, text, flush=True)
        if last:
            self.reset_to_idle()

    # ------------------------------------------------------------------ small verbs
    def smtp_rset(self, verb: bytes, text: bytes, line: Line) -> None:
        self.reset_to_idle()
        self.sender_ok = False
        if self.policyresult < 0:
            self.policyresult = 0
        if self.strict > 0 and self._arg(text, verb):
            self.reply(501, b"5.5.4", R.RSET_JUNK, flush=True)
        else:
            self.reply(250, b"2.0.0", R.RSET_OK, flush=True)

    def smtp_noop(self, verb: bytes, text: bytes, line: Line) -> None:
        if self._arg(text, verb) and self._has_style("R"):
            self.reply(501, b"5.5.4", R.EXTRA_JUNK % b"NOOP")
            return
        self.reply(250, b"2.0.0", R.NOOP_OK, flush=True)

    def smtp_quit(self, verb: bytes, text: bytes, line: Line) -> None:
        if self._arg(text, verb) and self._has_style("R"):
            self.reply(221, b"5.5.4", R.EXTRA_JUNK % b"QUIT", cont=True)
        self.reset_transaction()
        self.reply(221, b"2.0.0", R.QUIT_OUT % self.ctx.myhostname, flush=True)
        self.quit_seen = True
        self.ended = True

    def smtp_turn(self, verb: bytes, text: bytes, line: Line) -> None:
        if self._arg(text, verb) and self._has_style("R"):
            self.reply(502, b"5.5.4", R.EXTRA_JUNK % b"TURN", cont=True)
        self.reply(502, b"5.5.1", R.NOT_IMPLEMENTED, flush=True)

    def smtp_verb(self, verb: bytes, text: bytes, line: Line) -> None:
        self.reply(250, b"2.0.0", R.VERB_1 % self.ctx.version_full, cont=True)
        self.reply(250, b"2.0.0", R.VERB_2, cont=True)
        self.reply(250, b"2.0.0", R.VERB_3, flush=True)
        self.verbose_flag = True

    def smtp_tick(self, verb: bytes, text: bytes, line: Line) -> None:
        self.proto_bsmtp = True
        self.reply(250, b"2.0.0", text, flush=True)

    def smtp_ident(self, verb: bytes, text: bytes, line: Line) -> None:
        result = b"IDENT-CALL-FAULT"
        fn = self.ctx.extra.get("ident_query")
        if fn is not None:
            try:
                result = fn()
            except Exception:
                result = b"IDENT-CALL-FAULT"
        self.reply(200, None, R.IDENT_REPLY % result, flush=True)

    def smtp_debug(self, verb: bytes, text: bytes, line: Line) -> None:
        self.debug_level += 1
        if not self.verbose_flag:
            self.reply(423, None, R.DEBUG_NOT_VERBOSE, flush=True)
        elif len(text) < 8:
            self.reply(423, None, R.DEBUG_PASSWORD, flush=True)
        else:
            # 3.0.1 exits here without a reply; the decision is "always answer once".
            self.reply(502, b"5.7.0", R.NOT_IMPLEMENTED, flush=True)

    def smtp_vrfy(self, verb: bytes, text: bytes, line: Line) -> None:
        self._ask_router_or(verb, text, "v", "verify", (252, b"2.5.2", R.VRFY_252, False))

    def smtp_expn(self, verb: bytes, text: bytes, line: Line) -> None:
        self._ask_router_or(verb, text, "e", "expand", (502, b"5.4.0", R.NOT_IMPLEMENTED, True))

    def _ask_router_or(
        self, verb: bytes, text: bytes, flag: str, kind: str, fallback: tuple[int, bytes, bytes, bool]
    ) -> None:
        """VRFY/EXPN: the router's answer when style and PARAMs allow, else `fallback` (once)."""
        if self.state == State.HELLO:
            self.reply(503, b"5.5.1", R.VRFY_WAIT_HELO, tarpit=True, flush=True)
            return
        arg = rfc821.quote_local_part(self._arg(text, verb))
        router = self.ctx.router
        if self._has_style(flag) and router is not None and self.get("enable-router", False):
            ans = router.check(kind, arg)
            if ans.lines:  # README: always answer once
                self.send_replylines(ans.lines, tarpit=not ans.ok)
                self.stream.flush()
                return
        code, esc, msg, tarpit = fallback
        self.reply(code, esc, msg, tarpit=tarpit, flush=True)

    def smtp_etrn(self, verb: bytes, text: bytes, line: Line) -> None:
        from zmailer_smtpd import etrn

        arg = self._arg(text, verb).rstrip(b" \t")
        po = _zenv_get(self.ctx.zenv, "POSTOFFICE") or os.getcwd()
        cluster = self.get("etrn-cluster", ()) or ()
        cl = [(n, _b(u), _b(p)) for (n, u, p) in cluster]
        lines = etrn.etrn(
            arg,
            rhostaddr=self.rhostaddr,
            myhostname=self.ctx.myhostname,
            postoffice=po,
            cluster=cl,
            multiline=self.multiline,
            emit=self._emit_cont,
            log=lambda msg: self.note(msg.encode("latin-1", "replace")),
        )
        self.send_replylines(lines)
        self.stream.flush()

    def _emit_cont(self, rl: Any) -> None:
        self.reply(rl.code, rl.enh, rl.text, cont=True, flush=True)

    def smtp_starttls(self, verb: bytes, text: bytes, line: Line) -> None:
        tls = self.ctx.tls
        if tls is None or not self.get("use-tls", False):
            self.reply(502, b"5.4.0", R.NOT_IMPLEMENTED, flush=True)
            return
        if self.tls_active:
            self.reply(554, b"5.4.0", R.TLS_ALREADY, flush=True)
            return
        arg = text[len(verb) :]
        if self.strict < 1:
            arg = arg.lstrip(b" \t")
        if arg:
            self.reply(501, b"5.1.3", R.TLS_JUNK, flush=True)
            return
        self.reply(220, None, R.TLS_READY, flush=True)
        n = self.stream.discard_input()
        if n:
            self.note(b"STARTTLS: discarded %d bytes of plaintext" % n)
        self.reset_session()
        try:
            t = tls.handshake(self.stream.transport)
        except Exception as e:
            self.note(b"STARTTLS failed: %s" % str(e).encode("latin-1", "replace"))
            self.exit_status = 2
            self.ended = True
            raise SessionEnd from None
        self.stream.replace_transport(t)
        self.tls_active = True
        self.proto_tls = True
        self.tls_info = getattr(t, "info", None)

    def smtp_help(self, verb: bytes, text: bytes, line: Line) -> None:
        self.reply_lines(214, None, self.help_lines(self._arg(text, verb)), flush=True)

    def help_lines(self, topic: bytes) -> list[bytes]:
        """HELP texts of §4.7.9 (every reply ends with a final line: README)."""
        t = topic.upper()
        gstyle = self.global_style
        lmtp = self.lmtp
        h = VERB_MAP.get(t) if len(t) <= 8 else None
        if h in ("HELO", "EHLO") and lmtp or h == "LHLO" and not lmtp:
            h = None
        if t in (b"AUTH", b"STARTTLS", b"550") or t.startswith(b"Z-"):
            h = None
        if h in ("HELO", "EHLO"):
            return list(R.HELP_HELO)
        if h == "LHLO":
            return list(R.HELP_LHLO)
        if t in (b"MAIL", b"EMAL"):
            return list(R.HELP_MAIL) + [R.HELP_CHECKED if "f" in gstyle else R.HELP_ANY]
        if t == b"RCPT":
            return list(R.HELP_RCPT) + [R.HELP_CHECKED if "t" in gstyle else R.HELP_ANY]
        if t == b"DATA":
            return list(R.HELP_DATA)
        if t == b"BDAT":
            return list(R.HELP_BDAT)
        if t == b"RSET":
            st = {
                State.HELLO: b'Waiting for "HELO" command',
                State.MAIL_OR_HELLO: b'Waiting for "MAIL" or "EHLO"/"HELO" command',
                State.RECIPIENT: b'Waiting for "RCPT" command',
            }.get(self.state, b"Unknown")
            return list(R.HELP_RSET) + [b"The current state is: %s." % st]
        if t in (b"SEND", b"SOML", b"SAML", b"ESND", b"ESOM", b"ESAM", b"TURN"):
            return [t, R.HELP_NEVER]
        if t in (b"TURNME", b"ETRN"):
            return [t + b" hostname"] + list(R.HELP_ETRN)
        if t in (b"VRFY", b"EVFY"):
            return [b"VRFY <recipient>", b"EVFY <recipient>"] + (
                list(R.HELP_VRFY_ON) if "v" in gstyle else [R.HELP_DISABLED]
            )
        if t == b"EXPN":
            return [b"EXPN <recipient>"] + (list(R.HELP_EXPN_ON) if "e" in gstyle else [R.HELP_DISABLED])
        if t in (b"NOOP", b"ONEX"):
            return [t, R.HELP_NOOP]
        if t == b"QUIT":
            return list(R.HELP_QUIT)
        if t == b"VERB":
            return list(R.HELP_VERB)
        if t == b"TICK":
            return list(R.HELP_TICK)
        if t == b"HELP":
            return list(R.HELP_HELP)
        out = list(R.HELP_GENERAL_HEAD)
        helptext = [x if isinstance(x, bytes) else str(x).encode("latin-1") for x in (self.get("help", []) or [])]
        if helptext:
            out += helptext + [b""]
        out.append(b"The following commands are recognized:")
        out += self._verb_list()
        out += [x % self.ctx.myhostname if b"%s" in x else x for x in R.HELP_GENERAL_TAIL]
        return out

    def _verb_list(self) -> list[bytes]:
        lines: list[bytes] = []
        cur = b"   "
        for verb, _h in VERBS:
            if verb == b"550":
                continue
            if self.lmtp and verb in (b"HELO", b"EHLO") or not self.lmtp and verb == b"LHLO":
                continue
            if len(cur) > 55:
                lines.append(cur)
                cur = b"   "
                continue  # 3.0.1 drops the verb that triggered the line break
            cur += (b" " if cur == b"   " else b", ") + verb
        if cur.strip():
            lines.append(cur)
        return lines

    def smtp_auth(self, verb: bytes, text: bytes, line: Line) -> None:
        auth = self.ctx.auth
        if auth is None:  # cli.complete_context builds one whenever smtp-auth is on
            self.reply(454, b"4.7.0", b"Temporary authentication failure", tarpit=True)
            return
        self._auth_exchange(auth, self._arg(text, verb))

    def _auth_exchange(self, auth: Any, arg: bytes) -> None:
        """AUTH through auth.Authenticator's start/step machine (PLAIN and LOGIN)."""
        from zmailer_smtpd.auth import AuthFacts

        fr = getattr(self.policy, "auth_failrate_exceeded", None)
        facts = AuthFacts(
            rhostaddr=self.rhostaddr,
            helo_seen=self.state != State.HELLO,
            in_transaction=self.state != State.MAIL_OR_HELLO,
            authenticated=self.authuser is not None,
            tls_active=self.tls_active,
            plain_listener=self._on_port25(),
            too_many_failures=bool(fr()) if fr is not None else False,
        )
        step = auth.start(arg, facts)
        while True:
            for _ in range(step.tarpit if step.reply[0] >= 400 else 0):
                self.tarpit()
            code, esc, rtext = step.reply
            self.reply(int(code), _b(esc) if esc else None, _b(rtext), flush=True)
            if step.done:
                break
            self.stream.flush()
            ln = self.stream.s_gets()
            got: bytes | None = None if ln.n == 0 else ln.text
            if self.log is not None:
                self.log.raw(b"r " + auth.loggable(got))
            step = auth.step(got)
            if got is None:
                self.ended = True
        if step.success and step.user is not None:
            self.authuser = step.user
            self.proto_auth = True
            note_auth = getattr(self.policy, "authenticated", None)
            if note_auth is not None:
                note_auth(step.user)
        if step.failed:
            failed = getattr(self.policy, "auth_failed", None)
            if failed is not None:
                failed()
        if step.disconnect is not None:
            code, esc, rtext = step.disconnect
            self.reply(int(code), _b(esc) if esc else None, _b(rtext), flush=True)
            self.ended = True

# ---------------------------------------------------------------------- helpers
def _opt(opts: Any, name: str, default: Any) -> Any:
    """A command-line option by cli.Options attribute name (tests pass a dict)."""
    if isinstance(opts, dict):
        return opts.get(name, default)
    return getattr(opts, name, default)


def _redact_auth(line: bytes) -> bytes:
    """The AUTH command line for the log: a PLAIN initial response holds the password."""
    if line.lstrip()[:4].upper() != b"AUTH":  # the first word, as redact_command splits it
        return line
    from zmailer_smtpd.auth import Authenticator

    return Authenticator.redact_command(line)


def _tls_field(info: Any, name: str) -> bytes | None:
    if info is None:
        return None
    v = getattr(info, name, None)
    if v is None:
        return None
    return v.encode("latin-1") if isinstance(v, str) else bytes(v)


def _zenv_get(zenv: Any, name: str) -> str | None:
    if zenv is None:
        return None
    try:
        v = zenv.get(name)
    except Exception:
        return None
    return None if v is None else str(v)


def _b(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("latin-1")


def _c_long(word: bytes) -> int:
    """sscanf("%ld") of a BDAT size: optional sign, digits; -1 when invalid."""
    w = word
    if w[:1] == b"+":
        w = w[1:]
    if not w or not w[:1].isdigit():
        return -1
    end = 0
    while end < len(w) and w[end : end + 1].isdigit():
        end += 1
    if end != len(w):
        return -1
    return int(w)


def run_session(ctx: SessionContext, transport: Any) -> int:
    """Run one SMTP session to its end; return the process exit status."""
    deadline = None
    if ctx.session_deadline is not None:
        deadline = time.monotonic() + ctx.session_deadline
    stream = SmtpStream(
        transport, cmd_timeout=ctx.cmd_timeout, data_timeout=ctx.data_timeout, deadline=deadline
    )
    return Session(ctx, stream).run()


__all__ = [
    "NeutralPolicy",
    "PolicyAnswer",
    "Session",
    "SessionContext",
    "State",
    "run_session",
]
