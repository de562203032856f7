"""The one DNS resolver everything uses (policy.md §7; spec/README.md "Policy").

Nameservers come from /etc/resolv.conf unless a PARAM names them as a list of
``host[:port]`` (``[v6addr]:port`` for IPv6 with a port).  Queries are raw (we
need the rcode, the AA bit and the additional section), absolute names, no
search list.  A timeout, a network error, or SERVFAIL/REFUSED/NOTIMP from every
server is a temporary failure: :class:`TempFail`.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype


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


def servers_from_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[list[Server], float]:
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
            servers, t = servers_from_resolv_conf()
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
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        try:
            qname = dns.name.from_text(name if name.endswith(".") else name + ".")
        except (dns.exception.DNSException, ValueError) as e:
            raise TempFail(f"bad name {name!r}: {e}") from None
        q = dns.message.make_query(qname, dns.rdatatype.from_text(rdtype), dns.rdataclass.IN)
        last = "no nameservers"
        for srv in self.servers:
            try:
                r = _udp_exchange(q, srv.host, srv.port, self.timeout)
                if r.flags & dns.flags.TC:
                    r = dns.query.tcp(q, srv.host, timeout=self.timeout, port=srv.port)
            except (dns.exception.Timeout, OSError, dns.exception.DNSException) as e:
                last = f"{srv.host}:{srv.port}: {e.__class__.__name__}"
                continue
            if r.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP):
                last = f"{srv.host}:{srv.port}: {dns.rcode.to_text(r.rcode())}"
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
                r = self.query(name, t)
            except TempFail:
                fails += 1
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
        import dns.reversename

        try:
            r = self.query(dns.reversename.from_address(ip).to_text(), "PTR")
        except (TempFail, ValueError):
            return None
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


def _udp_exchange(q: dns.message.Message, host: str, port: int, timeout: float) -> dns.message.Message:
    """One UDP query on a connected socket.

    Connected, so a nameserver that is not there (port unreachable) fails at
    once instead of after the whole timeout: a loopback resolver with nothing
    listening must not cost every session seconds.
    """
    import select

    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        s.send(q.to_wire())
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                raise dns.exception.Timeout()
            wire = s.recv(65535)
            try:
                r = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue  # not a DNS message: keep waiting for the answer
            if q.is_response(r):
                return r


def is_ip_literal(text: str) -> bool:
    """True for a numeric IPv4/IPv6 address text."""
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, text)
            return True
        except OSError:
            pass
    return False
