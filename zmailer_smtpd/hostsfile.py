"""The host name service: /etc/hosts and DNS, in the order of nsswitch.conf's ``hosts:`` line.

3.0.1 names its client with gethostbyaddr() and checks names with
getaddrinfo(); glibc asks the sources of nsswitch.conf's ``hosts:`` line in
turn, so an /etc/hosts entry names a client as it does for every other
program (Postfix too), and such a lookup costs no DNS query.  Only these
lookups go through here: the client's name, its forward check and the HELO
comparison.  The policy's DNS tests (MX, TXT, RBL zones) stay raw DNS.

Both files are read again when they change (a stat at most once a second),
as glibc reads /etc/hosts for every lookup.  Sources other than ``files`` and ``dns``
are skipped; ``[ACTION]`` items are not interpreted: a source that finds
nothing passes the lookup on to the next one, a source that finds something
ends it (glibc's defaults).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Protocol

from .dnsresolve import TempFail

HOSTS = "/etc/hosts"
NSSWITCH = "/etc/nsswitch.conf"
# glibc's order without a hosts: line (its "dns [!UNAVAIL=return] files", actions aside)
DEFAULT_SOURCES = ("dns", "files")
RECHECK = 1.0  # seconds between looks at whether a file changed


class DnsLookups(Protocol):
    """What the name service needs of a resolver (dnsresolve.Resolver)."""

    def ptr(self, ip: str) -> str | None: ...

    def addresses(self, name: str, *, ipv6: bool = False) -> list[str]: ...


class HostsTable:
    """One reading of /etc/hosts: first name of an address, addresses of a name."""

    def __init__(self, text: str) -> None:
        self.by_addr: dict[bytes, str] = {}
        self.by_name: dict[str, list[tuple[int, str]]] = {}
        for line in text.splitlines():
            fields = line.partition("#")[0].split()
            if len(fields) < 2:
                continue
            packed = _pack(fields[0])
            if packed is None:
                continue  # glibc skips a line whose address does not parse
            family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
            text_addr = socket.inet_ntop(family, packed)
            self.by_addr.setdefault(packed, fields[1])  # the first line naming it wins
            for name in fields[1:]:
                found = self.by_name.setdefault(name.lower(), [])
                if (family, text_addr) not in found:
                    found.append((family, text_addr))

    def name_of(self, ip: str) -> str | None:
        packed = _pack(ip)
        return None if packed is None else self.by_addr.get(packed)

    def addresses_of(self, name: str, *, ipv6: bool) -> list[str]:
        found = self.by_name.get(name.lower(), [])
        return [a for f, a in found if f == socket.AF_INET] + (
            [a for f, a in found if f == socket.AF_INET6] if ipv6 else [])


def _pack(ip: str) -> bytes | None:
    """Binary form of an address; an IPv4-mapped IPv6 address as its IPv4 (glibc's lookup)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, ip.partition("%")[0])
        except (OSError, ValueError):
            continue
        if family == socket.AF_INET6 and packed[:12] == b"\0" * 10 + b"\xff\xff":
            return packed[12:]
        return packed
    return None


def parse_sources(text: str) -> tuple[str, ...]:
    """The ``files``/``dns`` sources of the last ``hosts:`` line, in order."""
    found: tuple[str, ...] | None = None
    for line in text.splitlines():
        db, colon, rest = line.partition("#")[0].partition(":")
        if colon and db.strip() == "hosts":
            words = rest.replace("[", " [").replace("]", "] ").split()
            out: list[str] = []
            depth = 0
            for w in words:
                depth += w.count("[")
                if depth == 0 and w in ("files", "dns"):
                    out.append(w)
                depth -= w.count("]")
            found = tuple(out)
    return DEFAULT_SOURCES if found is None else found


class _Watched:
    """A file's text, read again when its inode, size or mtime change.

    Looked at (stat) at most every ``recheck`` seconds: a session asks
    several times within one.
    """

    def __init__(self, path: str, recheck: float) -> None:
        self.path = path
        self.recheck = recheck
        self.checked = -1e9  # monotonic time of the last stat
        self.key: tuple[int, int, int] | None = None
        self.text = ""

    def read(self) -> str:
        now = time.monotonic()
        if now - self.checked < self.recheck:
            return self.text
        self.checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            self.key, self.text = None, ""
            return ""
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self.key:
            try:
                with open(self.path, encoding="latin-1") as f:
                    self.text = f.read()
            except OSError:
                self.text = ""
            self.key = key
        return self.text


class NameService:
    """gethostbyaddr / getaddrinfo over /etc/hosts and a resolver, in nsswitch order."""

    def __init__(self, hosts: str = HOSTS, nsswitch: str = NSSWITCH, *,
                 recheck: float = RECHECK) -> None:
        self._hosts = _Watched(hosts, recheck)
        self._nss = _Watched(nsswitch, recheck)
        self._table: tuple[str, HostsTable] = ("", HostsTable(""))
        self._sources: tuple[str, tuple[str, ...]] | None = None

    def sources(self) -> tuple[str, ...]:
        text = self._nss.read()
        if self._sources is None or self._sources[0] is not text:
            self._sources = (text, parse_sources(text) if self._nss.key else DEFAULT_SOURCES)
        return self._sources[1]

    def table(self) -> HostsTable:
        text = self._hosts.read()
        if self._table[0] is not text:
            self._table = (text, HostsTable(text))
        return self._table[1]

    def name_of(self, resolver: DnsLookups, ip: str) -> str | None:
        """The client's name (gethostbyaddr), or None."""
        for source in self.sources():
            name = self.table().name_of(ip) if source == "files" else resolver.ptr(ip)
            if name:
                return name
        return None

    def addresses_of(self, resolver: DnsLookups, name: str, *, ipv6: bool = False) -> list[str]:
        """Addresses of ``name`` (getaddrinfo); TempFail only when DNS failed and nothing was found."""
        failed: TempFail | None = None
        for source in self.sources():
            if source == "files":
                found = self.table().addresses_of(name, ipv6=ipv6)
            else:
                try:
                    found = resolver.addresses(name, ipv6=ipv6)
                except TempFail as e:
                    failed, found = e, []
            if found:
                return found
        if failed is not None:
            raise failed
        return []


# One per process: children inherit the parent's parsed files.
SYSTEM = NameService()
