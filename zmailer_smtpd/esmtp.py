"""MAIL/RCPT ESMTP parameters: SIZE, BODY, RET, ENVID, AUTH, BY, NOTIFY, ORCPT.

protocol.md §4.9, with the README decisions: DSN values are checked as
RFC 3461 says (``NOTIFY=NEVER`` stands alone; empty ``RET=``/``NOTIFY=`` are
refused with 501).  Parsing works on the command line bytes from the position
after the path; errors raise ``ParamError`` carrying the reply lines, and the
xtext/atom checks leave their diagnostics in the session's sticky scanner
state (``error_text``/``error_pos``) like the address scanner does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from zmailer_smtpd import rfc821


def xtext(scan: Any, s: bytes, pos: int) -> int:
    """xtext up to SP/TAB/end (rfc821.xtext); returns ``pos`` on failure."""
    return rfc821.xtext(scan, s, pos)


def _xtext_value(scan: Any, s: bytes, q: int, name: bytes) -> int:
    """End of the xtext value of ENVID=/AUTH= at ``q``; 3.0.1's 501 when it is empty."""
    e = xtext(scan, s, q)
    if e == q:
        raise ParamError(
            501,
            b"5.5.4",
            [b"Invalid " + name + b" value '" + s[q:] + b"'",
             name + b" data contains illegal characters!"],
            caret=True,
        )
    return e


@dataclass
class ParamError(Exception):
    """A refused parameter: the reply lines (the last one final) and whether to caret first."""

    code: int
    esc: bytes
    lines: list[bytes]
    caret: bool = False  # a caret line (code, esc) precedes, at the sticky position
    caret_code: int | None = None
    caret_esc: bytes | None = None


@dataclass
class Features:
    """Which parameters the group allows (§4.9 gates)."""

    dsn: bool = True
    eightbitmime: bool = True
    auth: bool = False
    deliverby: int = -1  # < 0 off; 0 on without minimum; n > 0 minimum seconds
    strict: bool = False  # one space at most between parameters
    sloppy: bool = False  # tabs allowed between parameters


@dataclass
class MailParams:
    size: int = -1  # -1 = absent
    body: bytes | None = None
    ret: bytes | None = None
    envid: bytes | None = None
    auth: bytes | None = None
    by_time: int | None = None  # absolute Unix time of the deadline
    by_flags: bytes = b""  # "R"/"N" then optional "T"


@dataclass
class RcptParams:
    notify: bytes | None = None  # the whole "NOTIFY=..." parameter, verbatim
    orcpt: bytes | None = None  # the whole "ORCPT=..." parameter, verbatim
    notify_words: set[bytes] = field(default_factory=set)


def _kw(s: bytes, p: int, kw: bytes) -> bool:
    return s[p : p + len(kw)].upper() == kw


def _end_ok(s: bytes, p: int) -> bool:
    return p >= len(s) or s[p] in (0x20, 0x09)


def _skip(s: bytes, p: int, f: Features) -> int:
    if f.strict:
        return p + 1 if p < len(s) and s[p] == 0x20 else p
    blanks = (0x20, 0x09) if f.sloppy else (0x20,)
    while p < len(s) and s[p] in blanks:
        p += 1
    return p


def _err(text: bytes, code: int = 501, esc: bytes = b"5.5.4") -> ParamError:
    return ParamError(code, esc, [text])


def parse_mail(s: bytes, p: int, f: Features, scan: Any, now: float | None = None) -> MailParams:
    """Parse MAIL parameters of line ``s`` from ``p``; raise ParamError on the first error."""
    mp = MailParams()
    body_seen = False
    while p < len(s):
        p = _skip(s, p, f)
        if _kw(s, p, b"SIZE="):
            if mp.size >= 0:
                raise _err(b"SIZE-param double definition!")
            q = p + 5
            v = 0
            while q < len(s) and 0x30 <= s[q] <= 0x39 and v <= 100_000_000:
                v = v * 10 + s[q] - 0x30
                q += 1
            if not _end_ok(s, q) or v > 1_000_000_000:
                raise _err(b"SIZE-param data error")
            mp.size = v
            p = q
        elif f.eightbitmime and _kw(s, p, b"BODY="):
            q = p + 5
            if _end_ok(s, q):
                p = q  # empty BODY= is silently accepted
                continue
            if body_seen:
                raise _err(b"BODY= double definition!")
            for word in (b"8BITMIME", b"BINARYMIME", b"7BIT"):
                if _kw(s, q, word) and _end_ok(s, q + len(word)):
                    mp.body = word
                    body_seen = True
                    p = q + len(word)
                    break
            else:
                raise _err(b"BODY-param data error, must be one of: 8BITMIME/BINARYMIME/7BIT")
        elif f.dsn and _kw(s, p, b"RET="):
            if mp.ret is not None:
                raise _err(b"RET-param double defined!")
            q = p + 4
            if _end_ok(s, q):
                raise _err(b"RET-param data error")  # RFC 3461: a value is required
            if _kw(s, q, b"FULL") or _kw(s, q, b"HDRS"):
                mp.ret = s[q : q + 4]
                p = q + 4
            else:
                p = q  # 3.0.1: what follows is then reported as an unknown parameter
                raise _err(b"Unknown MAIL FROM:<> parameter: " + s[p:])
        elif f.dsn and _kw(s, p, b"ENVID="):
            if mp.envid is not None:
                raise _err(b"ENVID double definition!")
            q = p + 6
            p = _xtext_value(scan, s, q, b"ENVID")
            mp.envid = s[q:p]
        elif f.auth and _kw(s, p, b"AUTH="):
            q = p + 5
            p = _xtext_value(scan, s, q, b"AUTH")
            mp.auth = s[q:p]
        elif f.deliverby >= 0 and _kw(s, p, b"BY="):
            p = _parse_by(s, p + 3, f, mp, scan, time.time() if now is None else now)
        else:
            raise _err(b"Unknown MAIL FROM:<> parameter: " + s[p:])
    return mp


def _parse_by(s: bytes, q: int, f: Features, mp: MailParams, scan: Any, now: float) -> int:
    start = q
    neg = q < len(s) and s[q] == 0x2D
    if neg:
        q += 1
    d0 = q
    while q < len(s) and 0x30 <= s[q] <= 0x39 and q - d0 < 10:
        q += 1
    ndig = q - d0
    bad = ParamError(501, b"5.5.4", [b"Invalid data at BY= parameter: '" + s[start:] + b"'"], caret=True)
    if ndig == 0 or ndig > 9 or q >= len(s) or s[q] != 0x3B:
        raise bad
    value = int(s[d0:q]) * (-1 if neg else 1)
    q += 1
    flags = b""
    while q < len(s) and s[q] not in (0x20, 0x09):
        c = s[q : q + 1].upper()
        if c not in (b"R", b"N", b"T") or c in flags:
            raise bad
        flags += c
        q += 1
    if (b"R" in flags) == (b"N" in flags):
        raise bad
    if b"R" in flags and value <= 0:
        raise _err(b"The strict delivery deadline is already past: BY=" + s[start:q])
    if b"R" in flags and f.deliverby > 0 and value < f.deliverby:
        raise ParamError(553, b"5.7.1", [b"Too small short delivery deadline value given: %d" % value])
    mp.by_time = int(now) + value
    mp.by_flags = b"".join(x for x in (b"R", b"N", b"T") if x in flags)
    return q


_NOTIFY_WORDS = (b"SUCCESS", b"FAILURE", b"DELAY", b"NEVER")


def parse_rcpt(s: bytes, p: int, f: Features, scan: Any) -> RcptParams:
    """Parse RCPT parameters of line ``s`` from ``p``; raise ParamError on the first error."""
    rp = RcptParams()
    while p < len(s):
        p = _skip(s, p, f)
        if f.dsn and _kw(s, p, b"NOTIFY="):
            if rp.notify is not None:
                raise _err(b"NOTIFY-param double defined!")
            q = p + 7
            words: set[bytes] = set()
            while not _end_ok(s, q):
                for w in _NOTIFY_WORDS:
                    if _kw(s, q, w):
                        words.add(w)
                        q += len(w)
                        break
                else:
                    raise _err(b"NOTIFY-param data error", 455, b"4.5.4")
                if q < len(s) and s[q] == 0x2C:
                    q += 1
                    if _end_ok(s, q):
                        raise _err(b"NOTIFY-param data error", 455, b"4.5.4")
                elif not _end_ok(s, q):
                    raise _err(b"NOTIFY-param data error", 455, b"4.5.4")
            if not words or (b"NEVER" in words and len(words) > 1):
                raise _err(b"NOTIFY-param data error")  # RFC 3461: NEVER alone, a value required
            rp.notify = s[p:q]
            rp.notify_words = words
            p = q
        elif f.dsn and _kw(s, p, b"ORCPT="):
            if rp.orcpt is not None:
                raise _err(b"ORCPT-param double defined!")
            q = p + 6
            e = rfc821.orcpt(scan, s, q)
            if e == q:
                raise ParamError(
                    501,
                    b"4.5.4",
                    [b"Invalid ORCPT value '" + s[p:] + b"'", b"ORCPT-param data error!"],
                    caret=True,
                )
            rp.orcpt = s[p:e]
            p = e
        else:
            raise _err(b"Unknown RCPT TO:<> parameter: " + s[p:], 555)
    return rp
