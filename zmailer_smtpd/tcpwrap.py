"""TCP wrappers: hosts.allow / hosts.deny (`PARAM use-tcp-wrapper`; §6.3).

Why built in: Python has no libwrap binding (decision Q17 -> a parser of the
patterns hosts_access(5) documents).  Semantics, as the manual says: access
is granted when a (daemon, client) pair matches a rule in hosts.allow; else
denied when it matches a rule in hosts.deny; else granted.  A missing file
counts as empty; one that exists but cannot be read refuses (fail safe).  Service name `smtp-receiver`.

Supported: `daemon_list : client_list [: option ...]`, backslash
continuation, `#` comments, lists separated by blanks/commas, EXCEPT
(nested), ALL, LOCAL, KNOWN, UNKNOWN, PARANOID (matches when the name is
unknown), `.suffix`, `prefix.`, `n.n.n.n/m.m.m.m`, `n.n.n.n/len`,
`[v6addr]/len`, `*`/`?` wildcards, `/file` pattern lists, `user@host`
clients (user = the ident value when given), `daemon@host` servers.  The
options field honours `allow` and `deny` (hosts_options(5)); `spawn`,
`twist` and every other option are ignored -- no shell, ever.  NIS netgroups
(`@group`) never match.

Session call sequence (network sessions, `use-tcp-wrapper`, after ident /
whoson, implicit TLS and policy start-up, before the greeting):

    if not tcpwrap.allowed("smtp-receiver", peer_addr, rhostname_or_None):
        syslog WARNING "refusing connection from <rhostname>:<rport>/<ident>"
        reply 421 "<me> ZMailer Server <version> WILL NOT TALK TO YOU at <date>"
        (no ESC), pause 2 s, end the session.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Iterator

DAEMON = "smtp-receiver"
HOSTS_ALLOW = "/etc/hosts.allow"
HOSTS_DENY = "/etc/hosts.deny"
# §4.2 step 6: the refusal (no ESC): myhostname, VersionNumb, RFC 822 date.
REFUSAL = b"%s ZMailer Server %s WILL NOT TALK TO YOU at %s"


class _Client:
    def __init__(self, addr: str, name: str | None, user: str | None, server_addr: str | None):
        self.addr = addr.strip("[]").lower()
        if self.addr.startswith("ipv6:"):
            self.addr = self.addr[5:]
        if self.addr.startswith("::ffff:") and "." in self.addr:
            # An IPv4 client on an IPv6 socket is matched as IPv4, so that
            # hosts.deny rules written for it cannot be bypassed.
            self.addr = self.addr[7:]
        self.name = name.lower().rstrip(".") if name and not name.startswith("[") else None
        self.user = user
        self.server_addr = server_addr


def _rules(path: str) -> Iterator[tuple[str, str, str]]:
    """Rules of one table; a missing file is empty, an unreadable one raises OSError."""
    try:
        with open(path, encoding="latin-1") as f:
            text = f.read()
    except FileNotFoundError:
        return
    joined = text.replace("\\\n", "")
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        # v6 client addresses live inside [...]; rejoin colons split there.
        fields: list[str] = []
        buf = ""
        depth = 0
        for p in parts:
            buf = p if not buf and depth == 0 else buf + ":" + p
            depth = buf.count("[") - buf.count("]")
            if depth <= 0:
                fields.append(buf)
                buf = ""
                depth = 0
        if buf:
            fields.append(buf)
        if len(fields) < 2:
            continue
        yield fields[0], fields[1], ":".join(fields[2:])


def _tokens(lst: str) -> list[str]:
    return [t for t in lst.replace(",", " ").split() if t]


def _list_match(tokens: list[str], match_one: Callable[[str], bool]) -> bool:
    """hosts_access list semantics with EXCEPT."""
    for i, tok in enumerate(tokens):
        if tok.upper() == "EXCEPT":
            return False
        if match_one(tok):
            rest = tokens[i + 1 :]
            while rest and rest[0].upper() != "EXCEPT":
                rest = rest[1:]
            if rest:
                return not _list_match(rest[1:], match_one)
            return True
    return False


def _string_match(tok: str, s: str) -> bool:
    t = tok.lower()
    s = s.lower()
    if t.startswith("."):
        return s.endswith(t)
    if t.endswith("."):
        return s.startswith(t)
    if t.upper() == "ALL":
        return True
    if "*" in t or "?" in t:
        return fnmatch.fnmatchcase(s, t)
    return s == t


def _masked(tok: str, addr: str) -> bool:
    net, _, mask = tok.partition("/")
    net = net.strip("[]")
    try:
        a = ipaddress.ip_address(addr)
        n = ipaddress.ip_network(f"{net}/{mask}", strict=False)
        return a.version == n.version and a in n
    except ValueError:
        return False


def _host_match(tok: str, c: _Client, depth: int = 0) -> bool:
    up = tok.upper()
    if tok.startswith("@"):
        return False  # NIS netgroup: not supported
    if tok.startswith("/") and depth < 4:
        try:
            with open(tok, encoding="latin-1") as f:
                return any(_host_match(t, c, depth + 1) for t in _tokens(f.read()))
        except OSError:
            return False
    if up == "ALL":
        return True
    if up == "KNOWN":
        return c.name is not None and bool(c.addr)
    if up == "UNKNOWN":
        return c.name is None or not c.addr
    if up == "LOCAL":
        return c.name is not None and "." not in c.name
    if up == "PARANOID":
        return c.name is None
    if "/" in tok:
        return _masked(tok, c.addr)
    if tok.startswith("[") and tok.endswith("]"):
        return _string_match(tok[1:-1], c.addr)
    if c.name is not None and _string_match(tok, c.name):
        return True
    return bool(c.addr) and _string_match(tok, c.addr)


def _client_match(tok: str, c: _Client) -> bool:
    if "@" in tok[1:]:
        user, _, host = tok.rpartition("@")
        u = c.user
        up = user.upper()
        if up == "ALL":
            ok = True
        elif up == "KNOWN":
            ok = u is not None
        elif up == "UNKNOWN":
            ok = u is None
        else:
            ok = u is not None and _string_match(user, u)
        return ok and _host_match(host, c)
    return _host_match(tok, c)


def _daemon_match(tok: str, daemon: str, c: _Client) -> bool:
    if "@" in tok:
        d, _, host = tok.rpartition("@")
        if c.server_addr is None:
            return False
        srv = _Client(c.server_addr, None, None, None)
        return _string_match(d, daemon) and _host_match(host, srv)
    return _string_match(tok, daemon)


def _options_verdict(opts: str) -> bool | None:
    for o in opts.split(":"):
        w = o.strip().lower()
        if w == "allow":
            return True
        if w == "deny":
            return False
    return None


def _table_match(path: str, daemon: str, c: _Client) -> tuple[bool, bool | None]:
    for dlist, clist, opts in _rules(path):
        if _list_match(_tokens(dlist), lambda t: _daemon_match(t, daemon, c)) and _list_match(
            _tokens(clist), lambda t: _client_match(t, c)
        ):
            return True, _options_verdict(opts)
    return False, None


def allowed(
    daemon: str,
    client_addr: str,
    client_name: str | None = None,
    allow_file: str = HOSTS_ALLOW,
    deny_file: str = HOSTS_DENY,
    client_user: str | None = None,
    server_addr: str | None = None,
) -> bool:
    """hosts_access(): may `client_addr` (reverse name `client_name`) talk to `daemon`?

    `client_name` is None when reverse DNS failed (the name is then unknown);
    pass a name only when it is forward-confirmed, as libwrap would.
    """
    c = _Client(client_addr, client_name, client_user, server_addr)
    try:
        hit, opt = _table_match(allow_file, daemon, c)
        if hit:
            return True if opt is None else opt
        hit, opt = _table_match(deny_file, daemon, c)
    except OSError:
        return False  # fail safe: a table that exists but cannot be read refuses
    if hit:
        return False if opt is None else opt
    return True
