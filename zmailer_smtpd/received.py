"""Trace and DSN record values: ``rcvdfrom``, the summary ``comment``, ``with``, ``todsn``.

The router builds the Received: header from ``rcvdfrom`` and copies ``todsn``
verbatim into its control files, so these bytes must be exactly 3.0.1's
(spool.md §5.3, §5.4, §7).  Pure functions over plain inputs; values are
returned without the record keyword (SpoolFile.record() adds it and the SP).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

NONE = b"<none>"
_SPECIALS = frozenset(b'"\\()')


# bytes q() and xtext() copy as they are: most values are all such bytes, one regex step
_Q_PLAIN = re.compile(rb'[\x20\x21\x23-\x27\x2a-\x5b\x5d-\x7e]*')
_XTEXT_PLAIN = re.compile(rb"[\x21-\x2a\x2c-\x3c\x3e-\x7e]*")


def q(x: bytes) -> bytes:
    """Comment quoting Q() of §5.4: quotes, backslash before ``" \\ ( )``, octal for the rest."""
    if _Q_PLAIN.fullmatch(x):
        return b'"' + x + b'"'
    out = bytearray(b'"')
    for b in x:
        if b < 0x20 or b > 0x7E:
            out += b"\\%03o" % b
        elif b in _SPECIALS:
            out += b"\\" + bytes((b,))
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


def xtext(x: bytes) -> bytes:
    """RFC 3461 xtext with uppercase hex, as INRCPT/INFROM/default ORCPT use (§5.4)."""
    if _XTEXT_PLAIN.fullmatch(x):
        return bytes(x)
    out = bytearray()
    for b in x:
        if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D):
            out.append(b)
        else:
            out += b"+%02X" % b
    return bytes(out)


def rfc821_to_822_quote(addr: bytes) -> bytes:
    """Quote a local part holding a backslash: ``alice\\ x@dom`` -> ``"alice\\ x"@dom`` (§5.4)."""
    if b"\\" not in addr or addr.startswith(b'"'):
        return addr
    out = bytearray(b'"')
    i, n = 0, len(addr)
    while i < n:
        c = addr[i]
        if c == 0x5C and i + 1 < n:  # keep backslash pairs as they are
            out += addr[i : i + 2]
            i += 2
            continue
        if c == 0x40:  # first unescaped @
            break
        out.append(c)
        i += 1
    out += b'"' + addr[i:]
    return bytes(out)


def rhostaddr_text(addr: str | None) -> bytes:
    """``[a.b.c.d]`` / ``[IPv6:...]``, empty when there is no peer address (``-i``)."""
    if not addr:
        return b""
    if ":" not in addr:  # the usual IPv4 peer: no ipaddress object needed
        try:
            return b"[" + socket.inet_ntop(socket.AF_INET, socket.inet_pton(
                socket.AF_INET, addr)).encode() + b"]"
        except OSError:
            pass
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return b"[" + addr.encode("ascii", "replace") + b"]"
    if isinstance(ip, ipaddress.IPv6Address):
        return b"[IPv6:" + _inet_ntop6(ip).encode() + b"]"
    return b"[" + str(ip).encode() + b"]"


def _inet_ntop6(ip: ipaddress.IPv6Address) -> str:
    """glibc's text form: embedded IPv4 dotted for ::ffff:a.b.c.d and ::a.b.c.d."""
    packed = ip.packed
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    if not any(words[:5]) and (words[5] == 0xFFFF or (words[5] == 0 and words[6] != 0)):
        v4 = str(ipaddress.IPv4Address(packed[12:]))
        return ("::ffff:" if words[5] else "::") + v4
    return str(ip)


@dataclass
class RhostFlags:
    """The four ``rhost-flags-F1-F2-F3-F4`` words (§5.3); OK wins once seen."""

    rdns: str = "??"  # OK / FAIL / ??
    fwd: str = "FAIL"  # OK / FAIL
    helo_syntax: str = "??"  # OK / FAIL / ??
    helo_addr: str = "FAIL"  # OK / FAIL

    def text(self) -> bytes:
        return f"rhost-flags-{self.rdns}-{self.fwd}-{self.helo_syntax}-{self.helo_addr}".encode()

    def add_helo(self, syntax_ok: bool, addr_ok: bool) -> None:
        """Accumulate one more HELO/EHLO: a FAIL never overrides an earlier OK."""
        if self.helo_syntax != "OK":
            self.helo_syntax = "OK" if syntax_ok else "FAIL"
        if self.helo_addr != "OK":
            self.helo_addr = "OK" if addr_ok else "FAIL"


@dataclass
class TraceInfo:
    """What the trace records say about the client; all bytes as received/stored."""

    rhostname: bytes  # reverse DNS name, or the address literal; b"stdin" in -i -T
    rhostaddr: bytes = b""  # rhostaddr_text(); empty in -i mode
    rport: int = 0
    heloline: bytes = b""  # whole last HELO/EHLO line, CR LF and trailing blanks removed
    flags: RhostFlags | None = None
    ident: bytes | None = None
    whoson: bytes | None = None
    authuser: bytes | None = None  # None: not authenticated
    cipherinfo: bytes | None = None  # None: no TLS
    peersubject: bytes | None = None  # None: no client certificate / no TLS


def _opt(x: bytes | None) -> bytes:
    return NONE if x is None else q(x)


def _head(t: TraceInfo, hostmax: int | None) -> tuple[bytes, bytes, bytes]:
    host = t.rhostname if hostmax is None else t.rhostname[:hostmax]
    addr = t.rhostaddr + b":" + str(t.rport).encode() + b" " if t.rhostaddr else b""
    return host, addr, q(t.heloline[:199])


def rcvdfrom_value(
    t: TraceInfo,
    *,
    rcvd_ident: bool = False,
    rcvd_whoson: bool = False,
    rcvd_auth_user: bool = False,
    rcvd_tls_mode: bool = False,
    rcvd_tls_peer: bool = False,
) -> bytes:
    """The ``rcvdfrom`` value (§5.3); ``rcvd_ident`` only counts with ``-a``, the caller decides.

    ident/whoson fields are written only when their value is known.
    """
    host, addr, helo = _head(t, 200)
    parts = [host, b" (", addr, helo]
    if rcvd_ident and t.ident is not None:
        parts += [b" ident: ", q(t.ident)]
    if rcvd_whoson and t.whoson is not None:
        parts += [b" whoson: ", q(t.whoson)]
    if rcvd_auth_user:
        parts += [b" smtp-auth: ", _opt(t.authuser)]
    if rcvd_tls_mode:
        parts += [b" TLS-CIPHER: ", _opt(t.cipherinfo)]
    if rcvd_tls_peer:
        parts += [b" TLS-PEER-CN1: ", _opt(t.peersubject)]
    parts += [b" ", (t.flags or RhostFlags()).text(), b")"]
    return b"".join(parts)


def summary_comment_value(t: TraceInfo, *, whoson: bool = False, tls_fields: bool = True) -> bytes:
    """The summary ``comment`` value (§5.3): no opening parenthesis, closing one kept (T-9).

    ``whoson``: ``-w`` in a whoson build; ``tls_fields``: the OpenSSL build (ours).
    """
    host, addr, helo = _head(t, None)
    parts = [host, b" ", addr, helo]
    if whoson:
        parts += [b" whoson: ", q(t.whoson if t.whoson is not None else b"NOT-CHECKED")]
    parts += [b" smtp-auth: ", _opt(t.authuser)]
    if tls_fields:
        parts += [b" TLS-CIPHER: ", _opt(t.cipherinfo), b" TLS-PEER: ", _opt(t.peersubject)]
    parts += [b" ", (t.flags or RhostFlags()).text(), b")"]
    return b"".join(parts)


def auth_comment_value(authuser: bytes) -> bytes:
    """Value of the ``comment smtp-auth: "<user>"`` record written at MAIL when authenticated."""
    return b"smtp-auth: " + q(authuser)


def with_value(
    *,
    ehlo: bool,
    tls: bool = False,
    auth: bool = False,
    bsmtp: bool = False,
    lmtp: bool = False,
    submit: bool = False,
) -> bytes:
    """The ``with`` protocol word (§5.3); the caller applies "HELO wipes the flags" (T-15)."""
    if bsmtp:
        return b"BSMTP"
    if lmtp:
        base = b"LMTP"
    elif submit:
        base = b"SUBMIT"
    elif ehlo:
        base = b"ESMTP"
    else:
        return b"SMTP"
    return base + (b"S" if tls else b"") + (b"A" if auth else b"")


def todsn_value(
    addr: bytes,
    fromaddr: bytes,
    *,
    notify_param: bytes | None = None,
    orcpt_param: bytes | None = None,
    force_never: bool = False,
    by_epoch: int | None = None,
    by_flags: str = "",
) -> bytes:
    """The ``todsn`` value (without its leading keyword and SP), §5.3.

    ``notify_param`` / ``orcpt_param``: the client's parameter verbatim, keyword
    included (``NOTIFY=success,failure``, ``ORCPT=rfc822;Bob+40example.net``).
    ``addr``/``fromaddr``: the stored (822-quoted) paths; ``fromaddr`` empty for <>.
    ``by_epoch``: MAIL time + BY= seconds when BY= was accepted; ``by_flags``
    holds the letters R, N, T that were given.
    """
    trace = "T" in by_flags
    if force_never:
        notify = b"NOTIFY=NEVER"
    elif notify_param is not None:
        notify = notify_param
        up = notify_param.upper()
        if b"NEVER" not in up and b"DELAY" not in up and "N" in by_flags:
            notify += b",DELAY"
        if trace:
            notify += b",TRACE"
    else:
        notify = b"NOTIFY=FAILURE,DELAY" + (b",TRACE" if trace else b"")
    parts = [notify]
    if by_epoch is not None:
        letters = "".join(c for c in "RNT" if c in by_flags)
        parts.append(f"BY={by_epoch};{letters}".encode())
    parts.append(orcpt_param if orcpt_param is not None else b"ORCPT=rfc822;" + xtext(addr))
    parts.append(b"INRCPT=rfc822;" + xtext(addr))
    parts.append(b"INFROM=rfc822;" + xtext(fromaddr))
    return b" ".join(parts)


def msa_comment_header(myhostname: bytes, authuser: bytes) -> bytes:
    """The X-Comment: line written right after env-end in MSA mode (§5.5); authuser raw."""
    return (
        b"X-Comment: RFC 2476 MSA function at "
        + myhostname
        + b" logged sender identity as: "
        + authuser
        + b"\n"
    )
