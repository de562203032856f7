"""Command line, start-up and mode dispatch (protocol.md §1, §3.3).

API::

    opts = parse_args(argv)      # argv[0] included; raises Exit(status) after printing
    rc = main(argv)              # the whole program: -V, --check-config, -I sub-*, -i, -n, daemon

Option letters and arguments are 3.0.1's getopt string
``?46aBC:d:ighl:np:tI:L:M:P:R:s:S:T:VvwZ:`` with glibc's rules: bundling,
attached or separate arguments, ``--`` ends the options, non-options are
permuted to the end and any left over is a usage error.  Two long options are
ours: ``--check-config`` and ``--foreground``.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from zmailer_smtpd import VERSION, VERSION_NUMB
from zmailer_smtpd.config import Config, load_config, policydb_status
from zmailer_smtpd.zenv import ZEnv, load_zenv

OPTSTRING = "?46aBC:d:ighl:np:tI:L:M:P:R:s:S:T:VvwZ:"
LONG_OPTIONS = ("check-config", "foreground")
USAGE = ("Usage: %s [-46aBignVvw] [-C cfgfile] [-s xx] [-L maxLoadAvg] [-M SMTPmaxsize]"
         " [-R rtrprog] [-p port#] [-P postoffice] [-l logfile] [-S 'local'|'remote']"
         " [-I pidfile] [-T test-net-addr] [-Z zenvfile]")
DEFAULT_PIDFILE = ".pid.smtpserver"
SUBDAEMONS = ("sub-router", "sub-ratetracker", "sub-contentfilter")
DEFAULT_STYLE = "ve"
DEFAULT_MAXLOADAVG = 999


class Exit(Exception):
    """Leave the program with this status (messages are already printed)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Options:
    """Everything the command line says (protocol.md §1.2); defaults are 3.0.1's."""

    argv0: str = "smtpserver"
    ipv4: bool = False  # -4: no IPv6 auto-detection
    ipv6: bool = False  # -6: force the IPv6 attempt
    ident: bool = False  # -a
    bsmtp: bool = False  # -B
    config_path: str | None = None  # -C
    debug: int = 0  # -d
    gullible: bool = False  # -g
    check_helo: bool = False  # -h (HELO syntax check, not help)
    interactive: bool = False  # -i
    pidfile: str = DEFAULT_PIDFILE  # -I (relative to POSTOFFICE)
    subdaemon: str | None = None  # -I sub-router / sub-ratetracker / sub-contentfilter
    logfile: str | None = None  # -l path
    log_syslog: bool = False  # -l SYSLOG
    maxloadavg: int = DEFAULT_MAXLOADAVG  # -L (< 1 becomes 10)
    maxsize: int = 0  # -M (negative becomes 0; PARAM maxsize beats it)
    inetd: bool = False  # -n
    port: int = 0  # -p (16 bits; 0 = default; PARAM BindPort beats it)
    postoffice: str | None = None  # -P
    router: str | None = None  # -R
    strict_protocol: int = 0  # -s strict: 1, -s sloppy: -1
    style: str = DEFAULT_STYLE  # -s other: the style flags
    log_suffix: str | None = None  # -S: "local" / "remote" (lower case), else None
    tls_on_connect: bool = False  # -t
    test_addr: str | None = None  # -T as written, e.g. "[192.0.2.1]"
    test_ip: str | None = None  # -T address without brackets, e.g. "192.0.2.1"
    test_family: int | None = None  # socket.AF_INET / AF_INET6 of -T
    verbose: bool = False  # -v
    whoson: bool = False  # -w
    zenv_path: str | None = None  # -Z
    zenv: ZEnv | None = field(default=None, repr=False)  # loaded when -Z is parsed
    check_config: bool = False  # --check-config
    foreground: bool = False  # --foreground: daemon without detaching

    @property
    def mode(self) -> str:
        """ "interactive" (-i beats -n), "inetd" or "daemon"."""
        if self.interactive:
            return "interactive"
        if self.inetd:
            return "inetd"
        return "daemon"

    @property
    def progname(self) -> str:
        """basename(argv[0]): names the default configuration file."""
        return os.path.basename(self.argv0) or "smtpserver"


# --------------------------------------------------------------------------
# getopt


def usage(argv0: str, err: TextIO | None = None) -> None:
    """The usage text of §1.1 on stderr."""
    print(USAGE % argv0, file=err or sys.stderr)


def _fail(argv0: str, message: str | None) -> Exit:
    if message is not None:
        print(message, file=sys.stderr)
    usage(argv0)
    return Exit(1)


def version_text() -> str:
    """The -V block of §1.2 with the project's identity."""
    pkgdir = os.path.dirname(os.path.abspath(__file__))
    return (f"ZMailer smtpserver ({VERSION})\n"
            f"  zmailer_smtpd@localhost:{pkgdir}\n"
            "Copyright 1992 Rayan S. Zachariassen\n"
            "Copyright 1992-2004 Matti Aarnio\n"
            f"Configured with command: '{VERSION_NUMB} (Python"
            f" {sys.version_info[0]}.{sys.version_info[1]})'\n")


def _c_atoi(text: str) -> int:
    """atoi()/atol(): leading blanks, sign, digits; 0 without digits."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = ""
    for ch in s:
        if not ("0" <= ch <= "9"):
            break
        digits += ch
    return sign * int(digits) if digits else 0


def parse_test_addr(arg: str) -> tuple[int, str]:
    """-T: (family, address) or ValueError with the 3.0.1 message."""
    low = arg.lower()
    if low[:6] in ("[ipv6 ", "[ipv6:", "[ipv6."):
        end = arg.find("]")
        body = arg[6:end] if end >= 0 else arg[6:]
        try:
            return socket.AF_INET6, socket.inet_ntop(socket.AF_INET6,
                                                     socket.inet_pton(socket.AF_INET6, body))
        except (OSError, ValueError):
            raise ValueError(
                f"smtpserver: -T option argument is not valid IPv6 address: {arg}") from None
    if arg.startswith("[") and "]" in arg:
        body = arg[1:arg.find("]")]
        try:
            return socket.AF_INET, socket.inet_ntop(socket.AF_INET,
                                                    socket.inet_pton(socket.AF_INET, body))
        except (OSError, ValueError):
            raise ValueError(
                f"smtpserver: -T option argument is not valid IPv4 address: {arg}") from None
    raise ValueError(f"smtpserver: -T option argument must be wrapped inside brackets: {arg}")


def _apply(opts: Options, letter: str, arg: str | None) -> None:
    """One option, in command-line order (later ones overwrite earlier ones)."""
    a = arg or ""
    if letter == "4":
        opts.ipv4 = True
    elif letter == "6":
        opts.ipv6 = True
    elif letter == "a":
        opts.ident = True
    elif letter == "B":
        opts.bsmtp = True
    elif letter == "C":
        opts.config_path = a
    elif letter == "d":
        opts.debug = _c_atoi(a)
    elif letter == "g":
        opts.gullible = True
    elif letter == "h":
        opts.check_helo = True
    elif letter == "i":
        opts.interactive = True
    elif letter == "I":
        if a in SUBDAEMONS:
            opts.subdaemon = a
        else:
            opts.pidfile = a
    elif letter == "l":
        if a == "SYSLOG":
            opts.log_syslog = True
        else:
            opts.logfile = a
    elif letter == "L":
        v = _c_atoi(a)
        opts.maxloadavg = 10 if v < 1 else v
    elif letter == "M":
        opts.maxsize = max(_c_atoi(a), 0)
    elif letter == "n":
        opts.inetd = True
    elif letter == "p":
        opts.port = _c_atoi(a) & 0xFFFF
    elif letter == "P":
        opts.postoffice = a
    elif letter == "R":
        opts.router = a
    elif letter == "s":
        if a == "strict":
            opts.strict_protocol = 1
        elif a == "sloppy":
            opts.strict_protocol = -1
        else:
            opts.style = a
    elif letter == "S":
        low = a.lower()
        opts.log_suffix = low if low in ("local", "remote") else None
    elif letter == "t":
        opts.tls_on_connect = True
    elif letter == "T":
        try:
            fam, ip = parse_test_addr(a)
        except ValueError as e:
            raise _fail(opts.argv0, str(e)) from None
        opts.test_addr, opts.test_ip, opts.test_family = a, ip, fam
    elif letter == "v":
        opts.verbose = True
    elif letter == "w":
        opts.whoson = True
    elif letter == "Z":
        try:
            opts.zenv = load_zenv(a)
        except OSError as e:
            raise _fail(opts.argv0, f"{opts.argv0}: open: {a}: {os.strerror(e.errno or 0)}") \
                from None
        opts.zenv_path = a


def parse_args(argv: list[str]) -> Options:
    """Parse the command line as 3.0.1's glibc getopt would; Exit(status) on -V or errors."""
    argv0 = argv[0] if argv else "smtpserver"
    opts = Options(argv0=argv0)
    takes_arg = {c for i, c in enumerate(OPTSTRING) if OPTSTRING[i + 1:i + 2] == ":"}
    letters = set(OPTSTRING.replace(":", ""))
    leftovers: list[str] = []
    posix = "POSIXLY_CORRECT" in os.environ
    i = 1
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            leftovers.extend(argv[i:])
            break
        if word.startswith("--"):
            name = word[2:]
            if name in LONG_OPTIONS:
                setattr(opts, name.replace("-", "_"), True)
                continue
            raise _fail(argv0, f"{argv0}: unrecognized option '{word}'")
        if not word.startswith("-") or word == "-":
            if posix:  # POSIXLY_CORRECT: the first non-option ends the options
                leftovers.extend(argv[i - 1:])
                break
            leftovers.append(word)  # glibc permutes non-options to the end
            continue
        j = 1
        while j < len(word):
            c = word[j]
            j += 1
            if c not in letters:
                raise _fail(argv0, f"{argv0}: invalid option -- '{c}'")
            if c == "?":
                raise _fail(argv0, None)
            if c == "V":
                sys.stderr.write(version_text())
                raise Exit(0)
            arg: str | None = None
            if c in takes_arg:
                if j < len(word):
                    arg = word[j:]
                elif i < len(argv):
                    arg = argv[i]
                    i += 1
                else:
                    raise _fail(argv0, f"{argv0}: option requires an argument -- '{c}'")
                j = len(word)
            _apply(opts, c, arg)
    if leftovers:
        raise _fail(argv0, None)
    return opts


# --------------------------------------------------------------------------
# start-up (§3.3)


def detect_ipv6(opts: Options) -> bool:
    """§3.3 step 5: -6 forces the attempt, -4 alone suppresses it; no socket, no IPv6."""
    if opts.ipv4 and not opts.ipv6:
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def settle_lmtp(opts: Options, cfg: Config) -> None:
    """§3.3 step 6: in daemon/inetd mode LMTP needs an explicit port other than 25."""
    s = cfg.last_group()
    if not s.get("lmtp-mode") or opts.mode == "interactive":
        return
    if s.get("bindport-set"):
        port, given = s.get("bindport") & 0xFFFF, True
    else:
        port, given = opts.port, opts.port != 0
    if not given or port in (0, 25):
        s.set("lmtp-mode", False)


def raise_nofile() -> None:
    """§3.3 step 7: the open-files limit up to its maximum."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        pass


def build_config(opts: Options, zenv: ZEnv) -> Config:
    """smtpserver.conf with the option/config precedence rules applied (§1.3, §3.3 6-9).

    -M counts unless PARAM maxsize is given; ZENV ALLOWSOURCEROUTE adds to
    PARAM allowsourceroute; lmtp-mode is dropped in daemon/inetd mode without
    an explicit port other than 25.  The daemon re-reads through this too.
    """
    cfg = load_config(opts.config_path, zenv, ipv6=detect_ipv6(opts), progname=opts.progname)
    settle_lmtp(opts, cfg)
    if zenv.has("ALLOWSOURCEROUTE"):
        cfg.last_group().set("allowsourceroute", True)
    if not cfg.last_group().is_set("maxsize") and opts.maxsize:
        cfg.last_group().set("maxsize", opts.maxsize)  # -M unless PARAM maxsize
    return cfg


def startup(opts: Options) -> tuple[ZEnv, Config]:
    """ZENV and the configuration (§3.3 steps 3-9)."""
    zenv = opts.zenv if opts.zenv is not None else load_zenv(None)
    return zenv, build_config(opts, zenv)


def check_config(opts: Options, out: TextIO | None = None) -> int:
    """--check-config: every diagnostic with file:line, policydb usability; 1 on errors."""
    out = out or sys.stdout
    try:
        zenv = opts.zenv if opts.zenv is not None else load_zenv(None)
    except OSError as e:  # pragma: no cover - load_zenv(None) does not raise
        print(f"{opts.argv0}: {e}", file=out)
        return 1
    print(f"zmailer.conf: {zenv.path}" + ("" if zenv.loaded else " (not readable: defaults)"),
          file=out)
    cfg = build_config(opts, zenv)
    bad = False
    if not cfg.read:
        print(f"{cfg.path}:0: warning: cannot be read: no configuration; network sessions"
              " will be answered 'not configured'", file=out)
    else:
        print(f"smtpserver.conf: {cfg.path}", file=out)
    for d in cfg.errors:
        print(f"{d.file}:{d.line}: error: {d.message}", file=out)
        bad = True
    for d in cfg.warnings:
        print(f"{d.file}:{d.line}: warning: {d.message}", file=out)
    if cfg.read and not cfg.configured:
        print(f"{cfg.path}:0: warning: no HELO pattern line: network sessions will be"
              " answered 'not configured'", file=out)
    for i, g in enumerate(cfg.groups):
        ok, why = policydb_status(g)
        print(f"{cfg.path}:0: {'info' if ok else 'error'}: group {i}: {why}", file=out)
        bad = bad or not ok
        if g.get("use-tls") or opts.tls_on_connect:
            from zmailer_smtpd import tls

            try:
                tls.ServerTLS(g)
            except tls.TLSError as e:
                print(f"{cfg.path}:0: error: group {i}: TLS cannot start: {e}", file=out)
                bad = True
    print(f"{len(cfg.groups)} group(s), {len(cfg.patterns)} pattern line(s), "
          f"{len(cfg.errors)} error(s), {len(cfg.warnings)} warning(s)", file=out)
    return 1 if bad else 0


def complete_context(ctx: Any, opts: Options, zenv: ZEnv) -> Any:
    """Fill the session facts every mode needs: host name, version, spool, policy, -v/-d.

    Shared by -i, -n and (if it wishes) the daemon child.  Host name and
    version are always set; spool, helpers, reverse DNS and policy only when
    the context does not have them yet.
    """
    from zmailer_smtpd.hostname import myhostname

    me = myhostname()
    ctx.myhostname = me.encode("utf-8", "surrogateescape")
    ctx.version = VERSION_NUMB.encode()
    ctx.version_full = VERSION.encode()
    settings = ctx.settings
    if ctx.out_of_band is None and ctx.mode == "interactive":
        def echo(data: bytes) -> None:
            try:
                os.write(1, data)
            except OSError:
                pass
        ctx.out_of_band = echo
    if ctx.spool is None:
        from zmailer_smtpd import spool

        postoffice = opts.postoffice or zenv.get("POSTOFFICE") or ""
        ctx.spool = spool.Spool(postoffice, zenv, hostname=me,
                                min_availspace_kib=int(settings.get("min-availspace")))
    wire_helpers(ctx, opts, zenv)
    if ctx.network and ctx.mode != "interactive" and ctx.peer_addr and ctx.rhost_flags is None:
        resolve_client(ctx)
    if ctx.local_addr:
        name_server_side(ctx)
    peer_lookups(ctx, opts)
    if ctx.network and ctx.policy is None:
        from zmailer_smtpd.policy.engine import make_session_policy

        debug = None
        if opts.debug >= 1 and ctx.mode != "daemon":
            def debug(text: str) -> None:
                # The session writes these on its stream after its pending
                # replies (Session.policy_trace); lines from before the
                # session wait in ctx.extra["debug_pending"].
                data = text.encode("latin-1", "replace")
                sink = ctx.extra.get("debug_sink")
                if sink is not None:
                    sink(data)
                else:
                    ctx.extra.setdefault("debug_pending", []).append(data)
        test_mode = bool(ctx.extra.get("test_addr"))
        client = b""
        if not test_mode and ctx.peer_addr:
            client = (f"[IPv6:{ctx.peer_addr}]" if ":" in ctx.peer_addr
                      else f"[{ctx.peer_addr}]").encode()
        w = ctx.extra.get("whoson")
        rate = None
        if ctx.mode == "daemon" and ctx.extra.get("ratetracker"):
            from zmailer_smtpd.ratetracker import TrackerClient

            rate = TrackerClient(ctx.extra["ratetracker"])
        ctx.policy = make_session_policy(settings, zenv, myhostname=ctx.myhostname,
                                         client_text=client, debug=debug,
                                         whoson=bool(getattr(w, "validated", False)), rate=rate)
    return ctx


def _same_addr(a: str, b: str) -> bool:
    import ipaddress

    if a == b and "%" not in a:  # the usual match, without two ipaddress objects
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)
        except OSError:
            return False
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def name_server_side(ctx: Any) -> None:
    """§4.2 step 3: ``myhostname`` becomes the name of the local socket address, if it has one.

    Every session, as 3.0.1: a server with several addresses greets with the
    name of the one the client reached.  Without a name (or without a
    socket, as in -i) the start-up name stays.
    """
    from zmailer_smtpd.dnsresolve import Resolver
    from zmailer_smtpd.hostsfile import SYSTEM as names

    resolver = Resolver.from_param(ctx.settings.get("dns-nameservers"))
    name = names.name_of(resolver, ctx.local_addr)
    if name:
        ctx.myhostname = name.encode("latin-1", "replace")


def resolve_client(ctx: Any) -> None:
    """setrhostname (§3.7 step 3): PTR name, its forward check (F1/F2), the F4 test.

    The PTR name is used even when the forward check fails; without one the
    session shows the address literal.  As 3.0.1's gethostbyaddr and
    getaddrinfo, these lookups ask /etc/hosts and DNS in nsswitch.conf's
    order (hostsfile.py); DNS goes through the one resolver (``PARAM
    dns-nameservers`` or /etc/resolv.conf).
    """
    from zmailer_smtpd import received
    from zmailer_smtpd.dnsresolve import Resolver, TempFail
    from zmailer_smtpd.hostsfile import SYSTEM as names

    addr = ctx.peer_addr
    v6 = ":" in addr
    resolver = Resolver.from_param(ctx.settings.get("dns-nameservers"))
    flags = received.RhostFlags()
    name = names.name_of(resolver, addr)
    if name:
        flags.rdns = "OK"
        ctx.rhostname = name.encode("latin-1", "replace")
        try:
            found = names.addresses_of(resolver, name, ipv6=v6)
        except TempFail:
            found = []
        if any(_same_addr(a, addr) for a in found):
            flags.fwd = "OK"
    else:
        flags.rdns = "FAIL"
    ctx.rhost_flags = flags

    def helo_resolves(arg: bytes) -> bool:
        try:
            found = names.addresses_of(resolver, arg.decode("latin-1"), ipv6=v6)
        except (TempFail, ValueError, UnicodeError):
            return False
        return any(_same_addr(a, addr) for a in found)

    if ctx.helo_resolves is None:
        ctx.helo_resolves = helo_resolves


def peer_lookups(ctx: Any, opts: Any) -> None:
    """ident (-a) and whoson (-w) of the client, after reverse DNS, before the greeting.

    interfaces.md §6.1/§6.2: ident is asked in daemon mode only (inetd
    stores IDENT-NOT-QUERIED, -i uid#N@localhost); whoson in daemon mode and
    in the -i -T test mode.  Both are bounded in time (ident 10 s, whoson
    5 s) and never fail the session: errors are stored as their texts.  The
    whoson server is ``PARAM whoson-server ADDR [PORT [tcp|udp]]`` (default
    127.0.0.1 9876 tcp), not libwhoson's /etc/whoson.conf.
    ``ctx.extra["ident_port"]`` moves the ident port (tests).
    """
    if not ctx.network or not ctx.peer_addr:
        return
    from zmailer_smtpd import ident

    def query() -> bytes:
        value = ident.lookup(ctx.local_addr or "", int(ctx.local_port), ctx.peer_addr,
                             int(ctx.peer_port),
                             port=int(ctx.extra.get("ident_port", ident.IDENT_PORT)))
        return value.encode("latin-1", "replace")[:ident.MAXHOSTNAMELEN]

    if ctx.peer_port >= 0:
        ctx.extra.setdefault("ident_query", query)  # Z-IDENT, always available
    if ctx.mode == "daemon" and getattr(opts, "ident", False) and ctx.ident is None:
        ctx.ident = query()
    test_mode = ctx.mode == "interactive" and getattr(opts, "test_ip", None) is not None
    if getattr(opts, "whoson", False) and (ctx.mode == "daemon" or test_mode) \
            and "whoson" not in ctx.extra:
        from zmailer_smtpd import whoson

        words = str(ctx.settings.get("whoson-server") or "").split()
        host, port, proto = (words + ["127.0.0.1", "9876", "tcp"][len(words):])[:3]
        try:
            server = (host, int(port))
        except ValueError:
            server = whoson.DEFAULT_SERVER
        ctx.extra["whoson"] = whoson.lookup(ctx.peer_addr, server=server,
                                            transport="udp" if proto.lower() == "udp" else "tcp")


def trusted_ids(zenv: ZEnv) -> tuple[int, int] | None:
    """ZENV TRUSTEDUSER (name or positive uid, default daemon) as (uid, gid); None if unknown."""
    import pwd

    who = zenv.get("TRUSTEDUSER") or "daemon"
    try:
        pw = pwd.getpwuid(int(who)) if who.isdigit() else pwd.getpwnam(who)
    except (KeyError, ValueError):
        return None
    return pw.pw_uid, pw.pw_gid


def wire_helpers(ctx: Any, opts: Options, zenv: ZEnv) -> None:
    """The per-session helper clients the settings ask for (router, filter, AUTH, TLS).

    Each client starts its program lazily, so building them costs nothing
    until a command needs one.  Fields already set are kept.
    """
    settings = ctx.settings

    def note(msg: str) -> None:
        if ctx.log is not None:
            ctx.log.note(msg.encode("latin-1", "replace"))

    literal = b""
    if ctx.mode != "interactive" and ctx.peer_addr:
        literal = (f"[IPv6:{ctx.peer_addr}]" if ":" in ctx.peer_addr
                   else f"[{ctx.peer_addr}]").encode()
    if ctx.router is None and settings.get("enable-router"):
        from zmailer_smtpd import router

        mailbin = zenv.get("MAILBIN") or ""
        ctx.router = router.RouterClient(
            opts.router or f"{mailbin}/router", zenv.get("ZCONFIG") or zenv.path, literal,
            log=note)
    if ctx.contentfilter is None and settings.get("contentfilter"):
        from zmailer_smtpd import contentfilter, helper

        ids = trusted_ids(zenv)
        ctx.contentfilter = contentfilter.ContentFilter(
            settings.get("contentfilter"), log=note,
            debug=bool(settings.get("debug-contentfilter")),
            cwd=opts.postoffice or zenv.get("POSTOFFICE"),
            preexec=helper.drop_to(*ids) if ids is not None and os.getuid() == 0 else None)
    if ctx.auth is None and settings.get("smtp-auth"):
        from zmailer_smtpd import auth

        ctx.auth = auth.Authenticator(settings, zenv=zenv, log=note)
    if ctx.tls is None and (settings.get("use-tls") or opts.tls_on_connect
                            or ctx.listener_kind == "smtps"):
        from zmailer_smtpd import tls

        try:
            ctx.tls = tls.ServerTLS(settings, note)
        except tls.TLSError as e:
            note(f"TLS is not available: {e}")


def _interactive_context(opts: Options, zenv: ZEnv, cfg: Config) -> tuple[Any, Any]:
    """§3.10: fd 0 in, fd 1 out; network-connected on a TCP socket or with -T."""
    from zmailer_smtpd import session, stream
    from zmailer_smtpd.sessionlog import SessionLog

    peer: str | None = None
    peer_port = -1
    local: str | None = None
    local_port = -1
    network = False
    sock = _socket_on(0)
    if sock is not None:
        network = True
        peer, peer_port = _addr(sock.getpeername())
        local, local_port = _addr(sock.getsockname())
        sock.close()
    elif opts.test_ip is not None:
        network = True
        peer = opts.test_ip
    log = SessionLog(opts.logfile, use_syslog=opts.log_syslog)
    ctx = session.SessionContext(
        options=opts, config=cfg, settings=cfg.last_group(), zenv=zenv, mode="interactive",
        network=network, peer_addr=peer, peer_port=peer_port, local_addr=local,
        local_port=local_port, log=log,
        extra={"test_addr": sock is None and opts.test_ip is not None},
    )
    ctx.ident = b"uid#%d@localhost" % os.getuid()
    complete_context(ctx, opts, zenv)
    return ctx, stream.FdTransport(0, 1)


def _inetd_context(opts: Options, zenv: ZEnv, cfg: Config) -> tuple[Any, Any]:
    """§3.9: the session on fd 0 (output to fd 0 when it is a socket, else fd 1)."""
    from zmailer_smtpd import session, stream
    from zmailer_smtpd.sessionlog import SessionLog

    sock = _socket_on(0)
    peer: str | None = None
    peer_port = -1
    local: str | None = None
    local_port = -1
    if sock is not None:
        peer, peer_port = _addr(sock.getpeername())
        local, local_port = _addr(sock.getsockname())
        sock.close()
    log = SessionLog(opts.logfile, use_syslog=opts.log_syslog)
    ctx = session.SessionContext(
        options=opts, config=cfg, settings=cfg.last_group(), zenv=zenv, mode="inetd",
        network=sock is not None, peer_addr=peer, peer_port=peer_port, local_addr=local,
        local_port=local_port, log=log,
    )
    ctx.ident = b"IDENT-NOT-QUERIED [port %d]" % peer_port  # -a is not honoured here (3.0.1)
    complete_context(ctx, opts, zenv)
    # §3.9: after client resolution, before the session (3.0.1 logs it connected or not)
    from zmailer_smtpd.received import rhostaddr_text

    rhostname = ctx.rhostname or rhostaddr_text(peer)  # as the session shows it
    log.note(b"connection from %s:%d on port %d pid %d ident: %s"
             % (rhostname, peer_port, local_port, os.getpid(), ctx.ident))
    return ctx, stream.FdTransport(0, 0 if sock is not None else 1)


def report_config(opts: Options, cfg: Config, log: Any, out: Any, *,
                  stderr: bool = False) -> None:
    """Configuration diagnostics at start-up: session log notes, -d lines, daemon stderr.

    3.0.1 only logs them; a daemon also says them on stderr before it detaches,
    so a typo in smtpserver.conf is seen when the daemon is started.
    """
    for d in [*cfg.errors, *cfg.warnings]:
        text = d.message if d.line else f"{d.file}: {d.message}"
        if log is not None:
            log.note(text.encode("latin-1", "replace"))
        if out is not None:
            out(b"000-" + text.encode("latin-1", "replace") + b"\r\n")
        if stderr:
            print(f"{opts.argv0}: {d.file}:{d.line}: {d.message}", file=sys.stderr)


def _socket_on(fd: int) -> socket.socket | None:
    """A connected IPv4/IPv6 TCP socket on `fd` (a dup of it), or None."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise OSError
        sock.getpeername()
    except OSError:
        sock.close()
        return None
    return sock


def _addr(sa: Any) -> tuple[str, int]:
    host, port = sa[0], sa[1]
    if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
        host = host[7:]  # an IPv4-mapped peer is an IPv4 client
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """The smtpserver program: returns the exit status."""
    if argv is None:
        argv = sys.argv
    try:
        opts = parse_args(list(argv))
    except Exit as e:
        return e.status
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if opts.check_config:
        return check_config(opts)
    try:
        from zmailer_smtpd.hostname import myhostname

        myhostname()
    except OSError as e:
        print(f"{opts.argv0}: gethostname(''): {e.strerror or e}", file=sys.stderr)
        return 1
    zenv, cfg = startup(opts)
    raise_nofile()
    if opts.subdaemon is not None:
        return 0  # decision Q5: nothing re-executes sub-daemons; accept and leave
    if opts.mode == "interactive":
        from zmailer_smtpd import session

        ctx, transport = _interactive_context(opts, zenv, cfg)
        report_config(opts, cfg, ctx.log, ctx.out_of_band if opts.debug >= 1 else None)
        return int(session.run_session(ctx, transport) or 0)
    if opts.mode == "inetd":
        from zmailer_smtpd import session

        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        ctx, transport = _inetd_context(opts, zenv, cfg)
        # -d: the diagnostics go on the SMTP stream with the other notes (§3.10)
        queue = ctx.extra.setdefault("debug_pending", []).append if opts.debug >= 1 else None
        report_config(opts, cfg, ctx.log, (lambda b: queue(b.rstrip(b"\r\n"))) if queue else None)
        return int(session.run_session(ctx, transport) or 0)
    report_config(opts, cfg, None, None, stderr=True)
    for i, g in enumerate(cfg.groups):
        ok, why = policydb_status(g)
        if not ok:
            print(f"{opts.argv0}: group {i}: {why}", file=sys.stderr)
    from zmailer_smtpd import server

    return int(server.run_daemon(opts, cfg, zenv, loader=lambda: build_config(opts, zenv)) or 0)
