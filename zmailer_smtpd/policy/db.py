"""The compiled policy database: key/value bytes (policy.md §3) and bsddb3 I/O.

Keys and values are byte-identical to ZMailer 3.0.1's ``makedb -p`` so that a
database written by the C tools on the same libdb is read by us and ours by
them (spec/README.md "Policy").
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Callable, Iterator

# Key types (first byte after the length byte).
K_IPV4 = 1
K_IPV6 = 2
K_TAG = 3
K_DOMAIN = 4
K_USER = 5

# Attribute codes (include/policy.h) and their debug names (policy.md §2.3).
P_A_ALIAS = 1
ATTR_NAMES: dict[int, str] = {
    1: "alias",
    2: "rejectnet",
    3: "freezenet",
    4: "rejectsource",
    5: "freezesource",
    6: "relaycustomer",
    7: "relaycustnet",
    8: "relaytarget",
    9: "acceptifmx",
    10: "acceptifdns",
    11: "senderokwithdns",
    12: "acceptbutfreeze",
    13: "sendernorelay",
    14: "test-dns-rbl",
    15: "message",
    16: "localdomain",
    17: "maxinsize",
    18: "maxoutsize",
    19: "fulltrustnet",
    20: "trustrecipients",
    21: "trust-whoson",
    22: "rcpt-dns-rbl",
    23: "test-rcpt-dns-rbl",
    24: "warn-rcpt-dns-rbl",
    25: "filtering",
    26: "maxsameipsource",
    27: "spf",
    28: "ratelimitmsgs",
}
# Source keywords accepted by makedb (case-sensitive).  trust-whoson is only
# accepted by whoson builds; we accept it (whoson is an optional feature).
SOURCE_KEYWORDS: dict[bytes, int] = {
    b"=": 1,
    b"rejectnet": 2,
    b"freezenet": 3,
    b"rejectsource": 4,
    b"freezesource": 5,
    b"relaycustomer": 6,
    b"relaycustnet": 7,
    b"relaytarget": 8,
    b"acceptifmx": 9,
    b"acceptifdns": 10,
    b"senderokwithdns": 11,
    b"freeze": 12,
    b"sendernorelay": 13,
    b"test-dns-rbl": 14,
    b"message": 15,
    b"localdomain": 16,
    b"maxinsize": 17,
    b"maxoutsize": 18,
    b"fulltrustnet": 19,
    b"trustrecipients": 20,
    b"trust-whoson": 21,
    b"rcpt-dns-rbl": 22,
    b"test-rcpt-dns-rbl": 23,
    b"filtering": 25,
    b"maxsameipsource": 26,
    b"spf": 27,
    b"ratelimitmsgs": 28,
}

_UPPER = bytes(range(65, 91))
_LOWER = bytes(range(97, 123))
_LOWER_TABLE = bytes.maketrans(_UPPER, _LOWER)


def lower(b: bytes) -> bytes:
    """ASCII-only lowercase (lib/strlower.c): bytes >= 0x80 are unchanged."""
    return b.translate(_LOWER_TABLE)


class KeyError_(ValueError):
    """A source key makedb refuses; ``rc`` is parsepolicykey's return code."""

    def __init__(self, rc: int) -> None:
        super().__init__(f"bad policykey, rc = {rc}")
        self.rc = rc


def ip_key(packed: bytes, width: int) -> bytes:
    """IP key with host bits beyond ``width`` cleared (§3.2)."""
    n = len(packed)
    val = int.from_bytes(packed, "big")
    bits = n * 8
    mask = ((1 << bits) - 1) ^ ((1 << (bits - width)) - 1) if width else 0
    masked = (val & mask).to_bytes(n, "big")
    if n == 4:
        return bytes([7, K_IPV4]) + masked + bytes([width])
    return bytes([19, K_IPV6]) + masked + bytes([width])


_WIDTH = tuple(bytes((w,)) for w in range(129))


@functools.lru_cache(maxsize=256)
def ip_walk(packed: bytes) -> tuple[bytes, ...]:
    """``ip_key(packed, w)`` for w from the full width down to 0 (the §4.3 walk).

    Built once per client address: a session walks it at connect time, and
    the same clients come back.
    """
    n = len(packed)
    bits = n * 8
    head = bytes([7, K_IPV4]) if n == 4 else bytes([19, K_IPV6])
    val = int.from_bytes(packed, "big")
    return tuple(head + ((val >> s) << s).to_bytes(n, "big") + _WIDTH[bits - s]
                 for s in range(bits + 1))


def string_key(ktype: int, s: bytes) -> bytes:
    """TAG/DOMAIN/USER key: length byte, type, string, NUL."""
    if len(s) > 252:
        raise KeyError_(-2)
    return bytes([len(s) + 3, ktype]) + s + b"\0"


def _atoi(b: bytes) -> int:
    """C atoi: optional blanks and sign, leading digits, else 0."""
    s = b.lstrip(b" \t\n\v\f\r")
    sign = 1
    if s[:1] in (b"+", b"-"):
        sign = -1 if s[:1] == b"-" else 1
        s = s[1:]
    digits = b""
    for c in s:
        if 48 <= c <= 57:
            digits += bytes([c])
        else:
            break
    return sign * int(digits) if digits else 0


def parse_key(raw: bytes) -> bytes:
    """Classify and encode a source key (readpolicy.c parsepolicykey, §2.2)."""
    k = lower(raw)
    if b"/" in k:
        left, _, right = k.partition(b"/")
        if left.startswith(b"["):
            if b"]" not in left:
                raise KeyError_(-1)
            left = left[1 : left.index(b"]")]
            if left.startswith(b"ipv6."):
                left = left[5:]
            if left.startswith(b"ipv6:"):
                left = left[5:]
        width = _atoi(right)
        if b":" in left:
            try:
                packed = ipaddress.IPv6Address(left.decode("ascii")).packed
            except (ValueError, UnicodeDecodeError):
                raise KeyError_(-2) from None
            if not 0 <= width <= 128:
                raise KeyError_(-3)
            return ip_key(packed, width)
        try:
            text = left.decode("ascii")
            parts = text.split(".")
            if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
                raise ValueError
            packed = ipaddress.IPv4Address(text).packed
        except (ValueError, UnicodeDecodeError):
            raise KeyError_(-4) from None
        if not 0 <= width <= 32:
            raise KeyError_(-5)
        return ip_key(packed, width)
    if b"@" in k:
        return string_key(K_USER, k)
    if k.startswith(b"_"):
        return string_key(K_TAG, k)
    return string_key(K_DOMAIN, k)


def encode_attr(code: int, value: bytes) -> bytes:
    """One ``[len][code][value][00]`` record (§3.3)."""
    return bytes([len(value) + 3, code]) + value + b"\0"


def iter_attrs(value: bytes) -> Iterator[tuple[int, bytes]]:
    """Walk a value's records as the runtime reader does (§3.6)."""
    i = 0
    n = len(value)
    while n - i > 3:
        ln = value[i]
        if ln < 3:
            return
        code = value[i + 1]
        text = value[i + 2 : i + ln - 1]
        yield code, text
        i += ln


def key_debug(key: bytes) -> str:
    """Key as the -d trace prints it (§10.3), e.g. ``7/IPv4/192.0.2.0/24``."""
    t = key[1] if len(key) > 1 else 0
    if t == K_IPV4:
        return f"{key[0]}/IPv4/{'.'.join(str(b) for b in key[2:6])}/{key[6]}"
    if t == K_IPV6:
        groups = ":".join(key[2 + i : 4 + i].hex() for i in range(0, 16, 2))
        return f"{key[0]}/IPv6/{groups}/{key[18]}"
    name = {K_TAG: "TAG", K_DOMAIN: "DOMAIN", K_USER: "USER"}.get(t, "?")
    s = key[2:-1].decode("latin-1")
    return f"{key[0]}/{name}/'{s}'"


def key_dump(key: bytes) -> str:
    """Key as ``dblook -policydump`` prints it (§3.5)."""
    t = key[1]
    if t == K_IPV4:
        return f"[{'.'.join(str(b) for b in key[2:6])}]/{key[6]}"
    if t == K_IPV6:
        groups = ":".join(key[2 + i : 4 + i].hex() for i in range(0, 16, 2))
        return f"[ipv6.{groups}]/{key[18]}"
    return key[2:-1].decode("latin-1")


def dump_line(key: bytes, value: bytes) -> bytes:
    """One record as ``dblook -policydump`` prints it (§3.5), without the newline."""
    out = key_dump(key).encode("latin-1") + b"\t"
    for code, text in iter_attrs(value):
        name = b"=" if code == 1 else ATTR_NAMES.get(code, str(code)).encode()
        out += b" " + name + b' "' + text + b'"'
    return out


# ---------------------------------------------------------------------------
# Berkeley DB files

DBTYPES = ("btree", "bhash")


def db_filename(dbtype: str, path: str, *, reading: bool) -> str:
    """File name for PATH (§3.1): btree PATH.db; bhash written .db, read .dbh."""
    t = dbtype.lower()
    if t == "btree":
        return path + ".db"
    if t == "bhash":
        return path + (".dbh" if reading else ".db")
    raise ValueError(f"unknown dbtype {dbtype!r}")


class PolicyDB:
    """A read-only policy database (one open per session, §3.1).

    ``shared``: the handle belongs to :func:`open_session_db`'s cache and
    outlives this session; close() then only lets go of it.
    """

    def __init__(self, handle: object, filename: str, *, shared: bool = False,
                 memo: _Memo | None = None) -> None:
        self._db = handle
        self.filename = filename
        self.shared = shared
        self.probe: Callable[[bytes], bytes | None] = (
            handle.get if memo is None else memo.__getitem__)  # type: ignore[attr-defined]

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` or None."""
        return self.probe(key)

    def items(self) -> list[tuple[bytes, bytes]]:
        """All records in database order (for dumps and tests)."""
        out: list[tuple[bytes, bytes]] = []
        cur = self._db.cursor()  # type: ignore[attr-defined]
        rec = cur.first()
        while rec:
            out.append(rec)
            rec = cur.next()
        cur.close()
        return out

    def close(self) -> None:
        if not self.shared:
            self._db.close()  # type: ignore[attr-defined]


def open_db(dbtype: str | None, path: str | None) -> tuple[PolicyDB | None, int]:
    """Open for a session: (db, status) with status 0 ok, 1 config bug, 2 open failure."""
    if not dbtype or not path or dbtype.lower() not in DBTYPES:
        return None, 1
    from bsddb3 import db as bdb

    fn = db_filename(dbtype, path, reading=True)
    handle = bdb.DB()
    try:
        handle.open(fn, dbtype=bdb.DB_UNKNOWN, flags=bdb.DB_RDONLY)
    except bdb.DBError:
        handle.close()
        return None, 2
    return PolicyDB(handle, fn), 0


class _Memo(dict[bytes, "bytes | None"]):
    """Answers of one unchanged read-only database file, kept for a child's next sessions.

    The same clients come back, and a connect-time address walk asks up to 33
    keys; a dict hit costs a fraction of a Berkeley DB lookup.
    """

    MAX = 4096

    def __init__(self, handle: object) -> None:
        super().__init__()
        self.lookup: Callable[[bytes], bytes | None] = handle.get  # type: ignore[attr-defined]

    def __missing__(self, key: bytes) -> bytes | None:
        if len(self) >= self.MAX:
            self.clear()
        value = self[key] = self.lookup(key)
        return value


# file name -> (pid, (dev, inode, mtime, size) when opened, handle, its answers): open_session_db
_session_handles: dict[str, tuple[int, tuple[int, int, int, int], object, _Memo]] = {}
_SESSION_HANDLES_MAX = 4


def open_session_db(dbtype: str | None, path: str | None) -> tuple[PolicyDB | None, int]:
    """open_db for a session, keeping the handle for this process's next sessions.

    A daemon child serves many sessions; opening the database for each cost
    ~6 % of a session.  The handle is reused only in the process that opened
    it and while the file is the same one, unchanged (device, inode, mtime,
    size): zmailer-policy-builder renames a new file into place, so the next
    session sees a rebuilt policy as it did with one open per session.  So
    are the answers it gave (``_Memo``): they are those of the same file.
    """
    if not dbtype or not path or dbtype.lower() not in DBTYPES:
        return None, 1
    fn = db_filename(dbtype, path, reading=True)
    try:
        st = os.stat(fn)
    except OSError:
        return open_db(dbtype, path)  # and its status 2
    ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    pid = os.getpid()
    cached = _session_handles.pop(fn, None)
    if cached is not None:
        cpid, cident, handle, memo = cached
        if cpid == pid and cident == ident:
            _session_handles[fn] = cached
            return PolicyDB(handle, fn, shared=True, memo=memo), 0
        if cpid == pid:  # another process's handle (inherited) is not ours to close
            handle.close()  # type: ignore[attr-defined]
    db, status = open_db(dbtype, path)
    if db is not None:
        db.shared = True
        while len(_session_handles) >= _SESSION_HANDLES_MAX:  # one per policydb file in use
            old = next(iter(_session_handles))
            opid, _, ohandle, _ = _session_handles.pop(old)
            if opid == pid:
                ohandle.close()  # type: ignore[attr-defined]
        memo = _Memo(db._db)
        _session_handles[fn] = (pid, ident, db._db, memo)
        db = PolicyDB(db._db, fn, shared=True, memo=memo)
    return db, status


def write_db(dbtype: str, filename: str, records: list[tuple[bytes, bytes]]) -> None:
    """Create ``filename`` (must not exist) holding ``records``, then fsync it."""
    from bsddb3 import db as bdb

    kind = bdb.DB_BTREE if dbtype.lower() == "btree" else bdb.DB_HASH
    handle = bdb.DB()
    handle.open(filename, dbtype=kind, flags=bdb.DB_CREATE | bdb.DB_EXCL, mode=0o644)
    try:
        for k, v in records:
            handle.put(k, v)
        handle.sync()
    finally:
        handle.close()
