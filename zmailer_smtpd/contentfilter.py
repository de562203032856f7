"""Client of the content filter, `PARAM contentfilter` (interfaces.md §2).

Why: the filter decides, after a message is stored, whether it is queued,
discarded or frozen, and what the client is told.  The session owns one
filter (a program, or a UNIX stream socket server) for its whole life.

Decisions applied (spec/README.md "External programs"): the manual's grammar
(a signed integer, then optional SMTP code, enhanced code and text); the last
valid line before `#hungry` wins; no valid line, EOF, a timeout, too much
output or a start failure send the message to the freezer (verdict 1).  The
filter runs as the trusted user in `$POSTOFFICE`, argv `[PATH]`.

Session call sequence (DATA, or the last BDAT chunk), after size/storage
checks passed and the policy flags (§2.2 rows above "not configured") did not
decide already:

    v = ctx.contentfilter.verdict(spoolfile.path)      # absolute public/ path
    v.disposition == "reject": spoolfile.abort()
    v.disposition == "freeze": spoolfile.freeze(v.freezer_suffix(bdat))
                               (failure: 452 4.3.0 Message file disposition failed; <spoolid>)
    v.disposition == "accept": spoolfile.commit(...)
    send v.reply(spoolid)         # list of ReplyLine, last one final
    LMTP: send v.lmtp_replies(spoolid, n_accepted_rcpts) instead
    if v.log_text: session log "Content-policy analysis ordered message ..."

A policy-decided verdict (freeze 1/2, reject -1/-2, accept 0 with the stale
policy message) uses the same rendering: `FilterVerdict.from_text(n, text)`.
Session end: ctx.contentfilter.close().
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zmailer_smtpd import helper
from zmailer_smtpd.router import ReplyLine

MAX_SEGMENTS = 18
FAIL_VERDICT = 1  # decision: filter failure -> freezer

_LINE_RE = re.compile(rb"^(-?[0-9]+)(?:[ ]+(.*))?$", re.DOTALL)
_ENH_RE = re.compile(rb"[0-9]\.[0-9]\.[0-9]")


def parse_line(line: bytes) -> tuple[int, bytes | None] | None:
    """(verdict, text or None) for a valid filter line, else None (§2.5)."""
    if line.startswith(b"#"):
        return None
    m = _LINE_RE.match(line)
    if not m:
        return None
    digits = m.group(1)
    if len(digits.lstrip(b"-")) > 9:
        return None
    text = m.group(2)
    return int(digits), (text if text else None)


def parse_statcode(text: bytes) -> tuple[int | None, bytes | None, bytes]:
    """`parsestatcode()`: optional code, optional D.D.D, message (§2.5, T-16)."""
    i = 0
    n = len(text)
    while i < n and text[i : i + 1].isdigit():
        i += 1
    code: int | None = int(text[:i]) if i else None
    if code is not None and not (200 <= code <= 599):
        code = None
    while i < n and text[i : i + 1] in (b" ", b"\t"):
        i += 1
    enh: bytes | None = None
    m = _ENH_RE.match(text, i)
    if m:
        enh = m.group(0)
        i = m.end()
    while i < n and text[i : i + 1] in (b" ", b"\t"):
        i += 1
    return code, enh, text[i:]


def split_segments(message: bytes) -> list[bytes]:
    """CR separates reply lines; keep at most MAX_SEGMENTS (no raw CR ever)."""
    segs = message.split(b"\r")
    if len(segs) > MAX_SEGMENTS:
        segs = segs[: MAX_SEGMENTS - 1] + [b" ".join(segs[MAX_SEGMENTS - 1 :])]
    return segs


@dataclass
class FilterVerdict:
    """The outcome for one message: what happens to the file and the reply."""

    verdict: int
    code: int
    enh: bytes
    segments: list[bytes]
    text: bytes | None = None  # the text the filter (or policy) supplied
    failure: str | None = None  # why the filter could not answer

    @property
    def disposition(self) -> str:
        if self.verdict < 0:
            return "reject"
        if self.verdict > 0:
            return "freeze"
        return "accept"

    def freezer_suffix(self, bdat: bool = False) -> str:
        """Freezer name suffix after the inode (spool.md §4.5, §11)."""
        return "policy" if bdat else f"policy-{self.verdict}"

    @classmethod
    def from_text(cls, verdict: int, text: bytes | None, failure: str | None = None) -> FilterVerdict:
        """Apply the §2.6 defaults to a verdict and its optional text."""
        if verdict < 0:
            dcode, denh, dmsg = 552, b"5.7.1", b"rejected, no further explanations"
        elif verdict > 0:
            dcode, denh, dmsg = 250, b"2.7.1", b"accepted into freezer, no explanations"
        else:
            dcode, denh, dmsg = 250, b"2.0.0", b"accepted"
        code, enh, msg = (None, None, b"") if text is None else parse_statcode(text)
        return cls(
            verdict=verdict,
            code=code if code is not None else dcode,
            enh=enh if enh is not None else denh,
            segments=split_segments(msg if msg else dmsg),
            text=text,
            failure=failure,
        )

    def reply(self, spoolid: bytes) -> list[ReplyLine]:
        """The DATA/BDAT reply lines of §2.6; the last one is final."""
        c, e, s, v = self.code, self.enh, self.segments, self.verdict
        sid = b"; " + spoolid
        if len(s) == 1:
            if v < 0:
                return [ReplyLine(c, e, b"Content-Policy reject msg: " + s[0] + sid)]
            if v > 0:
                t = b"Content-Policy accept-into-freezer-%d msg: " % v
                return [ReplyLine(c, e, t + s[0] + sid)]
            return [ReplyLine(c, e, s[0] + sid)]
        if v == 0:
            out = [ReplyLine(c, e, s[0] + sid)]
            out += [ReplyLine(c, e, x) for x in s[1:]]
            out.append(ReplyLine(c, e, b"Content-Policy accepted this message" + sid))
            return out
        out = [ReplyLine(c, e, b"Content-Policy msg: " + s[0] + sid)]
        out += [ReplyLine(c, e, b"msg: " + x) for x in s[1:]]
        if v < 0:
            out.append(ReplyLine(c, e, b"Content-Policy analysis rejected this message"))
        else:
            t = b"Content-Policy accepted this message into freezer-%d" % v
            out.append(ReplyLine(c, e, t + sid))
        return out

    def lmtp_replies(self, spoolid: bytes, nrcpt: int) -> list[list[ReplyLine]]:
        """One reply per accepted recipient (LMTP, §2.6).

        Repeated copies of a freezer reply lose the `Content-Policy msg: `
        prefix on the first line and `msg: ` on the following lines.
        """
        first = self.reply(spoolid)
        out = [first]
        for _ in range(max(nrcpt, 1) - 1):
            if self.verdict > 0 and len(first) > 1:
                copy = [
                    ReplyLine(first[0].code, first[0].enh, first[0].text.removeprefix(b"Content-Policy msg: "))
                ]
                copy += [ReplyLine(x.code, x.enh, x.text.removeprefix(b"msg: ")) for x in first[1:-1]]
                copy.append(first[-1])
                out.append(copy)
            else:
                out.append(list(first))
        return out

    @property
    def log_text(self) -> str | None:
        """Session-log line when a message text exists (§2.6)."""
        if self.text is None:
            return None
        what = {"reject": "rejection", "freeze": "freezing", "accept": "acceptance"}[self.disposition]
        msg = self.text.decode("latin-1")
        return (
            f"Content-policy analysis ordered message {what}. (code={self.verdict}); msg='{msg}'"
        )


def choose(lines: list[bytes], log: Callable[[str], None] | None = None) -> tuple[int, bytes | None] | None:
    """The last valid line wins; others are logged and ignored (§2.5)."""
    best: tuple[int, bytes | None] | None = None
    for ln in lines:
        p = parse_line(ln)
        if p is None:
            if log is not None and not ln.startswith(b"#"):
                log(f"contentfilter: ignored line {ln[:200]!r}")
            continue
        best = p
    return best


class ContentFilter:
    """One filter (process or socket connection) for one session."""

    def __init__(
        self,
        path: str,
        log: Callable[[str], None] | None = None,
        debug: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        preexec: Callable[[], None] | None = None,
        argv: list[str] | None = None,
        start_timeout: float = 10.0,
        answer_timeout: float = 120.0,
        answer_deadline: float | None = 600.0,
        maxbytes: int = 1 << 20,
    ) -> None:
        self.path = path
        self._log = log
        self.debug = debug
        self.env = helper.helper_env(env, {"SMTPSERVER": "y"})
        self.cwd = cwd
        self.preexec = preexec
        self.argv = argv if argv is not None else [path]
        self.start_timeout = start_timeout
        self.answer_timeout = answer_timeout
        self.answer_deadline = answer_deadline
        self.maxbytes = maxbytes
        self.starts = 0
        self._proc: helper.Helper | None = None
        self._chan: helper.LineChannel | None = None

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)

    def dlog(self, msg: str) -> None:
        if self.debug:
            self.log(msg)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _start(self) -> helper.LineChannel:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise helper.HelperError(f"contentfilter stat({self.path}) error {e.errno}") from e
        self.starts += 1
        if stat.S_ISREG(st.st_mode):
            self._proc = helper.Helper.start(
                self.path, self.argv, env=self.env, cwd=self.cwd, preexec=self.preexec
            )
            chan = self._proc.chan
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.start_timeout)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            chan = helper.LineChannel.for_socket(sock)
        self._chan = chan
        while True:
            line = chan.readline(self.start_timeout, maxline=65536)
            if line.startswith(b"#BADEXEC"):
                raise helper.HelperError("filter exec failed")
            if line == helper.HUNGRY + b"\n":
                return chan
            if not line.endswith(b"\n"):
                chan.readline(self.start_timeout)

    def _drop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
        elif self._chan is not None:
            self._chan.close()
        self._proc = None
        self._chan = None

    def _fail(self, why: str) -> FilterVerdict:
        self.log(why)
        self._drop()
        return FilterVerdict.from_text(FAIL_VERDICT, None, failure=why)

    def verdict(self, spool_path: str) -> FilterVerdict:
        """Ask the filter about the stored message at `spool_path`."""
        data = os.fsencode(spool_path)
        try:
            helper.check_field(data)
        except helper.FieldError:
            return self._fail("contentfilter: spool path holds a control byte")
        chan = self._chan
        if chan is None:
            try:
                chan = self._start()
            except (OSError, helper.HelperError) as e:
                return self._fail(f"Failed to init interactive contentfilter subsystem: {e}")
        try:
            chan.write_line(data + b"\n", self.answer_timeout)
        except helper.HelperError as e:
            return self._fail(f"Interactive contentfilter EOFed! (write: {e})")
        try:
            lines = chan.read_until_hungry(
                self.answer_timeout,
                maxline=8192,
                maxlines=10000,
                maxbytes=self.maxbytes,
                deadline=self.answer_deadline,
            )
        except helper.HelperTimeout:
            return self._fail("Interactive contentfilter timed out!")
        except helper.HelperGarbage as e:
            return self._fail(f"Interactive contentfilter garbage: {e}")
        except helper.HelperError as e:
            return self._fail(f"Interactive contentfilter EOFed! ({e})")
        for ln in lines:
            self.dlog(f"contentfilter: {ln[:200]!r}")
        best = choose(lines, self.dlog)
        if best is None:
            self.log("contentfilter: no valid answer line; message to the freezer")
            return FilterVerdict.from_text(FAIL_VERDICT, None, failure="no valid answer")
        return FilterVerdict.from_text(best[0], best[1])

    def close(self) -> None:
        """Session end: close stdin, wait up to 1 s, SIGKILL, reap (§2.7)."""
        if self._proc is not None:
            self._proc.close(grace=1.0, term=False)
        elif self._chan is not None:
            self._chan.close()
        self._proc = None
        self._chan = None
