"""The PARAM table: every smtpserver.conf keyword declared once.

The parser (config.py), ``--check-config`` and the manual page's PARAM list all
come from this table; a test fails when the manual and the table disagree.
(protocol.md §2.5; decisions in spec/README.md.)

Each :class:`Param` is one *setting*.  Its ``name`` (lower-case) is the key
``Settings.get()`` takes; ``aliases`` are further spellings that set the same
value (3.0.1's and the manual page's), ``negations`` are spellings that set a
FLAG to False (``NoEHLO`` for ``ehlo-ok``).  Keywords are compared
case-insensitively, so every spelling here is stored lower-case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Argument syntaxes understood by config.py.
FLAG = "flag"  # no argument: True (a negation spelling: False)
INT = "int"  # sscanf("%d"): leading integer; garbage leaves the value unchanged
ATOI = "atoi"  # atoi(): leading integer; garbage gives 0
STR = "str"  # one token, kept as str (paths, names)
TEXT = "text"  # one token, kept as bytes (texts sent to clients)
REST = "rest"  # rest of line, verbatim bytes, no $-expansion (single value)
RESTLIST = "restlist"  # rest of line, appended to a list[bytes] (help, hdr220)
EXEC = "exec"  # one path, taken only if executable at read time (str | None)
POLICYDB = "policydb"  # TYPE PATH -> tuple[str, str] | None
TARPIT = "tarpit"  # I E T -> tuple[float, float, float]
DELIVERBY = "deliverby"  # [N] -> int (no arg 0; default -1 = off)
BIND = "bind"  # spec [port] -> appended to the group's "binds" list
CLUSTER = "cluster"  # three tokens appended to a list of tuple[str, str, str] (max 40)
ENUM = "enum"  # one token out of `choices` (str)
BOOLWORD = "boolword"  # true|false -> bool
WORDS = "words"  # one to three tokens, joined with one space (str)
NEWGROUP = "newgroup"  # starts a new parameter group

GLOBAL = "G"
GROUP = "g"

# Keywords whose value is the rest of the line, without $-expansion (§2.3 step 2).
REST_OF_LINE = frozenset({"help", "hdr220", "sasl-mechanisms", "smtp-mechanisms",
                          "contact-pointer-message"})


@dataclass(frozen=True)
class Param:
    """One setting of smtpserver.conf and every keyword spelling that sets it."""

    name: str  # canonical spelling, lower-case; the Settings.get() key
    syntax: str  # one of the syntax constants above
    scope: str  # GLOBAL "G" or GROUP "g"
    default: Any
    doc: str  # one line for the manual page and --check-config
    args: str = ""  # argument synopsis for the manual: "N", "TYPE PATH", ...
    aliases: tuple[str, ...] = ()  # other spellings with the same effect
    negations: tuple[str, ...] = ()  # FLAG only: spellings that set False
    minimum: int | None = None  # values below become this (after parsing)
    maximum: int | None = None  # INT: values above become this; lists: max entries
    choices: tuple[str, ...] = ()  # ENUM only
    implemented: bool = True  # False: accepted with a warning naming file and line
    note: str = ""  # why it is not implemented / how it deviates

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every keyword that reaches this setting, canonical first."""
        return (self.name, *self.aliases, *self.negations)


def _p(name: str, syntax: str, scope: str, default: Any, doc: str, **kw: Any) -> Param:
    return Param(name.lower(), syntax, scope, default, doc, **kw)


PARAMS: tuple[Param, ...] = (
    # --- Connection limits and sockets ------------------------------------
    _p("maxsameipsource", INT, GLOBAL, 100,
       "Concurrent sessions per client IP address and listener type.",
       args="N", aliases=("same-ip-source-parallel-max",)),
    _p("maxparallelconnections", INT, GLOBAL, 800,
       "Concurrent sessions per listener type.",
       args="N", aliases=("max-parallel-connections",)),
    _p("listenqueuesize", INT, GROUP, 20000, "listen() backlog of the group's sockets.", args="N"),
    _p("tcprcvbuffersize", INT, GROUP, 0, "SO_RCVBUF of the group's listeners if > 0.", args="N"),
    _p("tcpxmitbuffersize", INT, GROUP, 0, "SO_SNDBUF of the group's listeners if > 0.", args="N"),
    _p("bindport", ATOI, GLOBAL, 0,
       "Port of the default listeners and BindAddress (0: the smtp service, else 25); beats -p.",
       args="N"),
    _p("bindaddress", BIND, GROUP, None, "Add an SMTP listener (plus 465 with listen-ssmtp) at SPEC.",
       args="SPEC"),
    _p("bindsmtp", BIND, GROUP, None, "Add an SMTP listener at SPEC, port 25 unless given.",
       args="SPEC [PORT]"),
    _p("bindsmtps", BIND, GROUP, None, "Add an implicit-TLS listener at SPEC, port 465 unless given.",
       args="SPEC [PORT]"),
    _p("bindsubmit", BIND, GROUP, None,
       "Add a submission (MSA) listener at SPEC, port 587 unless given.", args="SPEC [PORT]"),
    # --- Protocol limits ---------------------------------------------------
    _p("maxsize", INT, GLOBAL, 0, "Maximum message size in bytes, 0 = unlimited; beats -M.",
       args="N"),
    _p("min-availspace", INT, GLOBAL, 5000, "Free space (KiB) kept in POSTOFFICE.",
       args="N", minimum=1000),
    _p("rcptlimitcount", INT, GROUP, 10000, "Recipients per message.",
       args="N", aliases=("rcptlimitcnt", "rcpt-limit-count"), minimum=100),
    _p("max-error-recipients", INT, GROUP, 3, "Recipients per message with MAIL FROM:<>.",
       args="N"),
    _p("max-unknown-commands", INT, GLOBAL, 10, "Unknown commands before disconnecting.",
       args="N"),
    _p("sum-sizeoption-value", FLAG, GLOBAL, False,
       "Storage check multiplies SIZE= by the recipient count."),
    _p("allowsourceroute", FLAG, GLOBAL, False, "Keep @a,@b: source routes in addresses."),
    _p("reject-percent-kludge", FLAG, GLOBAL, False, "Accepted; no effect (as in 3.0.1).",
       implemented=False, note="has no effect in 3.0.1 either"),
    _p("deliverby", DELIVERBY, GROUP, -1,
       "Enable BY= (DELIVERBY); N > 0 is advertised as the minimum, N < 0 disables.",
       args="[N]"),
    _p("tarpit", TARPIT, GROUP, (0.0, 0.0, 0.0),
       "Reply delay: initial, exponent, top limit (seconds).", args="I E T"),
    # --- Commands and EHLO features ---------------------------------------
    _p("debugcmd", FLAG, GROUP, False, "Enable Z-DEBUG.", negations=("no-debugcmd",)),
    _p("expncmd", FLAG, GROUP, False, "Enable EXPN.", negations=("no-expncmd",)),
    _p("vrfycmd", FLAG, GROUP, False, "Enable VRFY and EVFY.", negations=("no-vrfycmd",)),
    _p("ehlo-ok", FLAG, GROUP, True, "Accept the EHLO verb.", negations=("noehlo",)),
    _p("pipelining-ok", FLAG, GROUP, True, "Advertise PIPELINING and batch replies.",
       negations=("nopipelining",)),
    _p("8bitmime-ok", FLAG, GROUP, True, "Advertise 8BITMIME and accept BODY=.",
       negations=("no8bitmime",)),
    _p("chunking-ok", FLAG, GROUP, True, "Advertise CHUNKING and accept BDAT.",
       negations=("nochunking",)),
    _p("dsn-ok", FLAG, GROUP, True, "Advertise DSN and accept RET= ENVID= NOTIFY= ORCPT=.",
       negations=("nodsn",)),
    _p("etrn-ok", FLAG, GROUP, True, "Advertise ETRN and accept ETRN/TURNME.",
       negations=("noetrn",)),
    _p("enhancedstatuscodes-ok", FLAG, GROUP, True,
       "Advertise ENHANCEDSTATUSCODES and put status codes in replies.",
       aliases=("enhancedstatus-ok",),
       negations=("noenhancedstatuscodes", "noenhancedstatus",
                  "noenchancedstatuscodes", "noenchancedstatus")),
    _p("multiline-replies-ok", FLAG, GROUP, True, "Multi-line caret and ETRN replies.",
       negations=("no-multiline-replies",)),
    _p("force-rcpt-notify-never", FLAG, GROUP, False,
       "Store every recipient with NOTIFY=NEVER.", negations=("no-force-rcpt-notify-never",)),
    # --- Authentication ----------------------------------------------------
    _p("smtp-auth", FLAG, GROUP, False, "Enable the AUTH verb and MAIL AUTH=.",
       negations=("no-smtp-auth",)),
    _p("no-smtp-auth-on-25", FLAG, GROUP, False,
       "Refuse and do not advertise AUTH on plain SMTP listeners.",
       aliases=("no-smtp-auth-on-port-25",)),
    _p("smtp-auth-username-prompt", TEXT, GROUP, b"Username:", "LOGIN user name prompt.",
       args="TEXT"),
    _p("smtp-auth-password-prompt", TEXT, GROUP, b"Password:", "LOGIN password prompt.",
       args="TEXT"),
    _p("auth-failrate", INT, GROUP, 5, "Failed AUTH attempts per hour per client IP.",
       args="N", minimum=3),
    _p("auth-login-also-without-tls", FLAG, GROUP, False, "Offer plaintext AUTH outside TLS."),
    _p("smtp-auth-sasl", FLAG, GROUP, False, "Authenticate through SASL.",
       negations=("no-smtp-auth-sasl",)),
    _p("smtp-auth-pipe", STR, GROUP, None, "Check passwords with this program.", args="PATH"),
    _p("sasl-mechanisms", REST, GROUP, None, "Mechanisms offered (rest of line).",
       args="TEXT", aliases=("smtp-mechanisms",)),
    _p("msa-mode", FLAG, GLOBAL, False, "Submission mode for every session."),
    # --- TLS -----------------------------------------------------------------
    _p("use-tls", FLAG, GROUP, False, "Offer STARTTLS.", negations=("no-use-tls",)),
    _p("listen-ssmtp", FLAG, GROUP, False, "Also listen on port 465 with implicit TLS."),
    _p("outlook-tls-bug", FLAG, GROUP, False,
       "Detect a TLS hello sent without STARTTLS on non-25 ports."),
    _p("tls-cert-file", STR, GROUP, None, "RSA certificate (PEM); also the key file if unset.",
       args="PATH"),
    _p("tls-key-file", STR, GROUP, None, "RSA key (PEM); also the certificate file if unset.",
       args="PATH"),
    _p("tls-dcert-file", STR, GROUP, None, "DSA certificate; also the DSA key file if unset.",
       args="PATH"),
    _p("tls-dkey-file", STR, GROUP, None, "DSA key; also the DSA certificate file if unset.",
       args="PATH"),
    _p("tls-dh1024", STR, GROUP, None, "DH parameters (PEM) for DHE.", args="PATH"),
    _p("tls-dh512", STR, GROUP, None, "512-bit DH parameters for export ciphers.", args="PATH",
       implemented=False, note="export ciphers are not offered"),
    _p("tls-random-source", STR, GROUP, None, "Entropy source.", args="SOURCE",
       implemented=False, note="the OS random generator is always used"),
    _p("tls-cipher-list", STR, GROUP, None, "OpenSSL cipher string.", args="CIPHERS"),
    _p("tls-cafile", STR, GROUP, None, "Trust anchors for client certificates.", args="PATH"),
    _p("tls-capath", STR, GROUP, None, "Directory of trust anchors.", args="DIR"),
    _p("tls-loglevel", INT, GROUP, 0,
       "TLS logging detail: 0 none; 1 start-up and certificate facts; 2 also the "
       "handshake states; 3 also a hex and ASCII dump of the raw handshake records; "
       "4 also a dump of every raw record of the TLS session. The dumps show the "
       "records as they cross the socket (encrypted after the handshake), never "
       "plaintext.", args="N"),
    _p("tls-enforce-tls", INT, GROUP, 0, "Parsed, unused (as in 3.0.1).", args="N",
       implemented=False, note="unused in 3.0.1 too"),
    _p("tls-ccert-vd", INT, GROUP, 1, "Client certificate verify depth.", args="N"),
    _p("tls-ask-cert", INT, GROUP, 0, "Ask for a client certificate, record the result.",
       args="N"),
    _p("tls-require-cert", INT, GROUP, 0, "Fail the handshake without a valid client certificate.",
       args="N"),
    _p("tls-use-scache", FLAG, GROUP, False, "Parsed, unused (as in 3.0.1).",
       implemented=False, note="unused in 3.0.1 too"),
    _p("tls-scache-name", STR, GROUP, None, "External TLS session cache.", args="NAME",
       implemented=False, note="distcache is not supported"),
    _p("tls-scache-timeout", INT, GROUP, 0, "External TLS session cache timeout.", args="SECS",
       implemented=False, note="distcache is not supported"),
    _p("report-auth-file", STR, GROUP, None, "Z-REPORT authorisation file; no effect in 3.0.1.",
       args="PATH", implemented=False, note="Z-REPORT is not implemented"),
    _p("lmtp-mode", FLAG, GLOBAL, False, "Speak LMTP (daemon/inetd only on a port other than 25)."),
    # --- Received-header selectors ---------------------------------------------
    _p("rcvd-ident", FLAG, GROUP, False, "Ident user in the Received data.",
       negations=("no-rcvd-ident",)),
    _p("rcvd-whoson", FLAG, GROUP, False, "whoson user in the Received data.",
       negations=("no-rcvd-whoson",)),
    _p("rcvd-auth-user", FLAG, GROUP, False, "AUTH user in the Received data.",
       negations=("no-rcvd-auth-user",)),
    _p("rcvd-tls-mode", FLAG, GROUP, False, "TLS cipher in the Received data.",
       negations=("no-rcvd-tls-mode",)),
    _p("rcvd-tls-peer", FLAG, GROUP, False, "TLS peer subject in the Received data.",
       negations=("no-rcvd-tls-peer",)),
    # --- Router, filters, policy --------------------------------------------------
    _p("enable-router", FLAG, GLOBAL, False, "Check MAIL/RCPT/VRFY/EXPN with the router."),
    _p("enable-router-maxpar", INT, GLOBAL, 2, "3.0.1 router pool size; one router per session here.",
       args="N", minimum=1, maximum=20, implemented=False,
       note="one router per session (the manual's process model)"),
    _p("policydb", POLICYDB, GROUP, None, "Policy database type and path.", args="TYPE PATH"),
    _p("contentfilter", EXEC, GLOBAL, None, "Content filter program (if executable).",
       args="PATH"),
    _p("contentfilter-maxpar", INT, GLOBAL, 2, "3.0.1 filter pool size; one filter per session here.",
       args="N", minimum=1, maximum=20, implemented=False,
       note="one filter per session (the manual's process model)"),
    _p("debug-contentfilter", FLAG, GLOBAL, False, "Content filter diagnostics in the session log."),
    _p("perl-hook", EXEC, GLOBAL, None, "Embedded Perl hook.", args="PATH",
       implemented=False, note="no embedded Perl"),
    _p("use-tcp-wrapper", FLAG, GROUP, False, "Check clients with hosts.allow/hosts.deny."),
    _p("tcp-wrapper-files", WORDS, GROUP, None,
       "hosts.allow and hosts.deny paths for use-tcp-wrapper"
       " (default /etc/hosts.allow /etc/hosts.deny).",
       args="ALLOW DENY"),
    _p("whoson-server", WORDS, GROUP, None,
       "whoson server asked with -w: address, port, tcp or udp (default 127.0.0.1 9876 tcp).",
       args="ADDR [PORT [tcp|udp]]"),
    _p("etrn-cluster", CLUSTER, GLOBAL, (), "Forward ETRN to a cluster node (up to 40).",
       args="NODE USER PASS", maximum=40),
    _p("tracking-cluster", CLUSTER, GLOBAL, (), "Rate tracker cluster peer (up to 40).",
       args="ADDR PORT SECRET", maximum=40, implemented=False, note="no rate tracker cluster"),
    _p("spf-received", FLAG, GROUP, False, "Write Received-SPF.", implemented=False,
       note="no SPF support"),
    _p("spf-threshold", ENUM, GROUP, None, "SPF rejection threshold.", args="LEVEL",
       choices=("fail", "softfail", "none", "neutral", "pass"), implemented=False,
       note="no SPF support"),
    _p("spf-localpolicy", STR, GROUP, None, "SPF local policy.", args="TEXT",
       implemented=False, note="no SPF support"),
    _p("spf-whitelist-use-default", BOOLWORD, GROUP, False, "SPF default whitelist.",
       args="true|false", implemented=False, note="no SPF support"),
    # --- Texts -------------------------------------------------------------------
    _p("help", RESTLIST, GLOBAL, (), "A line of the HELP reply (rest of line).",
       args="TEXT", maximum=41),
    _p("hdr220", RESTLIST, GLOBAL, (), "A line of the greeting (rest of line).",
       args="TEXT", maximum=5),
    _p("contact-pointer-message", REST, GROUP, None,
       "Parsed, unused: the built-in contact text is always sent (as in 3.0.1).",
       args="TEXT", implemented=False, note="inert in 3.0.1"),
    # --- zmailer_smtpd extensions (not in 3.0.1) --------------------------------------
    _p("session-timeout", INT, GROUP, 3600,
       "Overall deadline of one daemon session in seconds, 0 = none (zmailer_smtpd extension).",
       args="SECS", minimum=0),
    _p("child-max-sessions", INT, GLOBAL, 1000,
       "Sessions one daemon child serves, one after another, before it exits; 1 = a new"
       " child for every connection (zmailer_smtpd extension).", args="N", minimum=1),
    _p("child-max-idle", INT, GLOBAL, 60,
       "Seconds a daemon child waits for its next connection before it exits"
       " (zmailer_smtpd extension).", args="SECS", minimum=1),
    _p("dns-nameservers", WORDS, GLOBAL, None,
       "Nameservers for policy DNS checks instead of /etc/resolv.conf, e.g. \"127.0.0.1:5353 ::1\""
       " (zmailer_smtpd extension).", args="ADDR[:PORT] ..."),
    # --- Groups --------------------------------------------------------------------
    _p("newgroup", NEWGROUP, GROUP, None, "Start a new parameter group."),
)

# keyword (lower-case) -> (Param, is_negation)
KEYWORDS: dict[str, tuple[Param, bool]] = {}
for _param in PARAMS:
    for _kw in (_param.name, *_param.aliases):
        KEYWORDS[_kw.lower()] = (_param, False)
    for _kw in _param.negations:
        KEYWORDS[_kw.lower()] = (_param, True)



def lookup(keyword: str) -> tuple[Param, bool] | None:
    """Find the setting a keyword spelling names (case-insensitive), and whether it negates."""
    return KEYWORDS.get(keyword.lower())


# How the manual and the samples spell the mixed-case keywords.
DISPLAY: dict[str, str] = {s.lower(): s for s in (
    "MaxSameIpSource", "MaxParallelConnections", "ListenQueueSize", "TcpRcvBufferSize",
    "TcpXmitBufferSize", "BindPort", "BindAddress", "BindSmtp", "BindSmtpS", "BindSubmit",
    "RcptLimitCount", "RcptLimitCnt", "Rcpt-Limit-Count", "DEBUGcmd", "no-DEBUGcmd",
    "EXPNcmd", "no-EXPNcmd", "VRFYcmd", "no-VRFYcmd", "NoEHLO", "EHLO-OK", "NoPIPELINING",
    "PIPELINING-OK", "No8BITMIME", "8BITMIME-OK", "NoCHUNKING", "CHUNKING-OK", "NoDSN",
    "DSN-OK", "NoETRN", "ETRN-OK", "NoENHANCEDSTATUSCODES", "NoENHANCEDSTATUS",
    "NoENCHANCEDSTATUSCODES", "NoENCHANCEDSTATUS", "ENHANCEDSTATUSCODES-OK",
    "ENHANCEDSTATUS-OK", "AUTH-LOGIN-also-without-TLS", "SMTP-auth-pipe", "MSA-mode",
    "tls-CAfile", "tls-CApath")}


def display(spelling: str) -> str:
    """The conventional spelling of a keyword (for the manual, samples, messages)."""
    return DISPLAY.get(spelling, spelling)


def man_section() -> str:
    """The manual page's PARAM list (groff), generated from the table.

    One ``.TP`` entry per setting: every spelling, the arguments, the scope and
    default, the doc line; keywords that have no effect say so.
    """
    out: list[str] = []
    for p in PARAMS:
        names = ", ".join(f"\\fB{display(s)}\\fR" for s in (p.name, *p.aliases))
        if p.negations:
            names += " / " + ", ".join(f"\\fB{display(s)}\\fR" for s in p.negations)
        head = names + (f" \\fI{p.args}\\fR" if p.args else "")
        scope = "global" if p.scope == GLOBAL else "per group"
        default = p.default
        if isinstance(default, bytes):
            default = default.decode("latin-1")
        tail = f" ({scope}; default {default!r})" if default not in (None, ()) else f" ({scope})"
        doc = p.doc + tail
        if not p.implemented:
            doc += f" Accepted with a warning: no effect ({p.note})."
        out += [".TP", head, doc.replace("\\", "\\\\").replace("-", "\\-")]
    return "\n".join(out) + "\n"
