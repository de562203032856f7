"""The PARAM table against protocol.md §2.5 and the spec README decisions."""

from __future__ import annotations

import pytest

from zmailer_smtpd import params as P
from zmailer_smtpd.config import Settings, config_from_bytes
from zmailer_smtpd.zenv import ZEnv

# Every keyword of protocol.md §2.5, as written there.
SPEC_KEYWORDS = """
MaxSameIpSource same-ip-source-parallel-max MaxParallelConnections max-parallel-connections
ListenQueueSize TcpRcvBufferSize TcpXmitBufferSize BindPort BindAddress BindSmtp BindSmtpS
BindSubmit maxsize min-availspace RcptLimitCount RcptLimitCnt Rcpt-Limit-Count
max-error-recipients max-unknown-commands sum-sizeoption-value allowsourceroute
reject-percent-kludge deliverby tarpit DEBUGcmd no-DEBUGcmd EXPNcmd no-EXPNcmd VRFYcmd
no-VRFYcmd NoEHLO EHLO-OK NoPIPELINING PIPELINING-OK No8BITMIME 8BITMIME-OK NoCHUNKING
CHUNKING-OK NoDSN DSN-OK NoETRN ETRN-OK NoENHANCEDSTATUSCODES NoENHANCEDSTATUS
ENHANCEDSTATUSCODES-OK ENHANCEDSTATUS-OK no-multiline-replies multiline-replies-ok
force-rcpt-notify-never no-force-rcpt-notify-never smtp-auth no-smtp-auth no-smtp-auth-on-25
smtp-auth-username-prompt smtp-auth-password-prompt auth-failrate AUTH-LOGIN-also-without-TLS
smtp-auth-sasl no-smtp-auth-sasl smtp-auth-pipe sasl-mechanisms MSA-mode use-tls no-use-tls
listen-ssmtp outlook-tls-bug tls-cert-file tls-key-file tls-dcert-file tls-dkey-file tls-dh1024
tls-dh512 tls-random-source tls-cipher-list tls-CAfile tls-CApath tls-loglevel tls-enforce-tls
tls-ccert-vd tls-ask-cert tls-require-cert tls-use-scache tls-scache-name tls-scache-timeout
report-auth-file lmtp-mode rcvd-ident no-rcvd-ident rcvd-whoson no-rcvd-whoson rcvd-auth-user
no-rcvd-auth-user rcvd-tls-mode no-rcvd-tls-mode rcvd-tls-peer no-rcvd-tls-peer enable-router
enable-router-maxpar policydb contentfilter contentfilter-maxpar debug-contentfilter perl-hook
use-tcp-wrapper etrn-cluster tracking-cluster spf-received spf-threshold spf-localpolicy
spf-whitelist-use-default help hdr220 contact-pointer-message newgroup
""".split()

# The manual page's spellings that spec/README.md decides to accept.
MANUAL_ALIASES = {
    "smtp-mechanisms": "sasl-mechanisms",
    "NoENCHANCEDSTATUS": "enhancedstatuscodes-ok",
    "NoENCHANCEDSTATUSCODES": "enhancedstatuscodes-ok",
    "no-smtp-auth-on-port-25": "no-smtp-auth-on-25",
    "SMTP-auth-pipe": "smtp-auth-pipe",
}

GLOBAL = {"maxsameipsource", "maxparallelconnections", "bindport", "maxsize", "min-availspace",
          "max-unknown-commands", "sum-sizeoption-value", "allowsourceroute",
          "reject-percent-kludge", "msa-mode", "lmtp-mode", "enable-router",
          "enable-router-maxpar", "contentfilter", "contentfilter-maxpar",
          "debug-contentfilter", "perl-hook", "etrn-cluster", "tracking-cluster", "help",
          "hdr220"}

ARGS = {P.INT: b" 5", P.ATOI: b" 5", P.STR: b" x", P.TEXT: b" x", P.REST: b" x y",
        P.RESTLIST: b" x y", P.EXEC: b" /bin/true", P.POLICYDB: b" btree /x",
        P.TARPIT: b" 1 2 3", P.DELIVERBY: b"", P.BIND: b" any", P.CLUSTER: b" a b c",
        P.ENUM: b" pass", P.BOOLWORD: b" true", P.FLAG: b"", P.NEWGROUP: b"",
        P.WORDS: b" 127.0.0.1 ::1"}
EXTENSIONS = {"session-timeout", "dns-nameservers", "child-max-sessions", "child-max-idle"}  # ours


@pytest.mark.parametrize("keyword", SPEC_KEYWORDS)
def test_every_spec_keyword_is_in_the_table(keyword: str) -> None:
    assert P.lookup(keyword) is not None, keyword


@pytest.mark.parametrize(("keyword", "canonical"), sorted(MANUAL_ALIASES.items()))
def test_manual_spellings_are_aliases(keyword: str, canonical: str) -> None:
    found = P.lookup(keyword)
    assert found is not None and found[0].name == canonical


def test_names_are_unique_lower_case_and_documented() -> None:
    seen: set[str] = set()
    for p in P.PARAMS:
        assert p.name == p.name.lower()
        assert p.scope in (P.GLOBAL, P.GROUP)
        assert p.doc
        for sp in p.spellings:
            assert sp == sp.lower()
            assert sp not in seen, sp
            seen.add(sp)
        if p.negations:
            assert p.syntax == P.FLAG
        if not p.implemented:
            assert p.note


def test_scopes_follow_the_spec() -> None:
    for p in P.PARAMS:
        if p.name in GLOBAL:
            assert p.scope == P.GLOBAL, p.name
        elif p.name not in EXTENSIONS:
            assert p.scope == P.GROUP, p.name


def test_defaults_of_the_spec() -> None:
    s = Settings.from_values()
    want = {"maxsameipsource": 100, "maxparallelconnections": 800, "listenqueuesize": 20000,
            "tcprcvbuffersize": 0, "tcpxmitbuffersize": 0, "maxsize": 0,
            "min-availspace": 5000, "rcptlimitcount": 10000, "max-error-recipients": 3,
            "max-unknown-commands": 10, "deliverby": -1, "tarpit": (0.0, 0.0, 0.0),
            "debugcmd": False, "expncmd": False, "vrfycmd": False, "ehlo-ok": True,
            "pipelining-ok": True, "8bitmime-ok": True, "chunking-ok": True, "dsn-ok": True,
            "etrn-ok": True, "enhancedstatuscodes-ok": True, "multiline-replies-ok": True,
            "smtp-auth": False, "use-tls": False, "tls-ccert-vd": 1,
            "smtp-auth-username-prompt": b"Username:",
            "smtp-auth-password-prompt": b"Password:", "policydb": None, "help": [],
            "hdr220": [], "binds": [], "lmtp-mode": False, "msa-mode": False}
    for k, v in want.items():
        assert s.get(k) == v, k


@pytest.mark.parametrize("param", P.PARAMS, ids=lambda p: p.name)
def test_every_spelling_parses_without_error(param: P.Param) -> None:
    for sp in param.spellings:
        c = config_from_bytes(b"PARAM " + sp.encode() + ARGS[param.syntax] + b"\n",
                              ZEnv.from_bytes(b""))
        assert c.errors == [], (sp, c.errors)
        assert bool(c.warnings) == (not param.implemented), (sp, c.warnings)


def test_negations_invert() -> None:
    z = ZEnv.from_bytes(b"")
    for p in P.PARAMS:
        for neg in p.negations:
            s = config_from_bytes(b"PARAM " + neg.encode() + b"\n", z).last_group()
            assert s.get(p.name) is False and s.get(neg) is True
            s2 = config_from_bytes(b"PARAM " + neg.encode() + b"\nPARAM " + p.name.encode()
                                   + b"\n", z).last_group()
            assert s2.get(p.name) is True


def test_global_keyword_visible_from_every_group() -> None:
    c = config_from_bytes(b"PARAM newgroup\nPARAM maxsize 42\nPARAM newgroup\n",
                          ZEnv.from_bytes(b""))
    assert [g.get("maxsize") for g in c.groups] == [42, 42, 42]


def test_extension_keywords() -> None:
    c = config_from_bytes(b"PARAM dns-nameservers 127.0.0.1:5353 [::1]:53\n"
                          b"PARAM session-timeout 60\n", ZEnv.from_bytes(b""))
    s = c.last_group()
    assert s.get("dns-nameservers") == "127.0.0.1:5353 [::1]:53"
    assert s.get("session-timeout") == 60
    assert Settings.from_values().get("session-timeout") == 3600
    c = config_from_bytes(b"PARAM child-max-sessions 0\nPARAM child-max-idle 5\n",
                          ZEnv.from_bytes(b""))
    assert c.last_group().get("child-max-sessions") == 1  # the minimum: one session per child
    assert c.last_group().get("child-max-idle") == 5
    d = Settings.from_values()
    assert (d.get("child-max-sessions"), d.get("child-max-idle")) == (1000, 60)


def test_display_spellings_are_keywords() -> None:
    for low, shown in P.DISPLAY.items():
        assert P.lookup(shown) is not None and low == shown.lower()


def test_man_section_names_every_spelling_and_renders_cleanly(tmp_path: object) -> None:
    import shutil
    import subprocess

    text = P.man_section()
    for p in P.PARAMS:
        for sp in p.spellings:
            assert f"\\fB{P.display(sp)}\\fR" in text, sp
    if shutil.which("groff") is None:  # pragma: no cover - groff is a test dependency
        return
    page = ".TH SMTPSERVER 8\n.SH PARAMS\n" + text
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page.encode(),
                       capture_output=True, timeout=60, check=False)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
