"""Client of the interactive router, `router -Ismtpserver` (interfaces.md §1).

Why a per-session client: the seed design (§0.2) lets each session own one
router process, started lazily on the first request and killed when the
session ends.  The bytes on the pipe follow 3.0.1: `key TAB arg LF` requests,
answers framed by `#hungry` lines.

Session call sequence (the integrator wires these in session.py):

    ctx.router = RouterClient(path=opts.router or f"{MAILBIN}/router",
                              zconfig=<ZENV ZCONFIG or the file loaded>,
                              rhostaddr=b"[192.0.2.7]", log=ctx.log)

  * EHLO/HELO/LHLO with style `h` (not gated by enable-router; if no router
    is configured reply `ROUTER_NOT_ENABLED`):
        a = router.check("hello", b"[addr] rhostname")   # prepare_hello()
        a.ok  -> send a.lines as continuation lines, then the normal greeting
        else  -> tarpit, send a.lines (last one final), stop HELO processing
  * MAIL FROM (style `f`, enable-router, after the policy test, before the
    spool file is opened):  a = router.check("from", prepare_address(path))
        not a.ok -> tarpit, send a.lines, MAIL fails
        a.ok     -> later, when MAIL succeeds, send a.lines (final text is the
                    router's with "; Ok" appended, T-4); if a later check of
                    MAIL fails, send a.lines[:-1] as continuation lines and
                    then that check's own reply.
  * RCPT TO (style `t`): a = router.check("to", prepare_address(path)); same
    as MAIL, final text passed verbatim.
  * VRFY (style `v`) / EXPN (style `e`): a = router.check("verify"|"expand",
    arg); send a.lines; that is the whole reply (no second 501, T-7).
  * After every check: if router.failures > MAX_FAILURES, end the session
    after reading the next command line (§1.7).
  * Session end: router.close().

`a.lines` are `ReplyLine(code, enh, text)`; the session formats them with its
one reply function (§0.5): enh is printed only when enhanced status codes are
on, followed by a space.  A field with CR, LF, TAB or NUL never reaches the
router: check() answers `501 5.5.4` without starting it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zmailer_smtpd import helper

ROUTER_ARGV_TAIL = ["-io-i", "-Ismtpserver"]
KINDS = ("hello", "from", "to", "verify", "expand")
MAX_FAILURES = 20
DELAY_LOG_SECONDS = 30.0


@dataclass(frozen=True)
class ReplyLine:
    """One SMTP reply line before §0.5 formatting."""

    code: int
    enh: bytes
    text: bytes


# 3.0.1 texts (§1.7, protocol.md §4.7.14).
START_FAILED = ReplyLine(440, b"4.4.0", b"I am sick: Failed to init interactive router subsystem")
TIMED_OUT = ReplyLine(450, b"4.5.0", b"Interactive router timed out!")
EOFED = ReplyLine(450, b"4.5.0", b"Interactive router EOFed!")
LOST_SYNC = ReplyLine(440, b"4.4.0", b"I am sick: Interactive router subsystem lost internal sync ??")
ROUTER_NOT_ENABLED = ReplyLine(
    400, b"4.4.0", b"I am sick: Interactive routing subsystem is not enabled"
)
BAD_FIELD = ReplyLine(501, b"5.5.4", b"Invalid character in argument")
# 3.0.1 lets the request through when the router says nothing (R9); the
# project's decision (README "External programs") is: a helper failure gives
# a 4xx, never an acceptance.
EMPTY_ANSWER = ReplyLine(450, b"4.5.0", b"Interactive router gave no answer!")

_CODE_RE = re.compile(rb"^([0-9]{3})[ -]")
_FINAL_RE = re.compile(rb"^([2-5][0-9]{2})(?:[ -]|$)")
_DIGDOT_RE = re.compile(rb"^[0-9.]*")


@dataclass
class RouterAnswer:
    """What the session sends for one router check; the last line is final."""

    lines: list[ReplyLine]
    ok: bool  # final code 2xx: the command proceeds
    failed: bool = False  # interface failure (counted, router restarted)
    raw: list[bytes] = field(default_factory=list)  # router lines as read


def render_line(line: bytes, rhostaddr: bytes) -> ReplyLine:
    """§1.5 rendering of one answer line, quirks included (T-5)."""
    m = _CODE_RE.match(line)
    if len(line) > 3 and m:
        code = int(m.group(1))
        rest = line[4:]
        k = len(_DIGDOT_RE.match(rest).group(0))  # type: ignore[union-attr]
        if rest[k : k + 1] == b" ":
            enh, text = rest[:k], rest[k + 1 :]
        else:
            enh, text = rest, rest[k:]
        if code // 100 != 2:
            text = b"Hi " + rhostaddr + b", " + text
        return ReplyLine(code, enh, text)
    return ReplyLine(250, b"", line)


def _split_enh(msg: bytes) -> tuple[bytes, bytes]:
    """MAIL/RCPT non-2xx: a leading digits-and-dots prefix is the enh (§1.6)."""
    if len(msg) >= 2 and msg[:1].isdigit() and msg[1:2] == b".":
        k = len(_DIGDOT_RE.match(msg).group(0))  # type: ignore[union-attr]
        enh, rest = msg[:k], msg[k:]
        if rest.startswith(b" "):
            rest = rest[1:]
        return enh, rest
    return b"", msg


def map_answer(kind: str, lines: list[bytes], rhostaddr: bytes) -> RouterAnswer:
    """Turn the router's answer lines into the command's reply (§1.5, §1.6)."""
    if not lines:
        return RouterAnswer([EMPTY_ANSWER], ok=False, failed=True, raw=lines)
    cont = [render_line(x, rhostaddr) for x in lines[:-1]]
    last = lines[-1]
    if kind in ("verify", "expand"):
        final = render_line(last, rhostaddr)
        return RouterAnswer(cont + [final], ok=final.code // 100 == 2, raw=lines)
    m = _FINAL_RE.match(last)
    if not m:
        # atoi() of garbage gives code 0 in 3.0.1; never send that.
        return RouterAnswer([LOST_SYNC], ok=False, failed=True, raw=lines)
    code = int(m.group(1))
    msg = last[4:]
    if kind == "hello":
        return RouterAnswer(cont + [ReplyLine(code, b"", msg)], ok=code // 100 == 2, raw=lines)
    if code // 100 != 2:
        enh, rest = _split_enh(msg)
        return RouterAnswer(
            cont + [ReplyLine(code, enh, b"Hi " + rhostaddr + b", " + rest)], ok=False, raw=lines
        )
    if kind == "from":
        msg = msg + b"; Ok"
    return RouterAnswer(cont + [ReplyLine(code, b"", msg)], ok=True, raw=lines)


def prepare_hello(rhostaddr: bytes, rhostname: bytes) -> bytes:
    """`hello` argument: address literal and reverse name, each cut to 99 (§1.3)."""
    addr = rhostaddr or b"[0.0.0.0]"
    name = rhostname or addr
    return addr[:99] + b" " + name[:99]


def prepare_address(arg: bytes, allow_source_route: bool = False) -> bytes:
    """MAIL/RCPT/VRFY/EXPN argument preparation (§1.3).

    Removes a source route `@a,@b:` unless allowed, and turns RFC 821
    backslash quoting into an RFC 822 quoted local part.
    """
    if not allow_source_route and arg.startswith(b"@"):
        colon = arg.find(b":")
        if colon >= 0:
            arg = arg[colon + 1 :]
    if b"\\" in arg and not arg.startswith(b'"'):
        at = _unquoted_at(arg)
        local, dom = (arg, b"") if at < 0 else (arg[:at], arg[at:])
        arg = b'"' + local + b'"' + dom
    return arg


def _unquoted_at(s: bytes) -> int:
    i, n = 0, len(s)
    while i < n:
        c = s[i : i + 1]
        if c == b"\\":
            i += 2
            continue
        if c == b"@":
            return i
        i += 1
    return -1


class RouterClient:
    """One router process for one session, started on first need."""

    def __init__(
        self,
        path: str | None,
        zconfig: str,
        rhostaddr: bytes,
        log: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 10.0,
        answer_timeout: float = 60.0,
        answer_deadline: float | None = 600.0,
        preexec: Callable[[], None] | None = helper.regain_root,
        cwd: str | None = None,
    ) -> None:
        self.path = path
        self.zconfig = zconfig
        self.rhostaddr = rhostaddr
        self._log = log
        self.env = helper.helper_env(env, {"SMTPSERVER": "y"})
        self.start_timeout = start_timeout
        self.answer_timeout = answer_timeout
        self.answer_deadline = answer_deadline
        self.preexec = preexec
        self.cwd = cwd
        self.failures = 0
        self.starts = 0
        self._proc: helper.Helper | None = None

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def argv(self) -> list[str]:
        """3.0.1's argv exactly (§1.2)."""
        return ["router", "-Z", self.zconfig, *ROUTER_ARGV_TAIL]

    def _start(self) -> helper.Helper:
        if not self.path:
            raise helper.HelperError("MAILBIN unspecified in zmailer.conf")
        proc = helper.Helper.start(
            self.path, self.argv(), env=self.env, cwd=self.cwd, preexec=self.preexec
        )
        self.starts += 1
        try:
            # Banner lines before the first #hungry are skipped (T-2).
            while True:
                line = proc.chan.readline(self.start_timeout, maxline=65536)
                if line.startswith(b"#BADEXEC"):
                    raise helper.HelperError("router exec failed")
                if line == helper.HUNGRY + b"\n":
                    return proc
                if not line.endswith(b"\n"):
                    proc.chan.readline(self.start_timeout)  # raises EOF/timeout
        except helper.HelperError:
            proc.kill()
            raise

    def _fail(self, reply: ReplyLine, why: str, raw: list[bytes] | None = None) -> RouterAnswer:
        self.failures += 1
        self.log(f"router: {why}")
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
        return RouterAnswer([reply], ok=False, failed=True, raw=raw or [])

    def check(self, kind: str, arg: bytes) -> RouterAnswer:
        """Ask the router about `arg`; the answer is the command's reply."""
        if kind not in KINDS:
            raise ValueError(f"unknown router key {kind!r}")
        try:
            helper.check_field(arg)
        except helper.FieldError:
            self.log(f"router: refused {kind} argument with a control byte")
            return RouterAnswer([BAD_FIELD], ok=False)
        if self._proc is None:
            try:
                self._proc = self._start()
            except helper.HelperError as e:
                return self._fail(START_FAILED, f"Failed to init interactive router subsystem: {e}")
        chan = self._proc.chan
        t0 = time.monotonic()
        try:
            chan.write_line(kind.encode() + b"\t" + arg + b"\n", self.answer_timeout)
        except helper.HelperError as e:
            return self._fail(EOFED, f"Interactive router EOFed! (write: {e})")
        try:
            lines = chan.read_until_hungry(
                self.answer_timeout,
                maxline=4096,
                maxlines=200,
                maxbytes=64 * 1024,
                deadline=self.answer_deadline,
            )
        except helper.HelperTimeout:
            return self._fail(TIMED_OUT, "Interactive router timed out!")
        except helper.HelperGarbage as e:
            return self._fail(LOST_SYNC, f"router output garbage: {e}")
        except helper.HelperError as e:
            return self._fail(EOFED, f"Interactive router EOFed! ({e})")
        dt = time.monotonic() - t0
        if dt > DELAY_LOG_SECONDS:
            self.log(f"I-ROUTER DELAY {int(dt)} SECONDS!")
        for x in lines:
            # A CR or other control byte would forge reply lines on the wire.
            if any(b < 0x20 and b != 0x09 for b in x) or b"\x7f" in x:
                return self._fail(LOST_SYNC, "router output garbage: control byte", lines)
        ans = map_answer(kind, lines, self.rhostaddr)
        if ans.failed:
            self.failures += 1
            self.log(f"router: unusable answer to {kind}: {lines[-1:]!r}")
            if ans.lines[-1] is LOST_SYNC:
                if self._proc is not None:
                    self._proc.kill()
                    self._proc = None
        return ans

    @property
    def too_many_failures(self) -> bool:
        return self.failures > MAX_FAILURES

    def close(self) -> None:
        """Session end: close stdin, SIGTERM, reap (§1.7)."""
        if self._proc is not None:
            self._proc.close(grace=1.0, term=True)
            self._proc = None
