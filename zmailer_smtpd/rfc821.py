"""The RFC 821 address scanner, ported from ZMailer 3.0.1 `smtpserver/rfc821scn.c`.

Every scanner takes the command line (`bytearray`) and a start offset and
returns the offset just after what it recognised, or its own start offset on
failure (protocol.md §5.1).  Diagnostics go into a `ScanState`; the order of
assignments follows the C code exactly, because the session prints
`error_text` and places its caret at `error_pos` and clients see both bytes.

Deviation (spec README): the session calls `ScanState.reset()` before each
command's scan, so a stale diagnostic from an earlier command never shows.
Within one command the state stays sticky, as in 3.0.1.

C strings end at NUL: `_at()` reads a NUL byte or the end of the buffer as 0,
so an embedded NUL ends the scan exactly as it did in C.

How the session uses it (MAIL, bracketed, not sloppy; §4.7.2 step 10)::

    st.reset()                      # once per command, before the first scan
    buf = bytearray(line)           # the whole command line; offsets are carets
    end = rfc821.path(st, buf, lt, strict)   # lt = offset of '<'
    if end == lt:                   # failure: caret, then the text
        out = rfc821.caret_lines(501, b"5.1.7", st.error_pos, esc_on, multiline)
        out.append(rfc821.path_data(st))     # "Path data: <error, max 200>"
        ...  # "that was for input: " + buf[lt:]  (the *edited* line)
    addr = bytes(buf[lt + 1 : end - 1])
    addr, note = rfc821.strip_source_route(addr, allowsourceroute)
    addr = rfc821.quote_local_part(addr)     # step 13

`path()` may have deleted blanks before `>` from `buf`: echo and measure the
edited line afterwards, as 3.0.1 does.
"""

from __future__ import annotations

import re

__all__ = [
    "ScanState",
    "path",
    "path2",
    "mailbox",
    "domain",
    "adl",
    "helo_check",
    "xtext",
    "xtext_decode",
    "atom",
    "orcpt",
    "caret_line",
    "caret_lines",
    "error_message",
    "path_data",
    "strip_source_route",
    "quote_local_part",
    "FALLBACK_ERROR",
    "SOURCE_ROUTE_NOTE",
]

# Error texts, byte for byte as 3.0.1 sends them (typos included).
E_NO_INPUT = b"No input"
E_PREMATURE_END = b"Premature end of input"
E_MISSING_LT = b'Missing "<" from begining'
E_MISSING_GT = b'Missing ">" at end'
E_EXTRA_GARBAGE = b'Extra garbage before terminating ">"'
E_NO_LOCAL_PART = b"No local part before leading @-character ?"
E_MISSING_COLON = b"Missing colon (:) from <@xxx:yyy@zzz>"
E_AT_DOMAIN = b'<at-domain> missing initial "@"'
E_MISSING_DOMAIN = b"missing domain entry"
E_COLON_FOR_DOT = b"Perhaps this should have been a dot (.) instead of colon (:) ?"
E_MISSING_AT = b'Missing "@" from mailbox definition'
E_NO_INITIAL_QUOTE = b'Quoted string w/o initial quote (")'
E_NO_FINAL_QUOTE = b'Quoted string w/o final quote (")'
E_QTEXT_8BIT = b"Improper 8-bit character in qtext"
E_QTEXT = b"RFC821 qtext data failure"
E_STRING_8BIT = b"Improper 8-bit character in string"
E_STRING = b"Had characters unsuitable for an rfc821-string"
E_LOCAL_DOT = b"Localpart must not end with unquoted dot!"
E_DOMAIN_NO_INPUT = b"RFC821: No input"
E_DOTNUM_NO_BRACKET = b'RFC821 <dotnum> element missing terminating "]"'
E_HASH_DOMAIN = b'RFC821 Domain "#numbers" has inadequate count of numbers'
E_LEADING_DOT = b"A domain-name does not start with a dot (.)"
E_SPURIOUS_DOT = b"Spurious dot (.) at the end of the domain name"
E_ALLNUM = b"Should this be of <dotnum> format ? ( [nn.nn.nn.nn] )"
E_BAD_DOMAIN = b"bad syntax on domain"
E_NAME = b"RFC821 <name> bad syntax"
E_DOTNUM_V6 = b"Bad syntax of <dotnum/v6dotnum> value"
E_DOTNUM_VALUE = b"Bad syntax of <dotnum> value"
E_DOTNUM_DOT = b"Bad syntax of <dotnum>, missing '.'"
E_V6_LEADING = b"Leading double-colon must have a pair in <v6dotnum>"
E_V6_BIG = b"Too big value for <v6dotnum> element"
E_V6_DOUBLE = b"Illegal intermediate double-colon in <v6dotnum>"
E_V6_MANY = b"Too many colon-separated components in <v6dotnum>"
E_V6_OTHER = b"<v6dotnum> error ?"
E_V6_FEW = b"Too few colon-separated components in <v6dotnum>"
E_HELO_JUNK = b"Spurious junk after the DOMAIN in HELO/EHLO argument"
E_XTEXT = b"Invalid character in XTEXT string"
E_ATOM = b"Invalid RFC822 atom"

# Shown instead of 3.0.1's "(null)" when a failed scan recorded no text
# (README: no "(null)" in any reply).
FALLBACK_ERROR = b"Syntax error in parameters or arguments"

# Character classes (protocol.md §5.2; the C table `char_array`).
_ALPHA = 0x001
_ALNUM = 0x002
_DIGIT = 0x008
_C = 0x010
_X = 0x020
_Q = 0x040
_XDIGIT = 0x080
_ATOM = 0x100
_XCHAR = 0x200


def _build_table() -> tuple[int, ...]:
    """Build the 256-entry class table once, from the rules of §5.2."""
    punct = b"!#$%&'*+-/=?^_`{|}~"
    table = []
    for b in range(256):
        f = 0
        ch = bytes([b])
        if ch.isalpha() and b < 0x80:
            f |= _ALPHA | _ALNUM | _C | _ATOM
        if ch.isdigit() and b < 0x80:
            f |= _ALNUM | _DIGIT | _C | _ATOM
        if b in punct:
            f |= _C | _ATOM
        if 0x01 <= b <= 0x7F:
            f |= _X
            if b not in (0x0A, 0x0D, 0x22, 0x5C):
                f |= _Q
        if ch in b"0123456789ABCDEFabcdef":
            f |= _XDIGIT
        if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D):
            f |= _XCHAR
        table.append(f)
    return tuple(table)


_CLASS = _build_table()

_LT, _GT, _AT, _COLON, _COMMA, _DOT = 0x3C, 0x3E, 0x40, 0x3A, 0x2C, 0x2E
_LBRACKET, _RBRACKET, _HASH, _DQUOTE, _BSLASH = 0x5B, 0x5D, 0x23, 0x22, 0x5C
_SP, _TAB, _PLUS, _SEMI = 0x20, 0x09, 0x2B, 0x3B


class ScanState:
    """The scanner's diagnostics (C globals `rfc821_error`, `rfc821_error_ptr`).

    One per session; `reset()` before each command's scan.
    """

    __slots__ = ("error_text", "error_pos")

    def __init__(self) -> None:
        self.error_text: bytes | None = None
        self.error_pos: int | None = None

    def reset(self) -> None:
        """Forget the previous command's diagnostics (README deviation)."""
        self.error_text = None
        self.error_pos = None

    def __repr__(self) -> str:
        return f"ScanState(error_text={self.error_text!r}, error_pos={self.error_pos!r})"


def _at(buf: bytes | bytearray, i: int) -> int:
    """The byte at `i` as C's `*p` sees it: 0 past the end (and at a NUL)."""
    return buf[i] if 0 <= i < len(buf) else 0


# ---------------------------------------------------------------- atoms


def atom(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    """RFC 822 atom (ORCPT address type), `rfc822atom()`."""
    p = s
    while _at(buf, p) != 0:
        if not _CLASS[buf[p]] & _ATOM:
            if p > s:  # stop on ';', for example
                return p
            break
        p += 1
    if p > s:
        return p
    st.error_pos = p
    st.error_text = E_ATOM
    return s


def xtext(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    """RFC 3461 xtext up to space, tab or end, `xtext_string()`."""
    p = s
    while True:
        c = _at(buf, p)
        if c == 0 or c == _SP or c == _TAB:
            if p == s:
                break
            return p
        if _CLASS[c] & _XCHAR:
            pass
        elif c == _PLUS:
            p += 1
            if not _is_upper_hex(_at(buf, p)):
                break
            p += 1
            if not _is_upper_hex(_at(buf, p)):
                break
        else:
            break
        p += 1
    st.error_pos = p
    st.error_text = E_XTEXT
    return s


def _is_upper_hex(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x46


def xtext_decode(b: bytes) -> bytes:
    """Decode `+HH` escapes of an xtext value; malformed escapes stay as they are."""
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == _PLUS and i + 2 < n and _is_hex(b[i + 1]) and _is_hex(b[i + 2]):
            out.append(int(b[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _is_hex(c: int) -> bool:
    return bool(_CLASS[c] & _XDIGIT)


def orcpt(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    """`<atom>;<xtext>` of ORCPT=, `orcpt_string()` of smtpcmds.c.

    Returns the end offset, or `s` on failure.  A missing `;` records the
    byte before the stop as position and leaves the text alone (§5.5).
    """
    stro = atom(st, buf, s)
    if stro == s:
        return s
    if _at(buf, stro) != _SEMI:
        st.error_pos = stro - 1
        return s
    stro += 1
    s2 = xtext(st, buf, stro)
    if s2 == stro:
        return s
    return s2


# ---------------------------------------------------------------- domains


def _at_domain(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`"@" <domain>`."""
    c = _at(buf, s)
    if c == 0:
        return s
    if c != _AT:
        st.error_text = E_AT_DOMAIN
        st.error_pos = s
        return s
    p = domain(st, buf, s + 1, strict)
    if p == s + 1:
        st.error_pos = s + 1
        st.error_text = E_MISSING_DOMAIN
        return s
    return p


def adl(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`<at-domain> *("," <at-domain>)`; a failure after a comma fails it all."""
    if _at(buf, s) == 0:
        return s
    p = s
    while True:
        q = _at_domain(st, buf, p, strict)
        if q <= p:
            return s
        p = q
        if _at(buf, p) != _COMMA:
            return p
        p += 1


def _v6dotnum(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """RFC 1884 text form, after `IPv6:` (mutated BIND inet_pton6 in C)."""
    tpcnt = 0
    colonidx = -1
    src = s
    if _at(buf, src) == _COLON:
        src += 1
        if _at(buf, src) != _COLON:
            st.error_pos = s
            st.error_text = E_V6_LEADING
            return s
    curtok = src
    saw_xdigit = False
    val = 0
    while True:
        ch = _at(buf, src)
        if ch == 0 or ch == _RBRACKET:
            break
        if _CLASS[ch] & _XDIGIT:
            # The C digit arithmetic maps A-F to 8..13 ('A'+1-'9' is 9, not 7);
            # kept because it decides when "Too big" fires.
            if ch >= 0x61:
                ch -= 0x61 - 0x41
            if ch >= 0x41:
                ch -= 0x41 + 1 - 0x39
            val = ((val << 4) | (ch - 0x30)) & 0xFFFFFFFF
            if val > 0xFFFF:
                st.error_pos = src - 1
                st.error_text = E_V6_BIG
                return s
            saw_xdigit = True
            src += 1
            continue
        if ch == _COLON:
            curtok = src
            if not saw_xdigit:
                if colonidx >= 0:
                    st.error_pos = src - 2
                    st.error_text = E_V6_DOUBLE
                    return s
                colonidx = tpcnt
                src += 1
                continue
            if tpcnt + 2 > 16:
                st.error_pos = src - 1
                st.error_text = E_V6_MANY
                return s
            tpcnt += 2
            saw_xdigit = False
            val = 0
            src += 1
            continue
        if ch == _DOT and tpcnt + 4 <= 16:
            src = _dotnum(st, buf, curtok, strict)
            if src == curtok:
                return s  # dotnum reported its own error
            tpcnt += 4
            saw_xdigit = False
            break
        st.error_pos = src - 1
        st.error_text = E_V6_OTHER
        return s
    if saw_xdigit:
        if tpcnt + 2 > 16:
            st.error_pos = src - 1
            st.error_text = E_V6_MANY
            return s
        tpcnt += 2
    if colonidx >= 0:
        tpcnt = 16
    if tpcnt != 16:
        st.error_pos = src - 1
        st.error_text = E_V6_FEW
        return s
    return src


def _dotnum(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`snum.snum.snum.snum` or `IPv6:` v6dotnum (inside `[...]`)."""
    c = _at(buf, s)
    if c == 0x69 or c == 0x49:  # 'i' / 'I'
        prefix = bytes(_at(buf, s + k) for k in range(5))
        if prefix.lower() == b"ipv6:":
            p = _v6dotnum(st, buf, s + 5, strict)
            if p == s + 5:
                return s
            return p
        st.error_pos = s
        st.error_text = E_DOTNUM_V6
        return s
    p = s - 1
    for i in range(4):
        val = cnt = 0
        p += 1
        while _CLASS[_at(buf, p)] & _DIGIT:
            val = val * 10 + (buf[p] - 0x30)
            cnt += 1
            p += 1
        if val > 255 or cnt < 1 or cnt > 3:
            st.error_pos = p
            st.error_text = E_DOTNUM_VALUE
            return s
        if i < 3 and _at(buf, p) != _DOT:
            st.error_pos = p
            st.error_text = E_DOTNUM_DOT
            return s
    return p


_LABEL = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*")  # _ALNUM, then _ALNUM or '-': _name's loop
_LABEL_ALPHA = re.compile(rb"[A-Za-z-]")


def _name(st: ScanState, buf: bytes | bytearray, s: int) -> tuple[int, bool]:
    """One label: alnum then alnum or '-'.  Returns (end, label had a letter or '-')."""
    m = _LABEL.match(buf, s) if s >= 0 else None
    if m is not None:  # the byte loop below, in one regex step (t/test_perf_equivalence.py)
        p = m.end()
        return p, _LABEL_ALPHA.search(buf, s, p) is not None
    c = _at(buf, s)
    if c == 0:
        return s, False
    if not _CLASS[c] & _ALNUM:
        st.error_pos = s
        st.error_text = E_NAME
        return s, False
    p = s
    has_alpha = False
    while _CLASS[c] & _ALNUM or c == 0x2D:
        has_alpha = has_alpha or bool(_CLASS[c] & _ALPHA) or c == 0x2D
        p += 1
        c = _at(buf, p)
    return p, has_alpha


def domain(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`"#" digits | "[" dotnum "]" | name *("." name)` (§5.3 domain)."""
    p = s
    c = _at(buf, p)
    if c == 0:
        st.error_text = E_DOMAIN_NO_INPUT
        return s
    if c == _LBRACKET:
        q = _dotnum(st, buf, p + 1, strict)
        if q == p + 1:
            return s
        if _at(buf, q) != _RBRACKET:
            st.error_pos = q - 1
            st.error_text = E_DOTNUM_NO_BRACKET
            return s
        return q + 1
    if c == _HASH:
        p += 1
        while _CLASS[_at(buf, p)] & _DIGIT:
            p += 1
        if p > s + 1:
            return p
        st.error_pos = s
        st.error_text = E_HASH_DOMAIN
        return s
    allnum = True
    if c == _DOT:
        st.error_text = E_LEADING_DOT
        st.error_pos = p
        return s
    q, alpha = _name(st, buf, p)
    if q > p:
        allnum = allnum and not alpha
    while q > p and _at(buf, q) == _DOT:
        p = q + 1
        c = _at(buf, p)
        if c == 0 or c == _GT:
            st.error_text = E_SPURIOUS_DOT
            st.error_pos = q
            return s
        q, alpha = _name(st, buf, p)
        if q > p:
            allnum = allnum and not alpha
    if allnum:
        st.error_text = E_ALLNUM
        return s
    if st.error_text is None:
        st.error_text = E_BAD_DOMAIN
    if p == q:
        return s
    return q


# ---------------------------------------------------------------- local part


def _char(buf: bytes | bytearray, s: int) -> int:
    """One `<c>` byte or `\\` + any 7-bit byte."""
    c = _at(buf, s)
    if c == 0:
        return s
    if c == _BSLASH:
        if not _CLASS[_at(buf, s + 1)] & _X:
            return s
        return s + 2
    if _CLASS[c] & _C:
        return s + 1
    return s


def _string(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    """Run of `<char>`; an empty run records an error but is not a failure."""
    if _at(buf, s) == 0:
        return s
    p = s
    while True:
        q = _char(buf, p)
        if q <= p:
            break
        p = q
    if _at(buf, q) > 127:
        st.error_pos = q
        st.error_text = E_STRING_8BIT
        return s
    if q == s:
        st.error_pos = s
        st.error_text = E_STRING
    return q


def _dot_string(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`string *("." string)`; lax mode accepts any mix of strings and dots."""
    if _at(buf, s) == 0:
        return s
    p = s
    q = _string(st, buf, p)
    if q == p and strict and _at(buf, p) == _DOT:
        return s
    while _at(buf, q) == _DOT:
        p = q + 1
        q = _string(st, buf, p)
        if strict and q == p and _at(buf, p) == _DOT:
            if _at(buf, q) == _AT:  # unreachable, kept from the C code
                st.error_text = E_LOCAL_DOT
            return s
    return q


def _qtext(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    if _at(buf, s) == 0:
        return s
    p = s
    fail = False
    while _at(buf, p) != 0 and not fail:
        c = buf[p]
        if c == _BSLASH:
            p += 1
            if _CLASS[_at(buf, p)] & _X:
                p += 1
            else:
                fail = True
        elif _CLASS[c] & _Q:
            p += 1
        else:
            break
    if _at(buf, p) > 127:
        st.error_pos = p
        st.error_text = E_QTEXT_8BIT
        return s
    if fail or p == s:
        st.error_pos = p
        st.error_text = E_QTEXT
        return s
    return p


def _quoted_string(st: ScanState, buf: bytes | bytearray, s: int) -> int:
    c = _at(buf, s)
    if c == 0:
        return s
    if c != _DQUOTE:
        st.error_pos = s
        st.error_text = E_NO_INITIAL_QUOTE
        return s
    p = s + 1
    q = _qtext(st, buf, p)
    if p == q:
        return s
    if _at(buf, q) != _DQUOTE:
        st.error_pos = q
        st.error_text = E_NO_FINAL_QUOTE
        return s
    return q + 1


def _localpart(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`<dot-string> | <quoted-string>` (the %/! hacks are compiled out in 3.0.1)."""
    c = _at(buf, s)
    if c == 0:
        return s
    if c == _DQUOTE:
        q = _quoted_string(st, buf, s)
        return s if q == s else q
    q = _dot_string(st, buf, s, strict)
    return s if q == s else q


def mailbox(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`local-part "@" domain`; lax mode also takes a bare local part."""
    if _at(buf, s) == 0:
        return s
    p = _localpart(st, buf, s, strict)
    if p == s:
        return s
    c = _at(buf, p)
    if not strict and (c == 0 or c == _GT):
        return p
    if c == _COLON:
        st.error_pos = p
        st.error_text = E_COLON_FOR_DOT
        return s
    if c != _AT:
        st.error_pos = p
        st.error_text = E_MISSING_AT
        return s
    p += 1
    q = domain(st, buf, p, strict)
    if q == p:
        return s
    return q


# ---------------------------------------------------------------- paths


def path2(st: ScanState, buf: bytes | bytearray, s: int, strict: bool) -> int:
    """`[adl ":"] mailbox` (bracket-less and sloppy forms)."""
    c = _at(buf, s)
    if c == 0:
        st.error_pos = s
        st.error_text = E_NO_INPUT
        return s
    p = s
    if c == _AT:
        q = adl(st, buf, p, strict)
        if q > p:
            p = q
            c = _at(buf, p)
            if c == _GT or c == _SP:
                st.error_pos = p
                st.error_text = E_NO_LOCAL_PART
                return s
            if c != _COLON:
                st.error_pos = p
                st.error_text = E_MISSING_COLON
                return s
            p += 1
    q = mailbox(st, buf, p, strict)
    if q == p:
        return s
    return q


def path(st: ScanState, buf: bytearray, s: int, strict: bool) -> int:
    """`"<" [adl ":"] mailbox ">"`.

    Blanks between the address and `>` are deleted from `buf` (the rest
    shifts left), as 3.0.1 does; callers echo and measure the edited line.
    """
    c = _at(buf, s)
    if c == 0:
        st.error_pos = s
        st.error_text = E_NO_INPUT
        return s
    if c != _LT:
        st.error_text = E_MISSING_LT
        st.error_pos = s
        return s
    p = s + 1
    c = _at(buf, p)
    if c == 0:
        st.error_text = E_PREMATURE_END
        st.error_pos = p
        return s
    if c == _GT:
        return p + 1
    q = path2(st, buf, p, strict)
    if q == p:
        return s
    c = _at(buf, q)
    if c == _SP or c == _TAB:
        p = q
        while _at(buf, p) in (_SP, _TAB):
            p += 1
        if p > q:
            del buf[q:p]
    c = _at(buf, q)
    if c != _GT:
        st.error_text = E_MISSING_GT
        if c != 0:
            st.error_text = E_EXTRA_GARBAGE
        st.error_pos = q
        return s
    return q + 1


# ---------------------------------------------------------------- HELO


def helo_check(st: ScanState, buf: bytes | bytearray, s: int) -> bool:
    """True when `buf[s:]` is exactly one domain (strict), §5.4 / `partridge()`.

    On failure the state holds the domain's own error, or the "Spurious
    junk" text at the first unconsumed byte.  An embedded NUL counts as junk
    (C stopped reading there; we never accept a NUL in a HELO name).
    """
    p = domain(st, buf, s, True)
    if p == s:
        return False
    if p >= len(buf):
        return True
    st.error_pos = p
    st.error_text = E_HELO_JUNK
    return False


# ---------------------------------------------------------------- helpers for the session


def error_message(st: ScanState) -> bytes:
    """The error text as `%.200s` prints it; never `(null)`."""
    text = st.error_text if st.error_text is not None else FALLBACK_ERROR
    return text[:200]


def path_data(st: ScanState) -> bytes:
    """`Path data: <error>` of the MAIL/RCPT scanner failures (§4.7.2, §4.7.3)."""
    return b"Path data: " + error_message(st)


def caret_line(code: int, esc: bytes, pos: int | None, esc_enabled: bool) -> bytes:
    """The `^` line under the offending byte of the command (§4.1.1), without CR LF.

    `pos` is the offset in the command line (0 = first byte of the verb).
    """
    if esc_enabled:
        prefix = b"%03d-%s " % (code, esc)
    else:
        prefix = b"%03d- " % code
    spaces = 0 if pos is None else max(0, min(200, pos - len(prefix)))
    return prefix + b" " * spaces + b"^"


def caret_lines(
    code: int, esc: bytes, pos: int | None, esc_enabled: bool, multiline: bool
) -> list[bytes]:
    """The caret line as a list, empty under `no-multiline-replies` (§4.14)."""
    if not multiline:
        return []
    return [caret_line(code, esc, pos, esc_enabled)]


SOURCE_ROUTE_NOTE = b", source route ignored"


def strip_source_route(addr: bytes, allow: bool) -> tuple[bytes, bytes]:
    """Drop a leading `@a,@b:` route unless allowed (§4.15).

    `addr` is the scanned address without brackets.  Returns the address to
    use and the reply note (`, source route ignored` or empty).  The colon
    goes too in every form: 3.0.1 keeps it for the bracket-less sloppy form
    (`:user@domain`), a broken address we do not copy.
    """
    if allow or not addr.startswith(b"@"):
        return addr, b""
    colon = addr.find(b":")
    if colon < 0:
        return addr, b""
    return addr[colon + 1 :], SOURCE_ROUTE_NOTE


def quote_local_part(addr: bytes) -> bytes:
    """Quote a backslash-escaped local part: `a\\ b@x` -> `"a\\ b"@x` (§4.7.2 step 13)."""
    if b"\\" not in addr or addr.startswith(b'"'):
        return addr
    out = bytearray(b'"')
    i = 0
    n = len(addr)
    while i < n:
        c = addr[i]
        if c == _AT:
            break
        if c == _BSLASH and i + 1 < n:
            out.append(c)
            i += 1
            c = addr[i]
        out.append(c)
        i += 1
    out += b'"'
    out += addr[i:]
    return bytes(out)
