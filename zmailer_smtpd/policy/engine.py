"""Policy lookups and verdicts for one SMTP session (policy.md §4–§6, §10).

TWO SEAMS over one engine (:class:`PolicySession`, one per SMTP session):

1. What session.py uses today (``SessionContext.policy``), built per session
   by cli.py in the connection child::

       pol = make_session_policy(settings, zenv, myhostname=b"mx.example",
                                 client_text=b"[192.0.2.1]" or b"" (-T),
                                 debug=write_000_line_or_None, log=None)
       pol.status                    # 0 ok, 1 no/unknown policydb, 2 open failure
       ans = pol.connect(peer_addr, rhostname)  # rhostname: PTR, b"[ip]", b"stdin" (-T)
           # ans.result < 0 ⇔ 550 banner; ans.msg its text; ans.freeze 1 for freezenet
           # pol.maxsameip, pol.maxinsize, pol.trusted, pol.policyresult (last result;
           # a reverse-name -1 keeps the 220 banner but refuses RCPT "earlier rejection")
       pol.helo(arg) / pol.mail(path) / pol.rcpt(path) / pol.postmaster(path)
           # → Answer(result, msg, freeze); the session renders §6 replies from
           # (result, msg) and does the postmaster exemption and spam trap itself;
           # freeze is the freezer code (1 session freeze, 2 transaction freeze)
       pol.data_accepted()           # a message was committed: §9.3 counter (cli wraps
                                     # ctx.spool to call it when a rate tracker exists)
       # make_session_policy(..., whoson=<whoson query succeeded>, rate=TrackerClient|None)

2. The engine itself (:class:`PolicySession`), for tests of its result codes::

       db, status = open_policy(dbtype, path, debug=fn)
       ps = PolicySession(db, status, resolver=..., selfaddrs=..., myhostname=...,
                          client_text=..., debug=..., log=...)
       ps.connect(ip, hostname=...)     # the connect-time tests; ps.reject_net, ps.policyresult
       v = ps.helo(arg) / ps.mail_from(path)   # Verdict(result, message, freeze)

The replies (policy.md §6) are rendered only by session.py, from the
(result, message, freeze) answers.  Debug lines (``-d``) go to ``debug`` as
whole lines such as ``"000- Key: 7/IPv4/192.0.2.0/24"``; DNS notes also go to
``log``.  Without a usable database (status ≠ 0) the answers fail closed.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..dnsresolve import Resolver
from . import db as pdb
from .dnscheck import MODE_EXISTS, MODE_MX, DnsChecker, SelfAddrs

# attribute codes
A_ALIAS = 1
A_REJECTNET = 2
A_FREEZENET = 3
A_REJECTSOURCE = 4
A_FREEZESOURCE = 5
A_RELAYCUSTOMER = 6
A_RELAYCUSTNET = 7
A_RELAYTARGET = 8
A_ACCEPTIFMX = 9
A_ACCEPTIFDNS = 10
A_SENDEROKWITHDNS = 11
A_FREEZE = 12
A_SENDERNORELAY = 13
A_TESTDNSRBL = 14
A_MESSAGE = 15
A_LOCALDOMAIN = 16
A_MAXINSIZE = 17
A_MAXOUTSIZE = 18
A_FULLTRUSTNET = 19
A_TRUSTRECIPIENTS = 20
A_TRUSTWHOSON = 21
A_RCPTDNSRBL = 22
A_TESTRCPTDNSRBL = 23
A_WARNRCPTDNSRBL = 24
A_FILTERING = 25
A_MAXSAMEIPSOURCE = 26
A_SPF = 27
A_RATELIMITMSGS = 28
NUMERIC = (A_MAXINSIZE, A_MAXOUTSIZE, A_MAXSAMEIPSOURCE)

# Policy messages (the {MSG} of policy.md §6 replies; session.py renders the replies)
GO_AWAY = b"You are on our reject-IP-address -list, GO AWAY!"
BLACKHOLED = b"Your network address is blackholed in our static tables"


@functools.lru_cache(maxsize=256)
def _client_ip(ip: str) -> tuple[bytes, str, bool]:
    """(packed, text, IPv4?) of a client address; v4-mapped IPv6 counts as its IPv4 address."""
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a.packed, str(a), isinstance(a, ipaddress.IPv4Address)


@dataclass
class Verdict:
    """One policy answer: result < 0 rejects; the session renders the reply."""

    result: int = 0  # the C policy result (log it as policyresult)
    message: bytes | None = None
    freeze: int = 0  # > 0: transaction frozen with this freezer code


def parse_li(text: bytes) -> int | None:
    """C ``sscanf("%li")``: blanks, sign, 0x hex / 0 octal / decimal; None if none."""
    m = re.match(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if not m:
        return None
    digits = m.group(2)
    if digits[:2].lower() == b"0x":
        v = int(digits[2:], 16)
    elif digits.startswith(b"0"):
        v = int(digits, 8) if len(digits) > 1 else 0
    else:
        v = int(digits)
    return -v if m.group(1) == b"-" else v


def find_nonq(s: bytes, ch: int, start: int = 0, end: int | None = None) -> int:
    """First unquoted ``ch`` (find_nonqchr: quotes toggle, backslash escapes); -1."""
    quote = False
    i = start
    end = len(s) if end is None else end
    while i < end:
        c = s[i]
        if c == 0x22:
            quote = not quote
        if c == 0x5C:
            i += 2
            continue
        if c == ch and not quote:
            return i
        i += 1
    return -1


class RateCounter(Protocol):
    """The tracker client's shape (ratetracker.TrackerClient): a reply's number or None."""

    def count(self, line: str) -> int | None: ...


RATELIMIT_MSG = b"You are sending too much mail/rcpts per time interval.  Try again later."
_RL = re.compile(rb"^\s*([+-]?\d+)(?:,\s*([+-]?\d+))?")


def parse_ratelimit(value: bytes) -> tuple[int, int] | None:
    """``sscanf("%d,%d")`` of a ratelimitmsgs value: (N, M) with M 0 when absent; None if no N."""
    m = _RL.match(value)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)) if m.group(2) is not None else 0


def ratelimit_result(value: bytes, count: int, *, authenticated: bool = False) -> int:
    """§9.3's first matching rule for count ``count``: -1 (553), -100 (451) or 0."""
    limits = parse_ratelimit(value)
    if limits is None:
        return 0
    n, m = limits
    if authenticated:
        n, m = n * 10, m * 10
    if n < 0 and count >= -n:
        return -1
    if n > 0 and count >= n:
        return -100
    if m < 0 and count >= -m:
        return -1
    if m > 0 and count >= m:
        return -100
    return 0


def rfc822_quote(path: bytes) -> bytes:
    """§6.6 note: a local part with ``\\`` not starting with ``"`` is quoted."""
    if b"\\" in path and not path.startswith(b'"'):
        at = path.find(b"@")
        if at < 0:
            return b'"' + path + b'"'
        return b'"' + path[:at] + b'"' + path[at:]
    return path


def open_policy(
    dbtype: str | None, path: str | None, *, debug: Callable[[str], None] | None = None,
    submission: bool = False, whoson: bool = False,
) -> tuple[pdb.PolicyDB | None, int]:
    """Open the database for one session, with the -d init trace (§10.3)."""
    if debug:
        debug(
            f"000-Policyinit call starts: submission mode: {int(submission)}, valid whoson: {int(whoson)},"
            f" dbpath: {path or ''}"
        )
    db, status = pdb.open_session_db(dbtype, path)
    if debug and dbtype and path and dbtype.lower() in pdb.DBTYPES:
        fn = pdb.db_filename(dbtype, path, reading=True)
        debug(f"000- dbpath is '{path}' dbname is '{fn}'")
        if status == 2:
            debug(f"000- ERROR!  Could not open the database file '{fn}'; errno=2!")
    return db, status


class PolicySession:
    """The policy state of one SMTP session (policytest.h) and its stage tests."""

    def __init__(
        self,
        db: pdb.PolicyDB | None,
        status: int = 0,
        *,
        resolver: Resolver | None = None,
        selfaddrs: SelfAddrs | None = None,
        myhostname: bytes = b"localhost",
        client_text: bytes = b"",
        debug: Callable[[str], None] | None = None,
        log: Callable[[str], None] | None = None,
        ipv6: bool = False,
        whoson: bool = False,
        rate: RateCounter | None = None,
    ) -> None:
        self.db = db
        self.status = 0 if db is not None else (status or 1)
        # {H} and {A} of the replies the session renders (kept for the callers' record)
        self.myhostname = myhostname
        self.client_text = client_text
        self._debug = debug
        self._log = log
        self.selfaddrs = selfaddrs or SelfAddrs(None)
        self.dns = DnsChecker(
            resolver or Resolver(), self.selfaddrs, ipv6=ipv6, debug=debug, log=log
        )
        # session flags (§4.1)
        self.always_reject = False
        self.always_freeze = False
        self.always_accept = False
        self.full_trust = False
        self.trust_recipients = False
        self.authuser: bytes | None = None
        self.rblmsg: bytes | None = None
        self.maxinsize = -1
        self.maxoutsize = -1
        self.maxsameiplimit = -1
        self.content_filter = -1
        self.ratelimitmsgs: bytes | None = None
        # §9.2: a successful whoson query of the client; trust_recipients
        # granted by the IP entry stays, a MAIL-level grant lasts one MAIL
        self.whoson_valid = whoson
        self._ip_trust = False
        # §9.3: the tracker (None: unreachable, nothing is limited)
        self.rate = rate
        self.rate_label = ""
        self.did_query_rate = False
        self.reject_net = False
        self.policyresult = 0  # "last policy result" (smtpserver.c)
        # per transaction
        self.sender_reject = False
        self.sender_freeze = False
        self.sender_norelay = False
        # per call
        self.message: bytes | None = None
        self.values: dict[int, bytes] = {}
        self.messages: dict[int, bytes | None] = {}
        self._req: set[int] = set()
        self._lastreq: set[int] = set()
        self._ip: str | None = None

    # -- tracing ---------------------------------------------------------
    @property
    def tracing(self) -> bool:
        """True under -d."""
        return self._debug is not None

    def _d(self, text: str) -> None:
        if self._debug is not None:
            self._debug("000-" + text)

    def _note(self, text: str) -> None:
        if self._log is not None:
            self._log(text)
        self._d(text)

    def _results(self) -> str:
        parts = []
        for c in range(2, 29):
            name = pdb.ATTR_NAMES[c]
            if c == A_MAXINSIZE:
                v = str(self.maxinsize)
            elif c == A_MAXOUTSIZE:
                v = str(self.maxoutsize)
            elif c == A_MAXSAMEIPSOURCE:
                v = str(self.maxsameiplimit)
            else:
                val = self.values.get(c)
                v = "." if val is None else val.decode("latin-1")
            parts.append(f"{name} {v} ")
        return "".join(parts)

    def _trace_call(self, what: int) -> None:
        if not self.tracing:
            return
        self._d(f" policytest what={what}")
        for name, flag in (
            ("always_reject", self.always_reject),
            ("always_freeze", self.always_freeze),
            ("always_accept", self.always_accept),
            ("full_trust", self.full_trust),
            ("trust_recipients", self.trust_recipients),
            ("sender_reject", self.sender_reject),
            ("sender_freeze", self.sender_freeze),
            ("sender_norelay", self.sender_norelay),
            ("relaycustnet", self.always_accept),
        ):
            self._d(f" {name}={int(flag)}")
        for c in range(2, 29):
            val = self.values.get(c)
            v = "." if val is None else val.decode("latin-1")
            rq = "requested" if c in self._lastreq else "not requested"
            self._d(f" {pdb.ATTR_NAMES[c]}: {rq}, value={v}")
        self._d(f" maxinsize={self.maxinsize}")
        self._d(f" maxoutsize={self.maxoutsize}")
        self._d(f" maxsameiplimit={self.maxsameiplimit}")

    # -- §4.2 resolution -------------------------------------------------
    def _resolve(self, key: bytes) -> bool:
        self.values = {}
        self.messages = {}
        self._lastreq = set(self._req)
        return self._walk(key, 0)

    def _walk(self, key: bytes, depth: int) -> bool:
        assert self.db is not None
        tracing = self._debug is not None  # the trace lines are built only when traced
        if tracing:
            self._d(f" Key: {pdb.key_debug(key)}")
        rec = self.db.get(key)
        if rec is None:
            self._d("  query failed")
            return False
        pending: bytes | None = None
        for code, text in pdb.iter_attrs(rec):
            if tracing:
                name = pdb.ATTR_NAMES.get(code, str(code))
                self._d(f"   Attribute: {len(text) + 3}/{name}/'{text.decode('latin-1')}'")
            if code == A_ALIAS:
                if depth < 5:
                    if tracing:
                        self._d(f" Alias-recursion: {4 - depth}")
                    try:
                        tkey = pdb.string_key(pdb.K_TAG, pdb.lower(text))
                    except pdb.KeyError_:
                        continue
                    self._walk(tkey, depth + 1)
                else:
                    self._d(" Max recursions reached.")
                continue
            if code == A_MESSAGE:
                pending = text
                continue
            if code in self._req:
                self._req.discard(code)
                self.messages[code] = pending
                if code in NUMERIC:
                    n = parse_li(text)
                    if n is not None:
                        if code == A_MAXINSIZE:
                            self.maxinsize = n
                        elif code == A_MAXOUTSIZE:
                            self.maxoutsize = n
                        else:
                            self.maxsameiplimit = n
                else:
                    self.values[code] = text
                    self._d("     accepted!")
            else:
                self._d("     not interested, skipped...")
            pending = None
            if not self._req:
                self._d(" Every request found. Finishing search.")
                break
        return True

    def _pick(self, code: int) -> None:
        """PICK_PA_MSG: the message bound to ``code`` becomes the current one."""
        m = self.messages.get(code)
        if m is not None:
            self.message = m

    def _v(self, code: int) -> bytes | None:
        return self.values.get(code)

    def _is(self, code: int, want: bytes) -> bool:
        return self.values.get(code) == want

    # -- §4.3 IP lookup ---------------------------------------------------
    def _checkaddr_ip(self, packed: bytes) -> bool:
        nbits = len(packed) * 8
        req = set(self._req)
        assert self.db is not None
        probe = self.db.probe if self._debug is None else None
        for key in pdb.ip_walk(packed):
            if probe is not None and probe(key) is None:
                continue  # untraced, a missing key changes nothing the next _resolve keeps
            self._req = set(req)
            if self._resolve(key):
                if self._debug is not None:
                    self._d(f" Results:  {self._results()}")
                return True
        if nbits == 128:
            self._req = set(req)
            if self._resolve(pdb.ip_key(b"\0\0\0\0", 0)):
                if self._debug is not None:
                    self._d(f" Results:  {self._results()}")
                return True
        self._req = set(req)
        self._lastreq = set(req)
        self.values = {}
        self.messages = {}
        self._d(" Address not found.")
        return False

    # -- §4.4 domain lookup ----------------------------------------------
    def _check_domain(self, name: bytes) -> int:
        name = pdb.lower(name)[:253]
        if name.startswith(b"["):
            return self._literal(name)
        self._d(f" checkaddr(): domain of '{name.decode('latin-1')}'")
        req = set(self._req)
        key = name
        while True:
            self._req = set(req)
            try:
                kb = pdb.string_key(pdb.K_DOMAIN, key)
            except pdb.KeyError_:
                kb = b""
            self._d(f" DEBUG: {pdb.key_debug(kb) if kb else key.decode('latin-1')}")
            found = self._resolve(kb) if kb else False
            self._d(f" Results: {self._results()}")
            if found:
                return 0
            if not key.startswith(b"."):
                key = b"." + key
                continue
            rest = key[1:]
            if rest == b"":
                break
            p = rest.find(b".")
            key = b"." if p < 0 else b"." + rest[p + 1 :]
        self.values = {}
        self.messages = {}
        return 0

    def _literal(self, name: bytes) -> int:
        """The address-literal procedure of §6.3."""
        inner = name[1:]
        end = inner.find(b"]")
        if end >= 0:
            inner = inner[:end]
        try:
            if inner.startswith(b"ipv6"):
                packed = ipaddress.IPv6Address(inner[5:].decode("ascii")).packed
            else:
                packed = ipaddress.IPv4Address(inner.decode("ascii")).packed
        except (ValueError, UnicodeDecodeError):
            self.values = {}
            self.messages = {}
            return 0
        ip = str(ipaddress.ip_address(packed))
        localcheck = A_LOCALDOMAIN in self._req
        selfr = self.selfaddrs.test(ip)
        if not selfr:
            self._req |= {A_TESTDNSRBL, A_RCPTDNSRBL, A_SPF}
        self.maxinsize = self.maxoutsize = -1
        if not self._checkaddr_ip(packed):
            return 0
        if selfr and localcheck:
            self.values[A_LOCALDOMAIN] = b"+"
            self.values[A_RELAYTARGET] = b"+"
            self.values.pop(A_TESTDNSRBL, None)
            self.values.pop(A_RCPTDNSRBL, None)
            return 0
        return self._rbl_part(ip)

    # -- §4.5 user lookup -------------------------------------------------
    def _check_user(self, addr: bytes) -> bool:
        a = pdb.lower(addr)[:509]
        at = find_nonq(a, 0x40)
        if at < 0:
            # 3.0.1 reused the previous values here (T12); fixed: nothing found.
            self.values = {}
            self.messages = {}
            return False
        self._d(f" checkaddr(): user of '{a.decode('latin-1')}'")
        req = set(self._req)
        found = False
        for cand in (a, a[: at + 1]):
            self._req = set(req)
            try:
                kb = pdb.string_key(pdb.K_USER, cand)
            except pdb.KeyError_:
                continue
            found = self._resolve(kb)
            self._d(f" Results: {self._results()}")
            if found:
                break
        return found

    # -- §6.2 RBL part -----------------------------------------------------
    def _rbl_part(self, ip: str) -> int:
        if self._is(A_SPF, b"+"):
            self._note(" compiled without SPF support, 'spf +' ignored")
        t = self._v(A_TESTDNSRBL)
        if t is not None and t != b"-":
            self._d(f" policytestaddr: 'test-dns-rbl {t.decode('latin-1')}' found;")
            listed, txt = self.dns.rbl_test(ip, t)
            self.message = txt if txt is not None else self.messages.get(A_TESTDNSRBL)
            rc = -1 if listed else 0
            m = self.message.decode("latin-1") if self.message else "<nil>"
            self._d(f"  rc={rc}; msg='{m}'")
            return rc
        r = self._v(A_RCPTDNSRBL)
        if r is not None and r.startswith(b"_"):
            self._d(f" policytestaddr: 'rcpt-dns-rbl {r.decode('latin-1')}' found;")
            if r[1:2] != b"+":
                self.rblmsg = r[1:]
            return 0
        if r is not None and r != b"-":
            self._d(f" policytestaddr: 'rcpt-dns-rbl {r.decode('latin-1')}' found;")
            listed, txt = self.dns.rbl_test(ip, r)
            if listed:
                self.rblmsg = txt or self.messages.get(A_RCPTDNSRBL) or GO_AWAY
            m = self.rblmsg.decode("latin-1") if self.rblmsg else "<none>"
            self._d(f"rcpt-dns-rbl test yields: rc={-1 if listed else 0} rblmsg='{m}'")
        return 0

    # -- §6.1/§6.2 connection ---------------------------------------------
    def connect(self, ip: str, *, hostname: bytes | None = None) -> Verdict:
        """Connect-time tests of the client IP and reverse name.

        ``hostname``: PTR name, None without PTR (the address text is used),
        ``b"stdin"`` in -T mode.  ``reject_net`` tells whether the banner is 550.
        """
        if self.status != 0:
            return Verdict(0)
        self._ip = ip
        packed, text, v4 = _client_ip(ip)
        self.message = None
        self.content_filter = -1
        self.maxinsize = self.maxoutsize = -1
        selfr = self.selfaddrs.test(text)
        self._d(f" policytestaddr: lcldom/myaddress=0/{selfr}")
        self._req = {
            A_REJECTNET, A_FREEZENET, A_RELAYCUSTNET, A_MAXINSIZE, A_MAXOUTSIZE,
            A_FULLTRUSTNET, A_TRUSTRECIPIENTS, A_FILTERING, A_RATELIMITMSGS, A_MAXSAMEIPSOURCE,
            A_TRUSTWHOSON,
        }  # fmt: skip
        self.rate_label = ("4:" if v4 else "6:") + packed.hex()
        if not selfr:
            self._req |= {A_TESTDNSRBL, A_RCPTDNSRBL, A_SPF}
        rc = self._addrtest(packed, text)
        self.policyresult = rc
        self.reject_net = rc < 0 or self.maxsameiplimit == 0
        if rc == 0:
            revname = hostname
            if revname is None:
                revname = (b"[" if v4 else b"[IPv6:") + text.encode() + b"]"
            self.policyresult = self._sourcedomain(revname)
        return Verdict(self.policyresult, self.message)

    def greeting_sent(self) -> None:
        """Call after the greeting went out: the ``-- policyresult=`` trace line (§10.3)."""
        if self.status == 0 and self._ip is not None and (self.policyresult != 0 or self.message):
            m = self.message.decode("latin-1") if self.message else "<NONE!>"
            self._d(f"-- policyresult={self.policyresult} initial policy msg: {m}")

    def _addrtest(self, packed: bytes, ip: str) -> int:
        if not self._checkaddr_ip(packed):
            return 0
        rl = self._v(A_RATELIMITMSGS)
        if rl is not None:
            self.ratelimitmsgs = rl
        if self._is(A_REJECTNET, b"+"):
            self._d(" policytestaddr: 'rejectnet +' found")
            self.message = self.messages.get(A_REJECTNET) or BLACKHOLED
            self.always_reject = True
            return -1
        if self._is(A_FREEZENET, b"+"):
            self._d(" policytestaddr: 'freezenet +' found")
            self.message = self.messages.get(A_FREEZENET) or BLACKHOLED
            self.always_freeze = True
            return 1
        if self._is(A_TRUSTRECIPIENTS, b"+"):
            self._d(" policytestaddr: 'trustrecipients +' found")
            self.trust_recipients = True
            self._pick(A_TRUSTRECIPIENTS)
        if self._is(A_FULLTRUSTNET, b"+"):
            self._d(" policytestaddr: 'fulltrustnet +' found")
            self.full_trust = True
            self._pick(A_FULLTRUSTNET)
        if self._is(A_RELAYCUSTNET, b"+"):
            self._d(" policytestaddr: 'relaycustnet +' found")
            self.always_accept = True
            self._pick(A_RELAYCUSTNET)
        tw = self._v(A_TRUSTWHOSON)
        if tw == b"+":
            self._d(f" policytestaddr: 'trust-whoson +' found, accept? = {int(self.whoson_valid)}")
            if self.whoson_valid:
                self.trust_recipients = True
            self._pick(A_TRUSTWHOSON)
        elif tw == b"-":
            self.whoson_valid = False
        self._ip_trust = self.trust_recipients
        f = self._v(A_FILTERING)
        if f is not None:
            self._d(f" policytestaddr: 'filter {f.decode('latin-1')}' found")
            self.content_filter = 1 if f == b"+" else 0
        if self.trust_recipients or self.full_trust or self.always_accept:
            return 0
        return self._rbl_part(ip)

    def _sourcedomain(self, name: bytes) -> int:
        """§6.3, policytest what=2."""
        self._trace_call(2)
        self.message = None
        if self.always_reject:
            return -1
        if self.always_freeze:
            return 1
        if self.full_trust or self.authuser:
            return 0
        self._req = {A_REJECTNET, A_FREEZENET, A_RELAYCUSTNET, A_MAXINSIZE, A_MAXOUTSIZE, A_RCPTDNSRBL}
        self._check_domain(name)
        listed = self._net_listed()
        if listed is not None:
            return listed
        if self.always_accept:
            return 0
        if self._is(A_RELAYCUSTNET, b"+"):
            self._d(" pt_sourceaddr: 'relaycustnet +' found")
            self.always_accept = True
            self._pick(A_RELAYCUSTNET)
            return 0
        r = self._v(A_RCPTDNSRBL)
        if self.rblmsg is None and r is not None and r.startswith(b"_"):
            self._d(f" pt_sourceaddr: 'rcpt-dns-rbl {r.decode('latin-1')}' found;")
            if r[1:2] != b"+":
                self.rblmsg = r[1:]
        return 0

    def authenticated(self, user: bytes) -> None:
        """SMTP AUTH succeeded: HELO/MAIL/RCPT checks are bypassed from now on."""
        self.authuser = user

    # -- §6.4 HELO ---------------------------------------------------------
    def helo(self, arg: bytes) -> Verdict:
        """HELO/EHLO: sets flags only; the reply is always the normal 250."""
        if self.status != 0 or self._ip is None:
            return Verdict(0)
        rc = self._helo(arg.lstrip(b" \t"))
        self.policyresult = rc
        return Verdict(rc, self.message)

    def _helo(self, arg: bytes) -> int:
        self._trace_call(0)
        self.message = None
        if self.always_reject:
            return -1
        if self.always_freeze:
            return 1
        if self.always_accept or self.full_trust or self.authuser:
            return 0
        if arg.startswith(b"["):
            return 0
        self._req = {A_REJECTNET, A_FREEZENET}
        self._check_domain(arg)
        listed = self._net_listed()
        return 0 if listed is None else listed

    def _net_listed(self) -> int | None:
        """After a domain lookup: rejectnet/freezenet "+" -> -1/1 (sticky for the session)."""
        if self._is(A_REJECTNET, b"+"):
            self.always_reject = True
            self._pick(A_REJECTNET)
            return -1
        if self._is(A_FREEZENET, b"+"):
            self.always_freeze = True
            self._pick(A_FREEZENET)
            return 1
        return None

    # -- §6.5 MAIL -----------------------------------------------------------
    def mail_from(self, path: bytes) -> Verdict:
        """MAIL FROM policy; ``path`` without <> (after quoting), b"" for <>."""
        if self.status != 0:
            return Verdict(-100)  # fail closed
        if self._ip is None:
            return Verdict(0)
        rc = self._mailfrom(path)
        self.policyresult = rc
        return Verdict(rc, self.message, rc if rc > 0 else 0)

    def _mailfrom(self, s: bytes) -> int:
        self._trace_call(3)
        self.message = None
        self.sender_reject = self.sender_freeze = self.sender_norelay = False
        self.trust_recipients = self._ip_trust  # §9.2: a MAIL-level grant is withdrawn
        if self.always_reject:
            return -1
        if self.always_freeze:
            return 1
        if self.full_trust or self.authuser:
            return 0
        exclude: set[int] = set()
        domain = b""
        base = {A_REJECTSOURCE, A_FREEZESOURCE, A_SENDERNORELAY, A_SENDEROKWITHDNS}
        whoson = {A_TRUSTWHOSON} if self.whoson_valid else set()
        user_whoson = False
        if s:
            self._req = {A_REJECTSOURCE, A_FREEZESOURCE} | whoson
            if self._check_user(s):
                user_whoson = self._is(A_TRUSTWHOSON, b"+")
                if self._is(A_FREEZESOURCE, b"+"):
                    self._d(" mailfrom: 'freezesource +'")
                    self.sender_freeze = True
                    self._pick(A_FREEZESOURCE)
                    return 1
                if self._v(A_FREEZESOURCE) is not None:
                    exclude.add(A_FREEZESOURCE)
                if self._is(A_REJECTSOURCE, b"+"):
                    self._d(" mailfrom: 'rejectsource +'")
                    self.sender_reject = True
                    self._pick(A_REJECTSOURCE)
                    return -1
                if self._v(A_REJECTSOURCE) is not None:
                    exclude.add(A_REJECTSOURCE)
            self._req = (base | whoson) - exclude
            at = find_nonq(s, 0x40)
            if at < 0:
                return -1
            domain = s[at + 1 :]
            if self._check_domain(domain) != 0:
                return -1
        else:
            self._req = set(base)
            self._resolve_exact_dot()
        if s and self._is(A_SENDERNORELAY, b"+"):
            self._d(" mailfrom: 'sendernorelay +'")
            self.sender_norelay = True
            self._pick(A_SENDERNORELAY)
        if self.tracing:
            rl = self.ratelimitmsgs.decode("latin-1") if self.ratelimitmsgs else "<nil>"
            au = self.authuser.decode("latin-1") if self.authuser else "<nil>"
            self._d(f"mailfrom; authuser={au} always_accept={int(self.always_accept)} ratelimitmsgsvalue='{rl}'")
        if self.always_accept and self.ratelimitmsgs is not None:
            rc = self._ratelimit()
            if rc != 0:
                return rc
        if self._is(A_REJECTSOURCE, b"+"):
            self._d(" mailfrom: 'rejectsource +'")
            self.sender_reject = True
            self._pick(A_REJECTSOURCE)
            return -1
        if self._is(A_FREEZESOURCE, b"+"):
            # 3.0.1 refuses MAIL here; fixed (spec/README.md): it freezes.
            self._d(" mailfrom: 'freezesource +'")
            self.sender_freeze = True
            self._pick(A_FREEZESOURCE)
            return 1
        if self.whoson_valid and (user_whoson or self._is(A_TRUSTWHOSON, b"+")):
            self._d(" mailfrom: 'trust-whoson +' found")
            self.trust_recipients = True
            self._pick(A_TRUSTWHOSON)
        sdns = self._v(A_SENDEROKWITHDNS)
        if s and not domain.startswith(b"[") and sdns is not None:
            self._d(f" doing SENDERokWithDNS analysis: '{domain.decode('latin-1')}'")
            mode = chr(sdns[0]) if sdns else "\0"
            rc = self.dns.verify(domain.decode("latin-1"), MODE_EXISTS, mode)
            self._d(f" ... returns: {rc}")
            self._pick(A_SENDEROKWITHDNS)
            if rc != 0:
                return rc
        if self.authuser:
            self._d(" allow authenticated user")
            return 0
        if self.always_accept:
            self._d(' allow because of "always-accept"')
            return 0
        return 0

    def _ratelimit(self) -> int:
        """§9.3 at MAIL FROM: ask the tracker for this client's count; 0, -1 or -100."""
        value = self.ratelimitmsgs or b""
        self.did_query_rate = True
        if self.rate is None:
            return 0
        text = value.decode("latin-1")
        self._d(f"Checking 'RateLimitMsgs {text}' attribute")
        if parse_ratelimit(value) is None:
            return 0
        count = self.rate.count(f"MSGS {self.rate_label} {text} MAIL 0,0")
        if count is None:  # tracker not reachable: nothing is limited
            return 0
        rc = ratelimit_result(value, count, authenticated=self.authuser is not None)
        if rc != 0:
            self.message = RATELIMIT_MSG
            self.rate.count(f"EXCESS {self.rate_label} {text} MAIL 1,0")
        return rc

    def data_accepted(self, nrcpts: int = 1) -> None:
        """An accepted DATA/BDAT: counted only where the MAIL-time query was made (§9.3)."""
        if self.did_query_rate and self.rate is not None and self.rate_label:
            text = (self.ratelimitmsgs or b"-1").decode("latin-1")
            self.rate.count(f"RCPT {self.rate_label} {text} DATA 1,{max(nrcpts, 1)}")

    def _resolve_exact_dot(self) -> None:
        self._d(" DEBUG: 4/DOMAIN/'.'")
        self._resolve(pdb.string_key(pdb.K_DOMAIN, b"."))
        self._d(f" Results: {self._results()}")

    # -- §6.6 RCPT -------------------------------------------------------
    def _postmaster(self, s: bytes) -> bool:
        self._trace_call(6)
        self.message = None
        self._req = {A_RELAYTARGET}
        return self._check_user(s) and self._is(A_RELAYTARGET, b"+")

    _RCPT_USER = frozenset({A_RELAYTARGET, A_FREEZE, A_TESTRCPTDNSRBL, A_LOCALDOMAIN})
    _RCPT_DOM = frozenset(
        {A_RELAYTARGET, A_FREEZE, A_ACCEPTIFMX, A_ACCEPTIFDNS, A_TESTRCPTDNSRBL, A_LOCALDOMAIN}
    )

    def _rbl_rcpt(self) -> bool:
        if self._is(A_TESTRCPTDNSRBL, b"+"):
            m = self.rblmsg.decode("latin-1") if self.rblmsg else "<none>"
            self._note(f"test-rcpt-dns-rbl test; rblmsg='{m}'")
            if self.rblmsg is not None:
                self.message = self.rblmsg
                self._d(f" ... TestRcptDnsRBL has a message: '{m}'")
                return True
        return False

    def _rcptto(self, s: bytes) -> int:
        self._trace_call(5)
        self.message = None
        if self.always_reject:
            return -1
        if self.sender_reject:
            return -2
        if self.always_freeze or self.sender_freeze:
            return 1
        if self.full_trust or self.authuser or self.trust_recipients:
            return 0
        self._req = set(self._RCPT_USER)
        if self._check_user(s):
            if self._is(A_RELAYTARGET, b"+"):
                self._pick(A_RELAYTARGET)
                return 0
            if self._is(A_RELAYTARGET, b"-"):
                self._pick(A_RELAYTARGET)
                return -1
            if self._is(A_FREEZE, b"+"):
                self.sender_freeze = True
                self._pick(A_FREEZE)
                return 1
            if self._rbl_rcpt():
                return -1
        self._req = set(self._RCPT_DOM)
        at = find_nonq(s, 0x40)
        if at < 0:
            return 0 if self.always_accept else -1
        domain = s[at + 1 :]
        if self._check_domain(domain) != 0:
            self._d("rcptto checkdomain fails; -1")
            return -1
        start = 0  # where the local part starts (moves past '!' hops)
        while True:
            rounds = 0
            while self._is(A_LOCALDOMAIN, b"+") or self._is(A_RELAYTARGET, b"+"):
                rounds += 1
                if rounds > 20:
                    self._d(f"pt_rcptto('{s.decode('latin-1')}') loop break reached")
                    return -1
                bang = find_nonq(s, 0x21, start, at)
                if bang >= 0:
                    self._req = set(self._RCPT_DOM)
                    domain = s[start:bang]
                    self._check_domain(domain)
                    start = bang + 1
                    continue
                pct = -1
                p = find_nonq(s, 0x25, start, at)
                while p >= 0:
                    pct = p
                    p = find_nonq(s, 0x25, p + 1, at)
                if pct >= 0:
                    self._req = set(self._RCPT_DOM)
                    domain = s[pct + 1 : at]
                    self._check_domain(domain)
                    at = pct
                    continue
                break
            if self._is(A_RELAYTARGET, b"-"):
                self._pick(A_RELAYTARGET)
                return -1
            if self._is(A_FREEZE, b"+"):
                self.sender_freeze = True
                self._pick(A_FREEZE)
                return 1
            if self._rbl_rcpt():
                return -1
            if self._is(A_RELAYTARGET, b"+"):
                self._pick(A_RELAYTARGET)
                return 0
            dname = domain.decode("latin-1")
            mx = self._v(A_ACCEPTIFMX)
            if self.always_accept:
                rc = self.dns.verify(dname, MODE_EXISTS, chr(mx[0]) if mx else "-")
                self._pick(A_ACCEPTIFMX)
                return rc
            if mx is not None or self.sender_norelay:
                modechar = (chr(mx[0]) if mx else "\0") if mx is not None else "."
                rc = self.dns.verify(dname, MODE_MX, modechar)
                self._d(f" ...(mx_client_verify('{dname}')) returns: {rc}; lcldom={int(self.dns.islocaldomain)}")
                if self.dns.islocaldomain and not self._is(A_LOCALDOMAIN, b"+"):
                    self.values[A_LOCALDOMAIN] = b"+"
                    local = s[start:at]
                    if find_nonq(local, 0x21) >= 0 or find_nonq(local, 0x25) >= 0:
                        continue
                self._pick(A_ACCEPTIFMX)
                return rc
            dn = self._v(A_ACCEPTIFDNS)
            if dn is not None:
                rc = self.dns.verify(dname, MODE_EXISTS, chr(dn[0]) if dn else "\0")
                self._pick(A_ACCEPTIFDNS)
                return rc
            return 0

# ---------------------------------------------------------------------------
# The adapter session.py's seam expects (``SessionContext.policy``)


@dataclass
class Answer:
    """session.PolicyAnswer's shape: result < 0 rejects; freeze = freezer code."""

    result: int = 0
    msg: bytes | None = None
    freeze: int = 0


class SessionPolicy:
    """What session.py calls: ``status``, ``connect``, ``helo``, ``mail``, ``rcpt``,
    ``postmaster``, ``authenticated``, ``report_failed_rcpts``, ``data_accepted``,
    ``maxsameip``, ``maxinsize``, ``trusted``, ``run_filter``, ``reject_net``,
    ``policyresult``, ``close``.  The session renders the replies from
    (result, msg) with the tables of policy.md §6 and does the postmaster
    exemption and the null-sender spam trap itself.
    """

    def __init__(self, ps: PolicySession, auth_failrate: int = 5) -> None:
        self.ps = ps
        self.status = ps.status
        self.auth_failrate = auth_failrate

    def _ans(self, rc: int) -> Answer:
        ps = self.ps
        freeze = 0
        if rc > 0:
            freeze = 1 if ps.always_freeze else 2 if ps.sender_freeze else rc
        return Answer(rc, ps.message, freeze)

    @property
    def maxsameip(self) -> int:
        """The per-IP session limit from the connect-time entry (-1 none)."""
        return self.ps.maxsameiplimit

    @property
    def maxinsize(self) -> int:
        """The EHLO SIZE limit from the policy (-1 none)."""
        return self.ps.maxinsize

    @property
    def trusted(self) -> bool:
        """always-accept or full-trust client (passes the MSA gate)."""
        return self.ps.always_accept or self.ps.full_trust

    @property
    def run_filter(self) -> bool:
        """policy.md §6.7: ``filtering -`` (0), or an always-accept client without a
        ``filtering`` entry (-1), takes messages without the content filter."""
        ps = self.ps
        if ps.content_filter == 0:
            return False
        return not (ps.always_accept and ps.content_filter == -1)

    @property
    def reject_net(self) -> bool:
        """The 550 banner decision (IP verdict or maxsameipsource 0)."""
        return self.ps.reject_net

    @property
    def policyresult(self) -> int:
        """The last policy result (a reverse-name -1 gives a 220 but refuses RCPT)."""
        return self.ps.policyresult

    def connect(self, addr: str | None, rhostname: bytes | None) -> Answer:
        """IP and reverse-name tests.  ``result`` < 0 exactly when the banner is 550.

        A reverse-name rejection keeps ``result`` 0 (3.0.1 greets with 220);
        read ``policyresult`` for the stored last result.
        """
        ps = self.ps
        if addr is None:
            return Answer()
        ps.connect(addr, hostname=rhostname)
        ps.greeting_sent()
        rc = -1 if ps.reject_net else max(ps.policyresult, 0)
        return Answer(rc, ps.message if ps.reject_net else None, 1 if ps.always_freeze else 0)

    def helo(self, arg: bytes) -> Answer:
        """HELO/EHLO argument test (flags only; the reply is always 250)."""
        v = self.ps.helo(arg)
        return self._ans(v.result)

    def mail(self, addr: bytes) -> Answer:
        """MAIL FROM test; ``addr`` without <> after quoting, b"" for <>."""
        if self.status != 0:
            return Answer(-100)  # fail closed (the session's 400 gate comes first)
        v = self.ps.mail_from(addr)
        return self._ans(v.result)

    def rcpt(self, addr: bytes) -> Answer:
        """RCPT TO test, without the postmaster exemption (the session does it)."""
        ps = self.ps
        if ps.status != 0:
            return Answer(-100)  # fail closed
        if ps._ip is None:
            return Answer()
        rc = ps._rcptto(addr)
        return self._ans(rc)

    def postmaster(self, addr: bytes) -> Answer:
        """The postmaster retry: result 0 when the address has ``relaytarget +``."""
        ps = self.ps
        if ps.status != 0 or ps._ip is None:
            return Answer()
        kept = ps.message
        if ps._postmaster(addr):
            return Answer(0)
        ps.message = kept
        return Answer(-1, kept)

    def authenticated(self, user: bytes) -> None:
        """SMTP AUTH success."""
        self.ps.authenticated(user)

    def report_failed_rcpts(self, n: int) -> None:
        """Failed-recipient counts are not reported (3.0.1 only keeps statistics of them)."""

    def data_accepted(self, nrcpts: int = 1) -> None:
        """A message was accepted (DATA/BDAT committed): count it for §9.3."""
        self.ps.data_accepted(nrcpts)

    def auth_failed(self) -> None:
        """One failed AUTH attempt from this client, for ``auth-failrate``."""
        ps = self.ps
        if ps.rate is not None and ps.rate_label:
            ps.rate.count(f"AUTHF {ps.rate_label} 0 AUTH 1")

    def auth_failrate_exceeded(self) -> bool:
        """interfaces.md §3.3 check 2: more than ``auth-failrate`` failures this hour.

        Without a tracker (-i, -n, or it does not answer) nothing is limited.
        """
        ps = self.ps
        if ps.rate is None or not ps.rate_label:
            return False
        n = ps.rate.count(f"AUTHF {ps.rate_label} 0 AUTH 0")
        return n is not None and n > self.auth_failrate

    def close(self) -> None:
        """Close the database."""
        if self.ps.db is not None:
            self.ps.db.close()
            self.ps.db = None


def make_session_policy(
    settings: object,
    zenv: object = None,
    *,
    myhostname: bytes = b"localhost",
    client_text: bytes = b"",
    debug: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
    resolver: Resolver | None = None,
    selfaddrs: SelfAddrs | None = None,
    whoson: bool = False,
    rate: RateCounter | None = None,
) -> SessionPolicy:
    """Build ``SessionContext.policy`` for one session (in the child).

    ``settings.get("policydb")`` → (TYPE, PATH) or None; the resolver comes
    from ``settings.get("dns-nameservers")`` when that PARAM exists and is set,
    else /etc/resolv.conf; own addresses are the interfaces plus ZENV
    SELFADDRESSES host names.  ``client_text`` is {A} (b"" in -T mode).
    ``whoson``: the client's whoson query succeeded (§9.2); ``rate``: the
    daemon's rate tracker (ratetracker.TrackerClient), None outside daemon
    mode (then ``ratelimitmsgs`` limits nothing, §9.3).
    """
    from .dnscheck import self_addrs_for_host

    get = getattr(settings, "get", None)

    def param(name: str) -> object:
        if get is None:
            return None
        try:
            return get(name)
        except Exception:  # noqa: BLE001 - PARAM not declared (yet)
            return None

    pdbv = param("policydb")
    dbtype, path = (pdbv[0], pdbv[1]) if isinstance(pdbv, (tuple, list)) and len(pdbv) >= 2 else (None, None)
    db, status = open_policy(dbtype, path, debug=debug, whoson=whoson)
    if resolver is None:
        ns = param("dns-nameservers")
        if isinstance(ns, bytes):
            ns = ns.decode("latin-1")
        resolver = Resolver.from_param(ns if isinstance(ns, str) else None)
    if selfaddrs is None:
        sa = None
        zget = getattr(zenv, "get", None)
        if zget is not None:
            try:
                sa = zget("SELFADDRESSES")
            except Exception:  # noqa: BLE001
                sa = None
        if isinstance(sa, bytes):
            sa = sa.decode("latin-1")
        selfaddrs = self_addrs_for_host(resolver, sa if isinstance(sa, str) else None)
    ps = PolicySession(
        db, status, resolver=resolver, selfaddrs=selfaddrs, myhostname=myhostname,
        client_text=client_text, debug=debug, log=log, whoson=whoson, rate=rate,
    )  # fmt: skip
    failrate = param("auth-failrate")
    return SessionPolicy(ps, auth_failrate=failrate if isinstance(failrate, int) else 5)
