"""The one DNS resolver everything uses (policy.md §7; spec/README.md "Policy").

Nameservers come from /etc/resolv.conf unless a PARAM names them as a list of
``host[:port]`` (``[v6addr]:port`` for IPv6 with a port).  Queries are raw (we
need the rcode, the AA bit and the additional section), absolute names, no
search list.  A timeout, a network error, or SERVFAIL/REFUSED/NOTIMP from every
server is a temporary failure: :class:`TempFail`.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename


class TempFail(Exception):
    """No usable answer from any nameserver (timeout, SERVFAIL, network error)."""


@dataclass(frozen=True)
class Server:
    """One nameserver address."""

    host: str
    port: int = 53


def parse_servers(spec: str | list[str]) -> list[Server]:
    """``"127.0.0.1:5353 ::1 [::1]:53"`` → servers (blank or comma separated)."""
    items = spec if isinstance(spec, list) else spec.replace(",", " ").split()
    out: list[Server] = []
    for it in items:
        if it.startswith("["):
            host, _, rest = it[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif it.count(":") == 1:
            host, _, p = it.partition(":")
            port = int(p)
        else:
            host, port = it, 53
        out.append(Server(host, port))
    return out


RESOLV_CONF = "/etc/resolv.conf"
# resolv.conf as read once by the daemon parent (prime()); children inherit it.
# None: read the file for every Resolver (-i, -n, tests).
_primed: tuple[list[Server], float] | None = None


def prime() -> None:
    """Read resolv.conf now and let every later Resolver() use that (daemon parent, SIGHUP)."""
    global _primed
    _primed = None
    _primed = servers_from_resolv_conf(RESOLV_CONF)


def unprime() -> None:
    """Back to reading resolv.conf for every Resolver."""
    global _primed
    _primed = None


def servers_from_resolv_conf(path: str = RESOLV_CONF) -> tuple[list[Server], float]:
    """Nameservers and per-try timeout from resolv.conf (defaults 127.0.0.1, 5 s)."""
    servers: list[Server] = []
    timeout = 5.0
    try:
        with open(path, encoding="latin-1") as f:
            for line in f:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    servers.append(Server(w[1].split("%")[0]))
                elif w and w[0] == "options":
                    for o in w[1:]:
                        if o.startswith("timeout:"):
                            try:
                                timeout = float(o[8:])
                            except ValueError:
                                pass
    except OSError:
        pass
    return servers or [Server("127.0.0.1")], timeout


class Resolver:
    """Raw DNS queries against a fixed list of servers."""

    def __init__(self, servers: list[Server] | None = None, timeout: float | None = None) -> None:
        if servers is None:
            servers, t = _primed if _primed is not None else servers_from_resolv_conf()
            servers = list(servers)
            timeout = t if timeout is None else timeout
        self.servers = servers
        self.timeout = 5.0 if timeout is None else timeout

    @classmethod
    def from_param(cls, value: str | None, timeout: float | None = None) -> Resolver:
        """From a PARAM value naming nameservers, or resolv.conf when None/empty."""
        if value and value.strip():
            return cls(parse_servers(value), timeout)
        return cls(None, timeout)

    def query(self, name: bytes | str, rdtype: str) -> dns.message.Message:
        """One query (absolute name); the first usable response, else TempFail."""
        r = self._query(name, rdtype, light=False)
        assert isinstance(r, dns.message.Message)
        return r

    def _query(self, name: bytes | str, rdtype: str, *, light: bool) -> dns.message.Message | Light:
        """query(); ``light``: a plain answer may come back as a :class:`Light`."""
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
        qname: dns.name.Name | _LazyName | None = None
        wire_name = _plain_wire_name(name)
        if wire_name is None:  # escapes, IDN, bad labels: dnspython decides
            try:
                qname = dns.name.from_text(name if name.endswith(".") else name + ".")
                wire_name = qname.to_wire() or b"\0"
            except (dns.exception.DNSException, ValueError) as e:
                raise TempFail(f"bad name {name!r}: {e}") from None
        if qname is None:
            qname = _LazyName(name)
        last = "no nameservers"
        for srv in self.servers:
            try:
                r = _udp_exchange(qname, wire_name, qtype, srv.host, srv.port, self.timeout,
                                  light=light)
                if r.flags & _TC:
                    q = dns.message.make_query(_name(qname), qtype, dns.rdataclass.IN)
                    r = dns.query.tcp(q, srv.host, timeout=self.timeout, port=srv.port)
            except (dns.exception.Timeout, OSError, dns.exception.DNSException) as e:
                last = f"{srv.host}:{srv.port}: {e.__class__.__name__}"
                continue
            failed = _RETRY_RCODES.get(r.rcode())
            if failed is not None:
                last = f"{srv.host}:{srv.port}: {failed}"
                continue
            return r
        raise TempFail(last)

    def addresses(self, name: bytes | str, *, ipv6: bool = False) -> list[str]:
        """A (and AAAA if ``ipv6``) addresses of ``name``, following CNAMEs; [] if none.

        Stands in for the C code's getaddrinfo (the host name service).
        Raises TempFail only when no family got a usable answer.
        """
        out: list[str] = []
        fails = 0
        types = ["A", "AAAA"] if ipv6 else ["A"]
        for t in types:
            try:
                r = self._query(name, t, light=t == "A")
            except TempFail:
                fails += 1
                continue
            if isinstance(r, Light):
                out.extend(r.addresses())
                continue
            want = dns.rdatatype.from_text(t)
            for rrset in r.answer:
                if rrset.rdtype == want:
                    out.extend(rd.address for rd in rrset)
        if fails == len(types):
            raise TempFail(f"no answer for {name!r}")
        return out

    def ptr(self, ip: str) -> str | None:
        """The first PTR name of ``ip`` (no trailing dot), or None (also on TempFail)."""
        try:
            r = self._query(_reverse_name(ip), "PTR", light=True)
        except (TempFail, ValueError):
            return None
        if isinstance(r, Light):
            return r.ptr()
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.PTR:
                for rd in rrset:
                    return str(rd.target.to_text(omit_final_dot=True))
        return None

    def txt(self, name: bytes | str) -> bytes | None:
        """First character-string of the first TXT record, or None."""
        try:
            r = self.query(name, "TXT")
        except TempFail:
            return None
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rd in rrset:
                    if rd.strings:
                        return bytes(rd.strings[0])
        return None


def _reverse_name(ip: str) -> str:
    """in-addr.arpa / ip6.arpa name of an address (what dns.reversename builds), fast for IPv4."""
    if ":" not in ip:
        try:
            a, b, c, d = socket.inet_pton(socket.AF_INET, ip)
        except OSError:
            pass  # dnspython says why
        else:
            return f"{d}.{c}.{b}.{a}.in-addr.arpa."
    return str(dns.reversename.from_address(ip).to_text())


# answers that send the query to the next server (and, from the last, make TempFail)
_RETRY_RCODES = {int(c): c.name for c in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP)}
_HEADER = struct.Struct("!HHHHHH")
_TC = int(dns.flags.TC)  # a plain int: IntFlag's & builds a new enum member each time


def _udp_exchange(
    qname: dns.name.Name | _LazyName, wire_name: bytes, qtype: int, host: str, port: int,
    timeout: float,
    *, light: bool = False,
) -> dns.message.Message | Light:
    """One UDP query (RD set, class IN, no EDNS: what make_query sends) on a connected socket.

    Connected, so a nameserver that is not there (port unreachable) fails at
    once instead of after the whole timeout: a loopback resolver with nothing
    listening must not cost every session seconds.  The query is packed by
    hand: dnspython's message builder costs more than the rest of a lookup.
    """
    import select

    qid = int.from_bytes(os.urandom(2), "big")
    wire = _HEADER.pack(qid, dns.flags.RD, 1, 0, 0, 0) + wire_name + struct.pack(
        "!HH", qtype, dns.rdataclass.IN)
    deadline = time.monotonic() + timeout
    s, kept = _udp_socket(host, port)
    try:
        s.send(wire)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                raise dns.exception.Timeout()
            answer = s.recv(65535)
            if len(answer) < 12 or answer[:2] != wire[:2] or not answer[2] & 0x80:
                continue  # not the response to this query: keep waiting
            if light:
                lr = Light.parse(answer, wire_name, qtype)
                if lr is NOT_OURS:
                    continue
                if isinstance(lr, Light):
                    return lr
            try:
                r = dns.message.from_wire(answer)
            except dns.exception.DNSException:
                continue  # not a DNS message: keep waiting for the answer
            if _answers(r, _name(qname), qtype):
                return r
    except BaseException:
        if kept:  # a late answer or a pending error must not meet the next query
            _LOOPBACK_SOCKETS.pop((host, port), None)
            s.close()
        raise
    finally:
        if not kept:
            s.close()


# (host, port) -> (pid, socket): see _udp_socket
_LOOPBACK_SOCKETS: dict[tuple[str, int], tuple[int, socket.socket]] = {}


def on_loopback(host: str) -> bool:
    """A nameserver address on this host's loopback (answers cannot be forged from outside)."""
    return host.startswith("127.") or host == "::1"


def _udp_socket(host: str, port: int) -> tuple[socket.socket, bool]:
    """A connected UDP socket to the nameserver; True if it is kept for the next query.

    A new socket (a new random source port) per query, as stub resolvers do,
    except for a nameserver on loopback, where nobody off the host can forge
    an answer: a session child then keeps one socket for its lookups.
    """
    loopback = on_loopback(host)
    pid = os.getpid()
    if loopback:
        cached = _LOOPBACK_SOCKETS.get((host, port))
        if cached is not None and cached[0] == pid:
            return cached[1], True
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    if loopback:
        _LOOPBACK_SOCKETS[(host, port)] = (pid, s)  # a forked parent's entry is replaced, not closed
    return s, loopback


_QTYPES = {t: dns.rdatatype.RdataType[t] for t in ("A", "AAAA", "PTR", "MX", "TXT")}
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")  # needs no escape in wire or text form


def _plain_wire_name(name: str) -> bytes | None:
    """The wire form of a plain host name (letters, digits, - and _), else None.

    dnspython's Name costs more than the rest of a lookup; every name a
    session asks for (PTR names, HELO names, RBL zones) is plain.
    """
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if not all(_LABEL.fullmatch(x) for x in labels):
        return None
    wire = b"".join(bytes((len(x),)) + x.encode("ascii") for x in labels) + b"\0"
    return wire if len(wire) <= 255 else None


class _LazyName:
    """dnspython's Name of a plain name, made only when a full parse needs it."""

    def __init__(self, text: str) -> None:
        self.text = text if text.endswith(".") else text + "."
        self._name: dns.name.Name | None = None

    def get(self) -> dns.name.Name:
        if self._name is None:
            self._name = dns.name.from_text(self.text)
        return self._name


def _name(qname: dns.name.Name | _LazyName) -> dns.name.Name:
    return qname.get() if isinstance(qname, _LazyName) else qname


def _answers(r: dns.message.Message, qname: dns.name.Name, qtype: int) -> bool:
    """Message.is_response's checks past id and QR: opcode QUERY, our question."""
    if r.opcode() != dns.opcode.QUERY:
        return False
    if not r.question and r.rcode() in _NO_QUESTION_OK:
        return True
    return all(
        rr.name == qname and rr.rdtype == qtype and rr.rdclass == dns.rdataclass.IN
        for rr in r.question
    ) and len(r.question) == 1


_NO_QUESTION_OK = frozenset(
    (dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED))


_RR = struct.Struct("!HHIH")
_ESCAPED = frozenset(b'"().;\\@$')


class Light:
    """A plain response to an A or PTR query, read without dnspython's message parser.

    Only what ptr() and addresses() need, with dnspython's results: records
    of the answer section grouped by owner, type and class in order of first
    appearance, duplicates once.  Anything unusual (compression loops,
    truncation, odd record lengths, an OPT record) makes :meth:`parse`
    return None and the full parser takes over.
    """

    __slots__ = ("flags", "_rcode", "answer")

    def __init__(self, flags: int, answer: list[tuple[int, int, bytes, bytes]]) -> None:
        self.flags = flags
        self._rcode = flags & 0xF
        self.answer = answer  # (type, class, owner key, rdata) in wire order

    def rcode(self) -> int:
        return self._rcode

    @classmethod
    def parse(cls, wire: bytes, wire_name: bytes, qtype: int) -> Light | object | None:
        """A Light, NOT_OURS (not the answer to this question), or None (use dnspython)."""
        try:
            _, flags, qd, an, ns, ar = _HEADER.unpack_from(wire)
            if (flags >> 11) & 0xF != 0:  # opcode QUERY
                return NOT_OURS
            if flags & _TC or ar:
                return None
            if qd != 1:
                if qd == 0 and flags & 0xF in _NO_QUESTION_OK:
                    return None
                return NOT_OURS
            off = 12
            qn, off = _read_name(wire, off)
            if qn is None:
                return None
            qt, qc = struct.unpack_from("!HH", wire, off)
            off += 4
            if qn != wire_name.lower() or qt != qtype or qc != dns.rdataclass.IN:
                return NOT_OURS
            answer: list[tuple[int, int, bytes, bytes]] = []
            for i in range(an + ns):
                owner, off = _read_name(wire, off)
                if owner is None:
                    return None
                t, c, _ttl, rdlen = _RR.unpack_from(wire, off)
                off += 10
                rdata = wire[off : off + rdlen]
                if len(rdata) != rdlen:
                    return None
                if i < an:
                    if t == dns.rdatatype.A and (rdlen != 4 or c != dns.rdataclass.IN):
                        return None
                    if t == dns.rdatatype.PTR:
                        target, end = _read_name(wire, off)
                        if target is None or end != off + rdlen:
                            return None
                        rdata = _name_text(wire, off).encode("latin-1")
                    answer.append((t, c, owner, rdata))
                off += rdlen
            if off != len(wire):
                return None
        except (struct.error, IndexError, UnicodeError):
            return None
        return cls(flags, answer)

    def _rrsets(self, rtype: int) -> list[bytes]:
        groups: dict[tuple[bytes, int, int], list[bytes]] = {}
        for t, c, owner, rdata in self.answer:
            if t != rtype:
                continue
            g = groups.setdefault((owner, t, c), [])
            if rdata not in g:
                g.append(rdata)
        return [rd for g in groups.values() for rd in g]

    def addresses(self) -> list[str]:
        return [socket.inet_ntoa(rd) for rd in self._rrsets(dns.rdatatype.A)]

    def ptr(self) -> str | None:
        for rd in self._rrsets(dns.rdatatype.PTR):
            return rd.decode("latin-1")
        return None


NOT_OURS = object()


def _read_name(wire: bytes, off: int) -> tuple[bytes | None, int]:
    """(lower-cased uncompressed wire form, offset after the name); None if malformed."""
    out = bytearray()
    end = -1
    hops = 0
    while True:
        n = wire[off]
        if n == 0:
            out.append(0)
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | wire[off + 1]
            hops += 1
            if hops > 64:
                return None, 0
            continue
        if n & 0xC0:
            return None, 0
        label = wire[off : off + 1 + n]
        if len(label) != n + 1:
            return None, 0
        out += label
        off += n + 1
        if len(out) > 255:
            return None, 0
    return bytes(out).lower(), (off if end < 0 else end)


def _name_text(wire: bytes, off: int) -> str:
    """The name at ``off`` as dnspython's to_text(omit_final_dot=True) writes it."""
    labels: list[str] = []
    while True:
        n = wire[off]
        if n == 0:
            break
        if n & 0xC0 == 0xC0:
            off = ((n & 0x3F) << 8) | wire[off + 1]
            continue
        label = wire[off + 1 : off + 1 + n]
        off += n + 1
        text = []
        for c in label:
            if c in _ESCAPED:
                text.append("\\" + chr(c))
            elif 0x20 < c < 0x7F:
                text.append(chr(c))
            else:
                text.append(f"\\{c:03d}")
        labels.append("".join(text))
    return ".".join(labels) if labels else "."
