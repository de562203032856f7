"""DNS checks of the policy engine: MX/existence probe, DNSBL (policy.md §7).

Everything goes through :class:`zmailer_smtpd.dnsresolve.Resolver`; no call
here ever reaches the host's own name service.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable

import dns.flags
import dns.rcode
import dns.rdatatype

from ..dnsresolve import Resolver, TempFail

# probe outcomes
FOUND = "FOUND"
NOT_OURS = "NOT_OURS"
NOMATCH = "NOMATCH"
TEMPFAIL = "TEMPFAIL"
NOHOST = "NOHOST"
NOPERM = "NOPERM"
UNAVAILABLE = "UNAVAILABLE"
SOFTWARE = "SOFTWARE"

MODE_MX = "MX"
MODE_EXISTS = "EXISTS"

Say = Callable[[str], None]


def _nop(_: str) -> None:
    pass


class SelfAddrs:
    """The self-address test of lib/selfaddrs.c (policy.md §0), IPv6 fixed.

    ``addrs`` None means "could not be determined": every address is then 0.
    """

    def __init__(self, addrs: Iterable[str] | None) -> None:
        self.known = addrs is not None
        self.addrs = {ipaddress.ip_address(a) for a in (addrs or ())}
        self._seen: dict[str, int] = {}  # a daemon child's SelfAddrs meets the same clients again

    def test(self, ip: str) -> int:
        """2 for 127/8 (and ::1), 3 for 0/8 and > 223, 1 for ours, else 0."""
        r = self._seen.get(ip)
        if r is None:
            r = self._test(ip)
            if len(self._seen) < 1024:
                self._seen[ip] = r
        return r

    def _test(self, ip: str) -> int:
        if not self.known:
            return 0
        a = ipaddress.ip_address(ip)
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        if isinstance(a, ipaddress.IPv4Address):
            first = a.packed[0]
            if first == 127:
                return 2
            if first == 0 or first > 223:
                return 3
        elif a == ipaddress.IPv6Address("::1"):
            return 2
        return 1 if a in self.addrs else 0


# the interface addresses as the daemon parent found them (prime()); None: ask each time
_primed_interfaces: list[str] | None = None
_primed_self: SelfAddrs | None = None  # the same as a SelfAddrs (no SELFADDRESSES names)


def prime() -> None:
    """Find the interface addresses now, once, for every later session (daemon parent, SIGHUP)."""
    global _primed_interfaces, _primed_self
    unprime()
    found = interface_addresses()
    _primed_interfaces, _primed_self = found, SelfAddrs(found)


def unprime() -> None:
    """Back to asking the kernel for every session."""
    global _primed_interfaces, _primed_self
    _primed_interfaces = _primed_self = None


def interface_addresses() -> list[str]:
    """The host's interface addresses (IPv4 by ioctl, IPv6 from /proc)."""
    if _primed_interfaces is not None:
        return list(_primed_interfaces)
    out: list[str] = []
    try:
        names = [n for _, n in socket.if_nameindex()]
    except OSError:
        names = []
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for n in names:
            try:
                r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", n.encode()[:15]))
                out.append(socket.inet_ntoa(r[20:24]))
            except OSError:
                pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                h = line.split()[0]
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(h))))
    except OSError:
        pass
    return out


def self_addrs_for_host(resolver: Resolver | None, selfaddresses: str | None) -> SelfAddrs:
    """Interface addresses plus the addresses of SELFADDRESSES host names.

    Bracketed literals in SELFADDRESSES are ignored, as in 3.0.1 (§0).
    """
    names = [n for n in (selfaddresses or "").replace(",", " ").split()
             if not n.startswith("[") and resolver is not None]
    if not names and _primed_self is not None:
        return _primed_self  # only read by its users
    addrs = interface_addresses()
    for name in (selfaddresses or "").replace(",", " ").split():
        if name.startswith("[") or resolver is None:
            continue
        try:
            addrs.extend(resolver.addresses(name, ipv6=True))
        except TempFail:
            pass
    return SelfAddrs(addrs)


def address_invalid(ip: str) -> bool:
    """§7.1: private/loopback/class D-E/zero IPv4 addresses are invalid."""
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address):
        return False
    b0, b1 = a.packed[0], a.packed[1]
    return (
        b0 >= 224
        or b0 in (0, 10, 127, 255)
        or (b0 == 172 and 16 <= b1 <= 31)
        or (b0 == 192 and b1 == 168)
        or (b0 == 169 and b1 == 254)
    )


class DnsChecker:
    """MX / existence probes and DNSBL tests for one session."""

    def __init__(
        self,
        resolver: Resolver,
        selfaddrs: SelfAddrs,
        *,
        ipv6: bool = False,
        debug: Say | None = None,
        log: Say | None = None,
    ) -> None:
        self.resolver = resolver
        self.selfaddrs = selfaddrs
        self.ipv6 = ipv6
        self.debug: Say = debug or _nop
        self.log: Say = log or _nop
        self.islocaldomain = False

    # -- §7.2 ---------------------------------------------------------------
    def probe(self, name: str, mode: str, depth: int = 0) -> str:
        """The MX/existence probe; sets ``islocaldomain`` as a side result."""
        if depth == 0:
            self.islocaldomain = False
        if depth > 3:
            return NOHOST
        dbg = self.debug
        dbg(f"000- dnsmxlookup('{name}', depth={depth} mxmode={1 if mode == MODE_MX else 0} qtype=T_MX)")
        try:
            r = self.resolver.query(name, "MX")
        except TempFail:
            return TEMPFAIL
        rc = r.rcode()
        dbg(
            f"000-  len=0 rcode={rc} qdcount={len(r.question)} ancount={sum(len(x) for x in r.answer)}"
            f" nscount={sum(len(x) for x in r.authority)} arcount={sum(len(x) for x in r.additional)}"
            f" TC={1 if r.flags & dns.flags.TC else 0}"
        )
        if rc != dns.rcode.NOERROR or not r.answer:
            if rc == dns.rcode.NXDOMAIN:
                return NOHOST
            if rc == dns.rcode.SERVFAIL:
                return TEMPFAIL
            if rc == dns.rcode.NOERROR:
                return self._no_mx(name, mode)
            if rc in (dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED):
                return NOPERM
            return UNAVAILABLE
        cname: str | None = None
        mxs: list[tuple[int, str]] = []
        for rrset in r.answer:
            for rd in rrset:
                if rrset.rdtype == dns.rdatatype.CNAME:
                    cname = rd.target.to_text(omit_final_dot=True)
                elif rrset.rdtype == dns.rdatatype.MX and len(mxs) < 128:
                    mxs.append((rd.preference, rd.exchange.to_text(omit_final_dot=True)))
        for i, (_, h) in enumerate(mxs):
            dbg(f"000  MX[{i}] = '{h}'")
        invalid = False
        match = False
        seen: dict[str, set[str]] = {}
        if r.flags & dns.flags.AA:
            for rrset in r.additional:
                if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    continue
                owner = rrset.name.to_text(omit_final_dot=True).lower()
                for _, h in mxs:
                    if h.lower() != owner:
                        continue
                    seen.setdefault(h.lower(), set()).add("A" if rrset.rdtype == dns.rdatatype.A else "AAAA")
                    for rd in rrset:
                        if address_invalid(rd.address):
                            invalid = True
                        if self.selfaddrs.test(rd.address) in (1, 2):
                            match = True
        if not match:
            for _, h in mxs:
                fams = seen.get(h.lower(), set())
                try:
                    if not fams:
                        addrs = self.resolver.addresses(h, ipv6=self.ipv6)
                    elif fams == {"A"}:
                        if not self.ipv6:
                            continue
                        addrs = [
                            a for a in self.resolver.addresses(h, ipv6=True) if ":" in a
                        ]
                    elif fams == {"AAAA"}:
                        addrs = self.resolver.addresses(h, ipv6=False)
                    else:
                        continue
                except TempFail:
                    continue
                if not addrs:
                    continue
                this_match = False
                for a in addrs:
                    dbg(f"000-  matching {h} address {'IPv6' if ':' in a else 'IPv4'}:[{a}]")
                    if address_invalid(a):
                        invalid = True
                    s = self.selfaddrs.test(a)
                    dbg(f"000-   matchmyaddress() yields: {s}")
                    if s in (1, 2):
                        dbg("000-   ADDRESS MATCH!")
                        this_match = True
                        break
                if this_match:
                    match = True
                    break
                dbg(f"000-   No address match among {len(addrs)} address!")
                if mode == MODE_EXISTS:
                    return TEMPFAIL if invalid else FOUND
        dbg(
            f"000-   saw_cname={1 if cname else 0}  had_mx_record={1 if mxs else 0}  "
            f"mxmode={1 if mode == MODE_MX else 0}  mxislocal={1 if match else 0} mx_ip_is_invalid={1 if invalid else 0}"
        )
        if match:
            return TEMPFAIL if invalid else FOUND
        if invalid:
            return TEMPFAIL
        if cname:
            return self.probe(cname, mode, depth + 1)
        if mxs:
            return NOT_OURS if mode == MODE_MX else FOUND
        return NOMATCH

    def _no_mx(self, name: str, mode: str) -> str:
        try:
            addrs = self.resolver.addresses(name, ipv6=self.ipv6)
        except TempFail:
            addrs = []
        if not addrs:
            return TEMPFAIL
        if any(address_invalid(a) for a in addrs):
            return TEMPFAIL
        s = 0
        for a in addrs:
            s = self.selfaddrs.test(a)
            if s:
                break
        if s:
            self.islocaldomain = True
        if s == 2 or (s == 0 and mode == MODE_MX):
            return NOT_OURS
        return FOUND

    def verify(self, name: str, mode: str, modechar: str) -> int:
        """Probe and map to a policy result (§7.2 outcome table)."""
        out = self.probe(name, mode)
        if out == FOUND:
            rc = 0
        elif out == TEMPFAIL:
            rc = -104
        elif out == NOT_OURS:
            rc = -3
        elif out in (NOHOST, UNAVAILABLE):
            rc = -2
        else:
            rc = -102 if modechar == "+" else -2
        self.debug(f"000- dnsmxlookup() did yield: {rc}, retmode='{modechar}'")
        return rc

    # -- §7.3 ---------------------------------------------------------------
    def rbl_test(self, ip: str, zones: bytes) -> tuple[bool, bytes | None]:
        """(listed, TXT text) for ``ip`` against ``zone[:zone...]``."""
        a = ipaddress.ip_address(ip)
        if isinstance(a, ipaddress.IPv4Address):
            prefix = ".".join(str(b) for b in reversed(a.packed)) + "."
        else:
            prefix = "".join(f"{c}." for c in reversed(a.packed.hex())) + "ip6."
        for zone_b in zones.split(b":"):
            zone = zone_b.decode("latin-1")
            if zone in ("+", ""):
                self._note(f"RBL zone '{zone}' has no default in 3.0.1; skipped")
                continue
            name = prefix + zone + ("" if zone.endswith(".") else ".")
            self.debug(f"000- looking up DNS A object: {name}")
            try:
                addrs = self.resolver.addresses(name)
            except TempFail:
                addrs = []
            if not addrs:
                self._note(f"Didn't find DNS A object: {name}")
                continue
            self._note(f"Looked up DNS A object: {name} -> {addrs[0]}")
            if not addrs[0].startswith("127.0.0."):
                continue
            self.debug(f"000- looking up DNS TXT object: {name}")
            txt = self.resolver.txt(name)
            if txt is not None:
                txt = bytes(0x20 if (c < 0x20 or 0x7F <= c <= 0x9F or c == 0xFF) else c for c in txt)
                self._note(f"Found DNS TXT object: {txt.decode('latin-1')}")
            return True, txt
        return False, None

    def _note(self, text: str) -> None:
        self.log(text)
        self.debug("000- " + text)

