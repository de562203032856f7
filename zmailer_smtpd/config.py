"""smtpserver.conf: PARAM lines, groups, $-expansion and HELO patterns (protocol.md §2).

API (others code against it)::

    cfg = load_config(path, zenv, ipv6=True)   # path None: $MAILSHARE/smtpserver.conf
    cfg = config_from_bytes(data, zenv)        # the same from bytes (tests)
    cfg.path, cfg.read                         # file name; whether it could be read
    cfg.groups                                 # list[Settings], one per PARAM newgroup (+1)
    cfg.group(i), cfg.last_group()             # Settings (interactive/inetd use the last)
    cfg.patterns                               # list[Pattern] in file order
    cfg.find_pattern(helo)                     # first Pattern matching helo (bytes) or None
    cfg.configured                             # True once any pattern line was read (§2.8)
    cfg.errors, cfg.warnings                   # list[Diag(file, line, message)]
    cfg.bind_keyword_seen                      # any Bind* keyword in the file
    policydb_status(settings) -> (ok, why)     # can a session open the group's policydb?

    Pattern: .pattern bytes (lower-cased), .maxloadavg int (999 = none), .flags str
             (latin-1, verbatim), .line int, .reject bool (flags start with "!"),
             .message bytes | None (the text after "!"), .matches(helo) bool
    BindSpec: .kind "address"|"smtp"|"smtps"|"submit", .family AF_INET/AF_INET6,
             .addr numeric text, .port int (None for "address": the global port), .spec

    s = cfg.last_group()
    s.get("maxsize")        # by canonical keyword (params.PARAMS name); any alias works too
    s.get("noehlo")         # a negation spelling answers the inverted flag
    s.get("binds")          # list[BindSpec] of the group (all Bind* kinds, in file order)
    s.get("bindsmtp")       # only the BindSmtp entries (likewise bindaddress/-smtps/-submit)
    s.get("bindport")       # 0 unless PARAM BindPort (then it beats -p)
    s.get("bindport-set")   # BindPort given with a value other than 0 / 65535
    s.is_set("maxsize")     # given in the file (or through set/from_values)
    s.set("maxsize", 10)    # any spelling; globals change for every group
    s.index                 # the group number
    Settings.from_values({"maxsize": 1000, "noehlo": True})   # for tests

Value types: FLAG bool; INT/ATOI int; STR/EXEC str | None; TEXT/REST bytes | None;
help/hdr220 list[bytes]; policydb tuple[str, str] | None; tarpit
tuple[float, float, float]; deliverby int (-1 off); etrn-cluster /
tracking-cluster list[tuple[str, str, str]]; spf-threshold str | None;
dns-nameservers str | None.  get() of an unknown name raises KeyError.
Global keywords ("G" in params.py) live in one dict shared by every group's
Settings, so they read the same from any group.
"""

from __future__ import annotations

import copy
import fcntl
import os
import re
import socket
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from zmailer_smtpd import params as P
from zmailer_smtpd.strmatch import strmatch
from zmailer_smtpd.zenv import ZEnv

LINE_BUFFER = 1024  # fgets() buffer of readcffile(): 1023 bytes of a line at most
NAME_MAX = 79  # $NAME lookups use at most 79 bytes of the name
_BLANKS = b" \t"


class Diag(NamedTuple):
    """A configuration diagnostic: file, line number (0 = not a line), text."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --------------------------------------------------------------------------
# Bind specifications (lib/zgetbindaddr.c, protocol.md §2.5 and §3.5)

BIND_KINDS = {"bindaddress": "address", "bindsmtp": "smtp", "bindsmtps": "smtps",
              "bindsubmit": "submit"}
DEFAULT_BIND_PORTS = {"smtp": 25, "smtps": 465, "submit": 587}


@dataclass(frozen=True)
class BindSpec:
    """One listener address from a Bind* keyword (or ZENV BINDADDR).

    kind: "address" (BindAddress: the global port, plus 465 with listen-ssmtp),
    "smtp", "smtps" or "submit" (their own port).  port is None for "address".
    """

    kind: str
    family: int  # socket.AF_INET or socket.AF_INET6
    addr: str  # numeric address text ("0.0.0.0", "::", "192.0.2.1")
    port: int | None
    spec: str  # the text as written


def _iface_v4(name: str) -> str | None:
    """IPv4 address of a local interface (SIOCGIFADDR)."""
    if not name or len(name) >= 16:
        return None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("256s", os.fsencode(name)[:15])
        res = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
        return socket.inet_ntoa(res[20:24])
    except OSError:
        return None
    finally:
        s.close()


def _iface_v6(name: str) -> str | None:
    """First IPv6 address of a local interface (/proc/net/if_inet6)."""
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == name:
                    packed = bytes.fromhex(fields[0])
                    return socket.inet_ntop(socket.AF_INET6, packed)
    except (OSError, ValueError):
        return None
    return None


def parse_bind_address(spec: str, family: int) -> str | None:
    """Parse `spec` as an address of `family`; None when it is not one (zgetbindaddr)."""
    low = spec.lower()
    if family == socket.AF_INET6:
        if low == "any6":
            return "::"
        if low[:6] in ("[ipv6 ", "[ipv6:", "[ipv6."):
            body = spec[6:]
            end = body.find("]")
            if end >= 0:
                body = body[:end]
            try:
                return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, body))
            except (OSError, ValueError):
                return None
        if low.startswith("iface:v6:"):
            return _iface_v6(spec[9:])
        if low.startswith("iface:") and not low.startswith("iface:v4:"):
            return _iface_v6(spec[6:])
        return None
    if low == "any":
        return "0.0.0.0"
    if spec.startswith("[") and low[:6] not in ("[ipv6 ", "[ipv6:", "[ipv6."):
        body = spec[1:]
        end = body.find("]")
        if end >= 0:
            body = body[:end]
        try:
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, body))
        except (OSError, ValueError):
            return None
    if low.startswith("iface:v4:"):
        return _iface_v4(spec[9:])
    if low.startswith("iface:") and not low.startswith("iface:v6:"):
        return _iface_v4(spec[6:])
    return None


def _looks_ipv6(spec: str) -> bool:
    low = spec.lower()
    return low == "any6" or low[:6] in ("[ipv6 ", "[ipv6:", "[ipv6.") or low.startswith("iface:v6:")


def parse_bind(kind: str, spec: str, port: int | None, ipv6: bool) -> list[BindSpec]:
    """Every entry one Bind* spec yields: tried as IPv6 (when in use), then as IPv4."""
    out: list[BindSpec] = []
    families = ([socket.AF_INET6] if ipv6 else []) + [socket.AF_INET]
    for fam in families:
        addr = parse_bind_address(spec, fam)
        if addr is not None:
            out.append(BindSpec(kind, fam, addr, port, spec))
    return out


# --------------------------------------------------------------------------
# Settings


def _coerce(param: P.Param, value: Any) -> Any:
    """Bring a from_values() value into the table's type."""
    syn = param.syntax
    if syn == P.FLAG:
        return bool(value)
    if syn in (P.INT, P.ATOI, P.DELIVERBY):
        return int(value)
    if syn in (P.TEXT, P.REST):
        return value.encode("latin-1") if isinstance(value, str) else value
    if syn == P.RESTLIST:
        return [v.encode("latin-1") if isinstance(v, str) else bytes(v) for v in value]
    if syn == P.TARPIT:
        a, b, c = value
        return (float(a), float(b), float(c))
    if syn == P.POLICYDB:
        return None if value is None else (str(value[0]), str(value[1]))
    if syn == P.CLUSTER:
        return [tuple(str(x) for x in v) for v in value]
    if syn == P.WORDS and isinstance(value, list | tuple):
        return " ".join(str(x) for x in value)
    return value


def _default(param: P.Param) -> Any:
    if param.syntax in (P.RESTLIST, P.CLUSTER):
        return list(param.default)
    return param.default


# spelling -> (canonical name, global?, negation?) of the plain settings get() has
# resolved; sessions ask ~30 of them each, always by the same few spellings
_PLAIN: dict[str, tuple[str, bool, bool]] = {}


class Settings:
    """The PARAM values one session sees: its group's values plus the globals."""

    def __init__(self, globals_: dict[str, Any], values: dict[str, Any], index: int = 0,
                 explicit: set[str] | None = None, gexplicit: set[str] | None = None) -> None:
        self._globals = globals_
        self._values = values
        self.index = index
        self._explicit = explicit if explicit is not None else set()  # group keys given
        self._gexplicit = gexplicit if gexplicit is not None else set()  # shared, globals

    @staticmethod
    def default_dicts() -> tuple[dict[str, Any], dict[str, Any]]:
        """Fresh (globals, group values) holding the table's defaults."""
        g: dict[str, Any] = {"bindport-set": False}
        v: dict[str, Any] = {"binds": []}
        for p in P.PARAMS:
            if p.syntax in (P.NEWGROUP, P.BIND):
                continue
            (g if p.scope == P.GLOBAL else v)[p.name] = _default(p)
        return g, v

    def _mark(self, param: P.Param) -> None:
        (self._gexplicit if param.scope == P.GLOBAL else self._explicit).add(param.name)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> Settings:
        """Defaults overridden by `values` (any keyword spelling; negations invert)."""
        g, v = cls.default_dicts()
        s = cls(g, v)
        for name, value in (values or {}).items():
            s.set(name, value)
        return s

    def set(self, name: str, value: Any) -> None:
        """Set a value by any spelling (tests and config.py use this)."""
        key = name.lower()
        if key == "binds":
            self._values["binds"] = list(value)
            self._explicit.add("binds")
            return
        if key == "bindport-set":
            self._globals["bindport-set"] = bool(value)
            return
        found = P.lookup(key)
        if found is None:
            raise KeyError(name)
        param, negated = found
        if param.syntax == P.BIND:
            raise KeyError(f"{name}: set 'binds' instead")
        val = _coerce(param, value)
        if negated:
            val = not val
        (self._globals if param.scope == P.GLOBAL else self._values)[param.name] = val
        self._mark(param)

    def get(self, name: str) -> Any:
        """The value of a setting by canonical name or any spelling (KeyError if none)."""
        plain = _PLAIN.get(name)
        if plain is not None:  # a spelling seen before: straight to the live dict
            canon, glob, negated = plain
            val = (self._globals if glob else self._values)[canon]
            return (not val) if negated else val
        key = name.lower()
        if key == "binds":
            return list(self._values["binds"])
        if key == "bindport-set":
            return bool(self._globals["bindport-set"])
        found = P.lookup(key)
        if found is None:
            raise KeyError(name)
        param, negated = found
        if param.syntax == P.BIND:
            kind = BIND_KINDS[param.name]
            return [b for b in self._values["binds"] if b.kind == kind]
        if param.syntax == P.NEWGROUP:
            return self.index
        glob = param.scope == P.GLOBAL
        val = (self._globals if glob else self._values)[param.name]
        _PLAIN[name] = (param.name, glob, negated)
        return (not val) if negated else val

    __getitem__ = get

    def is_set(self, name: str) -> bool:
        """Whether the setting was given (in the file or through from_values/set)."""
        if name.lower() == "binds":
            return bool(self._values["binds"])
        found = P.lookup(name)
        if found is None:
            return False
        param = found[0]
        return param.name in (self._gexplicit if param.scope == P.GLOBAL else self._explicit)

    def copy_group(self, index: int) -> Settings:
        """A new group made from this one (protocol.md §2.4): same globals, binds emptied."""
        values = copy.deepcopy(self._values)
        values["binds"] = []
        return Settings(self._globals, values, index, set(self._explicit), self._gexplicit)

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every (canonical name, value), globals included (for --check-config)."""
        for p in P.PARAMS:
            if p.syntax == P.NEWGROUP:
                continue
            yield p.name, self.get(p.name)

    def __repr__(self) -> str:
        return f"<Settings group {self.index}>"


# --------------------------------------------------------------------------
# Tokens and $-expansion (protocol.md §2.3)


def _skip_blanks(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in _BLANKS:
        i += 1
    return i


def _token_end(buf: bytes, i: int) -> int:
    """End of the token starting at i (quoted: at the closing quote or end)."""
    if i < len(buf) and buf[i] in b"\"'":
        end = buf.find(buf[i:i + 1], i + 1)
        return len(buf) if end < 0 else end
    while i < len(buf) and buf[i] not in _BLANKS:
        i += 1
    return i


def _param_token(buf: bytes, i: int) -> tuple[bytes | None, int]:
    """One parameter: (value or None when absent, index after its separator byte)."""
    i = _skip_blanks(buf, i)
    if i >= len(buf):
        return None, i
    end = _token_end(buf, i)
    start = i + 1 if buf[i] in b"\"'" else i  # a quoted token loses its opening quote
    value = buf[start:end]
    return value, min(end + 1, len(buf))


_NAME_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def dollar_expand(text: bytes, zenv: ZEnv, cap: int = LINE_BUFFER - 1) -> bytes:
    """Single-pass $-expansion with ZENV file values, capped at `cap` bytes (dollarexpand)."""
    out = bytearray()
    tail = text[:cap]
    i = 0
    while i < len(tail):
        c = tail[i]
        if c != 0x24:  # '$'
            out.append(c)
            i += 1
            continue
        start = i
        i += 1
        if i < len(tail) and tail[i] == 0x24:  # "$$" -> "$"
            out.append(0x24)
            i += 1
            continue
        if i < len(tail) and tail[i] in b"{(":
            close = b"}" if tail[i] == ord("{") else b")"
            end = tail.find(close, i + 1)
            if end < 0:
                name = tail[i + 1:]
                i = len(tail)
            else:
                name = tail[i + 1:end]
                i = end + 1
        else:
            j = i
            while j < len(tail) and tail[j] in _NAME_BYTES:
                j += 1
            name = tail[i:j]
            i = j
        value = zenv.file_bytes(name[:NAME_MAX]) if name else None
        if value is None:
            out += tail[start:i]  # empty name or unknown variable: left unchanged
            continue
        out += value
        rest = tail[i:]
        if len(out) >= cap:
            del out[cap:]
            return bytes(out)
        tail = rest[:cap - len(out)]
        i = 0
    return bytes(out[:cap])


# --------------------------------------------------------------------------
# Pattern lines (protocol.md §2.6)


@dataclass(frozen=True)
class Pattern:
    """One HELO/EHLO pattern line."""

    pattern: bytes  # lower-cased; may keep a quote or a newline (then it never matches)
    maxloadavg: int  # 999 when absent
    flags: str  # style letters, verbatim (latin-1); starts with "!" for a rejection
    line: int

    @property
    def reject(self) -> bool:
        """Whether a match rejects the greeting."""
        return self.flags.startswith("!")

    @property
    def message(self) -> bytes | None:
        """The rejection text after "!", or None for a style line."""
        return self.flags[1:].encode("latin-1") if self.reject else None

    def matches(self, helo: bytes) -> bool:
        """Whether `helo` (lower-cased here) matches this pattern."""
        return strmatch(self.pattern, helo.lower())


def parse_pattern_line(line: bytes, lineno: int) -> Pattern:
    """Parse a raw pattern line (newline still present)."""
    end = _token_end(line, 0)
    pattern = line[:end].lower()
    maxload = 999
    flags = b""
    if end < len(line):
        i = _skip_blanks(line, end + 1)
        if i < len(line) and 0x30 <= line[i] <= 0x39:
            j = i
            while j < len(line) and 0x30 <= line[j] <= 0x39:
                j += 1
            maxload = max(int(line[i:j]), 2)
            i = _skip_blanks(line, j)
        flags = line[i:].split(b"\n", 1)[0]
    return Pattern(pattern, maxload, flags.decode("latin-1"), lineno)


# --------------------------------------------------------------------------
# Number parsing as C does it

_INT_RE = re.compile(rb"[ \t\n\v\f\r]*([-+]?[0-9]+)")
_FLOAT_RE = re.compile(rb"[ \t\n\v\f\r]*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")


def c_int(text: bytes) -> int | None:
    """sscanf("%d"): the leading integer, None when there is none."""
    m = _INT_RE.match(text)
    return int(m.group(1)) if m else None


def c_atoi(text: bytes) -> int:
    """atoi(): the leading integer, 0 when there is none."""
    v = c_int(text)
    return 0 if v is None else v


def c_float(text: bytes) -> float | None:
    """sscanf("%f"): the leading number, None when there is none."""
    m = _FLOAT_RE.match(text)
    return float(m.group(1)) if m else None


# --------------------------------------------------------------------------
# The file


REQUIRED_ARGS = {P.FLAG: 0, P.DELIVERBY: 0, P.NEWGROUP: 0, P.POLICYDB: 2, P.TARPIT: 3,
                 P.CLUSTER: 3}
TLS_PAIRS = {"tls-cert-file": "tls-key-file", "tls-key-file": "tls-cert-file",
             "tls-dcert-file": "tls-dkey-file", "tls-dkey-file": "tls-dcert-file"}


def bad_keyword_message(file: str, line: int, keyword: str) -> str:
    """The 3.0.1 note for an unknown keyword or missing parameters (§2.7)."""
    return f"Cfgfile '{file}' line {line} has bad PARAM keyword/missing parameters: '{keyword}'"


class Config:
    """The whole smtpserver.conf: groups of Settings, pattern lines, diagnostics."""

    def __init__(self, path: str, zenv: ZEnv, *, ipv6: bool = True) -> None:
        self.path = path
        self.zenv = zenv
        self.ipv6 = ipv6
        self.read = False
        g, v = Settings.default_dicts()
        self.groups: list[Settings] = [Settings(g, v)]
        self.patterns: list[Pattern] = []
        self.configured = False
        self.errors: list[Diag] = []
        self.warnings: list[Diag] = []
        self.bind_keyword_seen = False

    # -- access --------------------------------------------------------------
    def group(self, i: int) -> Settings:
        """Settings of group i (0 = the default group)."""
        return self.groups[i]

    def last_group(self) -> Settings:
        """The group interactive and inetd sessions use (§2.4)."""
        return self.groups[-1]

    def find_pattern(self, helo: bytes) -> Pattern | None:
        """The first pattern line matching the lower-cased `helo` (findcf)."""
        low = helo.lower()
        for pat in self.patterns:
            if strmatch(pat.pattern, low):
                return pat
        return None

    # -- reading -------------------------------------------------------------
    def _error(self, line: int, message: str) -> None:
        self.errors.append(Diag(self.path, line, message))

    def _warn(self, line: int, message: str) -> None:
        self.warnings.append(Diag(self.path, line, message))

    def parse_bytes(self, data: bytes) -> None:
        """Read the file content (exposed for tests)."""
        self.read = True
        lineno = 0
        pos = 0
        n = len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            raw = data[pos:] if nl < 0 else data[pos:nl + 1]
            pos = n if nl < 0 else nl + 1
            lineno += 1
            if len(raw) > LINE_BUFFER - 1:
                raw = raw[:LINE_BUFFER - 1]  # fgets(): the rest of the line is discarded
            if not raw:
                continue
            raw = raw.split(b"\0", 1)[0]  # a C string ends at NUL
            if raw and (raw[0] == 0x23 or raw[:1].isspace()):
                continue
            if raw.startswith(b"PARAM"):
                self._param_line(raw, lineno)
            else:
                self.patterns.append(parse_pattern_line(raw, lineno))
                self.configured = True

    def _param_line(self, raw: bytes, lineno: int) -> None:
        line = raw.split(b"\n", 1)[0]
        i = _token_end(line, 0)  # the "PARAM" marker token
        i = _skip_blanks(line, i)
        end = _token_end(line, i)
        kstart = i + 1 if i < len(line) and line[i] in b"\"'" else i
        keyword_b = line[kstart:end]
        rest_at = min(end + 1, len(line))
        keyword = keyword_b.decode("latin-1")
        found = P.lookup(keyword)
        if found is None:
            self._error(lineno, bad_keyword_message(self.path, lineno, keyword))
            return
        param, negated = found
        if keyword.lower() in P.REST_OF_LINE:
            self._apply(param, negated, keyword, [line[rest_at:]], lineno)
            return
        expanded = dollar_expand(line[rest_at:], self.zenv, LINE_BUFFER - 1 - rest_at)
        args: list[bytes] = []
        j = 0
        for _ in range(3):
            tok, j = _param_token(expanded, j)
            if tok is None:
                break
            args.append(tok)
        need = REQUIRED_ARGS.get(param.syntax, 1)
        if len(args) < need:
            self._error(lineno, bad_keyword_message(self.path, lineno, keyword))
            return
        self._apply(param, negated, keyword, args, lineno)

    def _target(self, param: P.Param) -> dict[str, Any]:
        s = self.groups[-1]
        return s._globals if param.scope == P.GLOBAL else s._values

    def _apply(self, param: P.Param, negated: bool, keyword: str, args: list[bytes],
               lineno: int) -> None:
        syn = param.syntax
        settings = self.groups[-1]
        target = self._target(param)
        name = param.name
        arg = args[0] if args else b""
        sarg = os.fsdecode(arg)
        if not param.implemented:
            why = f" ({param.note})" if param.note else ""
            self._warn(lineno, f"Cfgfile '{self.path}' line {lineno} PARAM keyword '{keyword}'"
                               f" is accepted but has no effect{why}")
        if syn == P.NEWGROUP:
            self.groups.append(self.groups[0].copy_group(len(self.groups)))
            return
        if syn == P.FLAG:
            target[name] = not negated
        elif syn in (P.INT, P.ATOI):
            v = c_int(arg)
            if v is None:
                if syn == P.ATOI:
                    v = 0
                elif param.minimum is not None and name == "rcptlimitcount":
                    v = target[name]  # sscanf failed: unchanged, clamp still applies
                else:
                    return
            if param.minimum is not None and v < param.minimum:
                v = param.minimum
            if param.maximum is not None and v > param.maximum:
                v = param.maximum
            target[name] = v
            if name == "bindport":
                settings._globals["bindport-set"] = v not in (0, 0xFFFF)
        elif syn == P.STR:
            target[name] = sarg
            pair = TLS_PAIRS.get(name)
            if pair is not None and target.get(pair) is None:
                target[pair] = sarg
        elif syn == P.TEXT:
            target[name] = arg
        elif syn == P.WORDS:
            target[name] = " ".join(os.fsdecode(a) for a in args)
        elif syn == P.REST:
            target[name] = arg
        elif syn == P.RESTLIST:
            lines = target[name]
            if param.maximum is not None and len(lines) >= param.maximum:
                lines[-1] = arg  # further lines overwrite the last (3.0.1)
            else:
                lines.append(arg)
        elif syn == P.EXEC:
            if os.access(sarg, os.X_OK) and not os.path.isdir(sarg):
                target[name] = sarg
            else:
                self._warn(lineno, f"Cfgfile '{self.path}' line {lineno} param {keyword}:"
                                   f" '{sarg}' is not executable; ignored")
                return
        elif syn == P.POLICYDB:
            target[name] = (sarg, os.fsdecode(args[1]))
        elif syn == P.TARPIT:
            old = target[name]
            vals = [c_float(a) for a in args[:3]]
            target[name] = tuple(o if v is None else v for o, v in zip(old, vals, strict=True))
        elif syn == P.DELIVERBY:
            target[name] = c_atoi(arg) if args else 0
        elif syn == P.BIND:
            self.bind_keyword_seen = True
            kind = BIND_KINDS[name]
            port: int | None = None
            if kind != "address":
                port = DEFAULT_BIND_PORTS[kind]
                if len(args) > 1:
                    p = c_atoi(args[1]) & 0xFFFF
                    port = p or port
            entries = parse_bind(kind, sarg, port, self.ipv6)
            if entries:
                target["binds"].extend(entries)
            elif self.ipv6 or not _looks_ipv6(sarg):
                self._error(lineno, bad_keyword_message(self.path, lineno, keyword))
                return
        elif syn == P.CLUSTER:
            lst = target[name]
            if param.maximum is None or len(lst) < param.maximum:
                lst.append(tuple(os.fsdecode(a) for a in args[:3]))
        elif syn == P.ENUM:
            if sarg.lower() in param.choices:
                target[name] = sarg.lower()
            else:
                self._error(lineno, f"Cfgfile '{self.path}' line {lineno} param {keyword}"
                                    f" has bad arg: '{sarg}'")
                target[name] = None
                return
        elif syn == P.BOOLWORD:
            if sarg.lower() in ("true", "false"):
                target[name] = sarg.lower() == "true"
            else:
                self._error(lineno, f"Cfgfile '{self.path}' line {lineno} param {keyword}"
                                    f" has bad arg: '{sarg}'")
                return
        else:  # pragma: no cover - a table entry without a parser
            raise AssertionError(f"no parser for {syn}")
        settings._mark(param)

    def apply_bindaddr(self) -> None:
        """ZENV BINDADDR as a BindAddress of the last group when no Bind* keyword was seen."""
        if not self.read or self.bind_keyword_seen:
            return
        spec = self.zenv.file_value("BINDADDR")
        if not spec:
            return
        entries = parse_bind("address", spec, None, self.ipv6)
        if entries:
            self.groups[-1]._values["binds"].extend(entries)
        elif self.ipv6 or not _looks_ipv6(spec):
            self.warnings.append(Diag(self.zenv.path, 0,
                                      f"BINDADDR '{spec}' is not a valid bind address; ignored"))


def default_config_path(zenv: ZEnv, progname: str = "smtpserver") -> str:
    """$MAILSHARE/<basename of argv[0]>.conf (protocol.md §2.1)."""
    mailshare = zenv.get("MAILSHARE") or ""
    return f"{mailshare}/{os.path.basename(progname)}.conf"


def load_config(path: str | None, zenv: ZEnv, *, ipv6: bool = True,
                progname: str = "smtpserver") -> Config:
    """Read smtpserver.conf; a missing or unreadable file gives an empty configuration."""
    if path is None:
        path = default_config_path(zenv, progname)
    cfg = Config(path, zenv, ipv6=ipv6)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return cfg
    cfg.parse_bytes(data)
    cfg.apply_bindaddr()
    return cfg


def config_from_bytes(data: bytes, zenv: ZEnv, *, path: str = "<memory>",
                      ipv6: bool = True) -> Config:
    """A Config from literal file content (tests)."""
    cfg = Config(path, zenv, ipv6=ipv6)
    cfg.parse_bytes(data)
    cfg.apply_bindaddr()
    return cfg


# --------------------------------------------------------------------------
# Policy database usability (for start-up and --check-config; policy.md §3.1)

def policydb_status(settings: Settings) -> tuple[bool, str]:
    """Whether the group's PARAM policydb names a database a session can open, and why not."""
    pdb = settings.get("policydb")
    if pdb is None:
        return False, ("no PARAM policydb: network sessions will be refused with"
                       " '400 4.7.0 Policy database problem' (fail closed)")
    dbtype, path = pdb
    try:
        from zmailer_smtpd.policy import db as policy_db
    except ImportError as e:  # pragma: no cover - bsddb3 is a dependency
        return False, f"the policy database module cannot be loaded: {e}"
    if dbtype.lower() not in policy_db.DBTYPES:
        return False, (f"PARAM policydb type '{dbtype}' is not supported (Configuration bug):"
                       " network sessions will be refused with 400")
    fname = policy_db.db_filename(dbtype, path, reading=True)
    try:
        handle, status = policy_db.open_db(dbtype, path)
    except Exception as e:  # noqa: BLE001 - any failure means "unusable"
        return False, f"policy database {fname} cannot be opened: {e}"
    if handle is None:
        return False, (f"policy database {fname} cannot be opened (db Open failure, status"
                       f" {status}): network sessions will be refused with 400")
    handle.close()
    return True, f"policy database {fname} opens"
