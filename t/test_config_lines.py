"""smtpserver.conf line rules: classification, tokens, groups, bad lines (protocol.md §2)."""

from __future__ import annotations

import socket
from pathlib import Path

from zmailer_smtpd.config import (
    Config,
    Settings,
    config_from_bytes,
    load_config,
)
from zmailer_smtpd.zenv import ZEnv

Z = ZEnv.from_bytes(b"MAILVAR=/mv\nMAILSHARE=/ms\n")


def cfg(text: bytes, **kw: object) -> Config:
    return config_from_bytes(text, Z, path="test.conf", **kw)  # type: ignore[arg-type]


def test_missing_file_is_no_configuration(tmp_path: Path) -> None:
    c = load_config(str(tmp_path / "nope.conf"), Z)
    assert not c.read
    assert not c.configured
    assert c.errors == [] and c.warnings == []
    assert len(c.groups) == 1
    assert c.last_group().get("maxsize") == 0


def test_default_path_is_mailshare_progname(tmp_path: Path) -> None:
    (tmp_path / "smtpd-b.conf").write_bytes(b"PARAM maxsize 5\n")
    z = ZEnv.from_bytes(b"MAILSHARE=" + str(tmp_path).encode() + b"\n")
    c = load_config(None, z, progname="/usr/lib/zmailer/smtpd-b")
    assert c.path == f"{tmp_path}/smtpd-b.conf"
    assert c.last_group().get("maxsize") == 5


def test_comment_and_indented_lines_are_ignored() -> None:
    c = cfg(b"# PARAM maxsize 1\n  PARAM maxsize 2\n\tPARAM maxsize 3\n\n\r\n\x0bx y\n")
    assert c.last_group().get("maxsize") == 0
    assert not c.configured
    assert c.errors == []


def test_lower_case_param_is_a_pattern_line() -> None:
    c = cfg(b"param maxsize 100\n")
    assert c.last_group().get("maxsize") == 0
    assert c.configured
    assert c.patterns[0].pattern == b"param"
    assert c.patterns[0].flags == "maxsize 100"


def test_paramx_counts_as_param() -> None:
    c = cfg(b"PARAMX maxsize 7\n")
    assert c.last_group().get("maxsize") == 7
    assert not c.configured


def test_only_param_lines_is_not_configured() -> None:
    c = cfg(b"PARAM policydb btree /var/db/smtp-policy\n")
    assert not c.configured
    c2 = cfg(b"PARAM policydb btree /var/db/smtp-policy\n*       ve\n")
    assert c2.configured


def test_fixture_f0() -> None:
    c = cfg(b"PARAM policydb btree /var/db/smtp-policy\n*       ve\n")
    s = c.last_group()
    assert s.get("policydb") == ("btree", "/var/db/smtp-policy")
    p = c.find_pattern(b"client.example.net")
    assert p is not None and p.flags == "ve" and not p.reject and p.maxloadavg == 999


def test_extra_tokens_ignored_so_hash_note_works() -> None:
    c = cfg(b"PARAM maxsize 100 # note\n")
    assert c.last_group().get("maxsize") == 100
    assert c.errors == []


def test_keywords_case_insensitive() -> None:
    c = cfg(b"PARAM MAXSIZE 9\nPARAM noehlo\nPARAM RcPtLiMiTcOuNt 500\n")
    s = c.last_group()
    assert s.get("maxsize") == 9
    assert s.get("ehlo-ok") is False
    assert s.get("rcptlimitcount") == 500


def test_bad_keyword_named_with_file_and_line() -> None:
    c = cfg(b"# one\nPARAM maxsize 1\nPARAM no-such-thing 1\nPARAM maxsize\n")
    assert [(d.file, d.line) for d in c.errors] == [("test.conf", 3), ("test.conf", 4)]
    assert c.errors[0].message == (
        "Cfgfile 'test.conf' line 3 has bad PARAM keyword/missing parameters: 'no-such-thing'")
    assert c.errors[1].message == (
        "Cfgfile 'test.conf' line 4 has bad PARAM keyword/missing parameters: 'maxsize'")
    assert c.last_group().get("maxsize") == 1  # never fatal, the rest still applies


def test_seed_keywords_that_3_0_1_lacks_are_still_bad() -> None:
    c = cfg(b"PARAM smtpserver-cluster a b c\nPARAM policydb-submit btree /x\n"
            b"PARAM rcvd-tls-ccert\n")
    assert [d.line for d in c.errors] == [1, 2, 3]


def test_manual_spellings_accepted_decision() -> None:
    c = cfg(b"PARAM smtp-mechanisms PLAIN LOGIN\nPARAM NoENCHANCEDSTATUSCODES\n"
            b"PARAM no-smtp-auth-on-port-25\nPARAM SMTP-auth-pipe /bin/true\n")
    assert c.errors == []
    s = c.last_group()
    assert s.get("sasl-mechanisms") == b"PLAIN LOGIN"
    assert s.get("enhancedstatuscodes-ok") is False
    assert s.get("no-smtp-auth-on-25") is True
    assert s.get("smtp-auth-pipe") == "/bin/true"
    c2 = cfg(b"PARAM NoENCHANCEDSTATUS\n")
    assert c2.last_group().get("noenhancedstatuscodes") is True


def test_crlf_file_leaves_cr_in_last_token() -> None:
    c = cfg(b"PARAM policydb btree /var/db/p\r\n*  ve\r\nPARAM maxsize 10\r\n")
    s = c.last_group()
    assert s.get("policydb") == ("btree", "/var/db/p\r")
    assert s.get("maxsize") == 10
    assert c.patterns[0].flags == "ve\r"
    c2 = cfg(b"*\r\n")
    assert c2.configured and c2.find_pattern(b"x") is None


def test_long_line_truncated_at_1023_bytes_rest_discarded() -> None:
    long_help = b"PARAM help " + b"x" * 2000 + b"\nPARAM maxsize 3\n"
    c = cfg(long_help)
    s = c.last_group()
    assert s.get("help") == [b"x" * (1023 - len(b"PARAM help "))]
    assert s.get("maxsize") == 3
    # A line of exactly 1022 bytes plus newline is whole.
    line = b"PARAM help " + b"y" * (1022 - 11) + b"\n"
    assert cfg(line).last_group().get("help") == [b"y" * 1011]
    # The discarded rest is not a new line: line numbers continue.
    c3 = cfg(b"PARAM help " + b"z" * 3000 + b"\nPARAM bogus\n")
    assert c3.errors[0].line == 2


def test_rest_of_line_keywords_keep_everything_after_one_separator() -> None:
    c = cfg(b"PARAM help   two extra spaces $MAILVAR # kept\nPARAM help\n"
            b"PARAM hdr220 %H hello\nPARAM contact-pointer-message  See  $X\n"
            b"PARAM sasl-mechanisms PLAIN  LOGIN\n")
    s = c.last_group()
    assert s.get("help") == [b"  two extra spaces $MAILVAR # kept", b""]
    assert s.get("hdr220") == [b"%H hello"]
    assert s.get("contact-pointer-message") == b" See  $X"
    assert s.get("sasl-mechanisms") == b"PLAIN  LOGIN"


def test_help_max_41_lines_and_hdr220_max_5_overwrite_last() -> None:
    text = b"".join(b"PARAM help %d\n" % i for i in range(45))
    text += b"".join(b"PARAM hdr220 %d\n" % i for i in range(7))
    s = cfg(text).last_group()
    helps = s.get("help")
    assert len(helps) == 41 and helps[39] == b"39" and helps[40] == b"44"
    assert s.get("hdr220") == [b"0", b"1", b"2", b"3", b"6"]


def test_quoted_parameters() -> None:
    c = cfg(b'PARAM smtp-auth-username-prompt "User name:"\n'
            b"PARAM smtp-auth-password-prompt 'Pass word:' trailing\n"
            b'PARAM tls-cipher-list "HIGH:!aNULL\n')
    s = c.last_group()
    assert s.get("smtp-auth-username-prompt") == b"User name:"
    assert s.get("smtp-auth-password-prompt") == b"Pass word:"
    assert s.get("tls-cipher-list") == "HIGH:!aNULL"


def test_parameters_split_on_blanks_and_tabs() -> None:
    c = cfg(b"PARAM\tpolicydb\t  btree \t /db/x extra\n")
    assert c.last_group().get("policydb") == ("btree", "/db/x")


def test_groups_copy_default_group_without_binds() -> None:
    c = cfg(b"PARAM BindAddress [127.0.0.1]\nPARAM NoEHLO\nPARAM maxsize 10\n"
            b"PARAM newgroup\nPARAM BindSubmit [127.0.0.1]\nPARAM ehlo-ok\n"
            b"PARAM maxsize 20\nPARAM newgroup\nPARAM RcptLimitCount 200\n", ipv6=False)
    assert len(c.groups) == 3
    g0, g1, g2 = c.groups
    assert [b.kind for b in g0.get("binds")] == ["address"]
    assert [b.kind for b in g1.get("binds")] == ["submit"]
    assert g2.get("binds") == []
    assert g0.get("ehlo-ok") is False
    assert g1.get("ehlo-ok") is True
    assert g2.get("ehlo-ok") is False  # copied from the default group, not from group 1
    assert g2.get("rcptlimitcount") == 200 and g0.get("rcptlimitcount") == 10000
    # maxsize is global: the last value, seen from every group
    assert g0.get("maxsize") == g1.get("maxsize") == g2.get("maxsize") == 20
    assert c.last_group() is g2 and c.group(1) is g1
    assert [g.index for g in c.groups] == [0, 1, 2]


def test_numbers_like_c() -> None:
    c = cfg(b"PARAM maxsize 12abc\nPARAM max-unknown-commands junk\n"
            b"PARAM min-availspace 10\nPARAM RcptLimitCount 5\nPARAM auth-failrate 1\n"
            b"PARAM BindPort junk\nPARAM enable-router-maxpar 99\n")
    s = c.last_group()
    assert s.get("maxsize") == 12
    assert s.get("max-unknown-commands") == 10  # sscanf failed: unchanged
    assert s.get("min-availspace") == 1000
    assert s.get("rcptlimitcount") == 100
    assert s.get("auth-failrate") == 3
    assert s.get("bindport") == 0  # atoi
    assert s.get("bindport-set") is False
    assert s.get("enable-router-maxpar") == 20


def test_bindport_set_only_for_real_ports() -> None:
    assert cfg(b"PARAM BindPort 2525\n").last_group().get("bindport-set") is True
    assert cfg(b"PARAM BindPort 65535\n").last_group().get("bindport-set") is False
    assert cfg(b"PARAM BindPort 0\n").last_group().get("bindport-set") is False


def test_deliverby_and_tarpit() -> None:
    s = cfg(b"PARAM deliverby\n").last_group()
    assert s.get("deliverby") == 0
    assert cfg(b"PARAM deliverby 300\n").last_group().get("deliverby") == 300
    assert cfg(b"").last_group().get("deliverby") == -1
    c = cfg(b"PARAM tarpit 20 2 300\n")
    assert c.last_group().get("tarpit") == (20.0, 2.0, 300.0)
    assert cfg(b"PARAM tarpit 0.5 1.5 2.25\n").last_group().get("tarpit") == (0.5, 1.5, 2.25)
    bad = cfg(b"PARAM tarpit 1 2\n")
    assert bad.errors and bad.last_group().get("tarpit") == (0.0, 0.0, 0.0)


def test_policydb_needs_both_arguments() -> None:
    c = cfg(b"PARAM policydb btree\n")
    assert c.errors and c.last_group().get("policydb") is None


def test_tls_cert_and_key_default_each_other() -> None:
    s = cfg(b"PARAM tls-cert-file /c.pem\n").last_group()
    assert s.get("tls-key-file") == "/c.pem"
    s = cfg(b"PARAM tls-key-file /k.pem\nPARAM tls-cert-file /c.pem\n").last_group()
    assert (s.get("tls-cert-file"), s.get("tls-key-file")) == ("/c.pem", "/k.pem")
    s = cfg(b"PARAM tls-dkey-file /dk\n").last_group()
    assert s.get("tls-dcert-file") == "/dk"


def test_contentfilter_only_if_executable(tmp_path: Path) -> None:
    prog = tmp_path / "filter"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    c = cfg(b"PARAM contentfilter " + str(prog).encode() + b"\n")
    assert c.last_group().get("contentfilter") == str(prog)
    c2 = cfg(b"PARAM contentfilter " + str(plain).encode() + b"\n")
    assert c2.last_group().get("contentfilter") is None
    assert c2.warnings and c2.warnings[0].line == 1 and "not executable" in c2.warnings[0].message


def test_unimplemented_keyword_is_a_warning_with_file_and_line() -> None:
    c = cfg(b"PARAM maxsize 1\nPARAM tls-use-scache\nPARAM reject-percent-kludge\n")
    assert c.errors == []
    assert [(w.file, w.line) for w in c.warnings] == [("test.conf", 2), ("test.conf", 3)]
    assert "tls-use-scache" in c.warnings[0].message


def test_spf_threshold_bad_arg_message() -> None:
    c = cfg(b"PARAM spf-threshold sometimes\n")
    assert c.errors[0].message == (
        "Cfgfile 'test.conf' line 1 param spf-threshold has bad arg: 'sometimes'")
    assert cfg(b"PARAM spf-threshold SoftFail\n").last_group().get("spf-threshold") == "softfail"


def test_clusters_are_lists() -> None:
    text = b"".join(b"PARAM etrn-cluster n%d u p\n" % i for i in range(45))
    s = cfg(text).last_group()
    assert len(s.get("etrn-cluster")) == 40
    assert s.get("etrn-cluster")[0] == ("n0", "u", "p")
    assert cfg(b"PARAM etrn-cluster n u\n").errors


def test_binds_ipv6_and_ipv4() -> None:
    c = cfg(b"PARAM BindAddress any\nPARAM BindAddress any6\nPARAM BindSmtp [127.0.0.1] 2525\n"
            b"PARAM BindSmtpS [IPv6:::1]\nPARAM BindSubmit [ipv6.::1] 0\n"
            b"PARAM BindAddress iface:lo\n", ipv6=True)
    assert c.errors == []
    got = [(b.kind, b.family, b.addr, b.port) for b in c.last_group().get("binds")]
    assert got == [
        ("address", socket.AF_INET, "0.0.0.0", None),
        ("address", socket.AF_INET6, "::", None),
        ("smtp", socket.AF_INET, "127.0.0.1", 2525),
        ("smtps", socket.AF_INET6, "::1", 465),
        ("submit", socket.AF_INET6, "::1", 587),
        ("address", socket.AF_INET6, "::1", None),
        ("address", socket.AF_INET, "127.0.0.1", None),
    ]
    assert [b.kind for b in c.last_group().get("bindsmtp")] == ["smtp"]
    assert c.bind_keyword_seen


def test_bad_bind_specs() -> None:
    c = cfg(b"PARAM BindAddress 0.0.0.0\nPARAM BindAddress [300.1.1.1]\n"
            b"PARAM BindAddress iface:nosuchif0\n", ipv6=True)
    assert [d.line for d in c.errors] == [1, 2, 3]
    # On an IPv4-only system an IPv6 spec is silently ignored.
    c4 = cfg(b"PARAM BindAddress [IPv6:::1]\n", ipv6=False)
    assert c4.errors == [] and c4.last_group().get("binds") == []


def test_bindaddr_from_zenv_when_no_bind_keyword() -> None:
    z = ZEnv.from_bytes(b"BINDADDR=[127.0.0.1]\n")
    c = config_from_bytes(b"PARAM newgroup\n*  ve\n", z, ipv6=True)
    assert c.group(0).get("binds") == []
    assert [(b.kind, b.addr) for b in c.last_group().get("binds")] == [("address", "127.0.0.1")]
    c2 = config_from_bytes(b"PARAM BindSmtp any\n", z, ipv6=True)
    assert [b.addr for b in c2.last_group().get("binds")] == ["0.0.0.0"]
    bad = config_from_bytes(b"*  ve\n", ZEnv.from_bytes(b"BINDADDR=junk\n"))
    assert bad.warnings and bad.last_group().get("binds") == []


def test_bindaddr_needs_a_configuration_file(tmp_path: Path) -> None:
    z = ZEnv.from_bytes(b"BINDADDR=[127.0.0.1]\n")
    c = load_config(str(tmp_path / "none.conf"), z)
    assert c.last_group().get("binds") == []


def test_settings_api() -> None:
    s = Settings.from_values({"maxsize": 1000, "NoEHLO": True, "help": ["a", b"b"],
                              "policydb": ("btree", "/x"), "tarpit": (1, 2, 3)})
    assert s.get("maxsize") == 1000
    assert s["maxsize"] == 1000
    assert s.get("ehlo-ok") is False and s.get("noehlo") is True
    assert s.get("help") == [b"a", b"b"]
    assert s.get("policydb") == ("btree", "/x")
    assert s.get("tarpit") == (1.0, 2.0, 3.0)
    assert s.get("same-ip-source-parallel-max") == 100
    assert s.is_set("maxsize") and not s.is_set("rcptlimitcount")
    assert s.get("smtp-auth-username-prompt") == b"Username:"
    try:
        s.get("no-such-keyword")
    except KeyError:
        pass
    else:
        raise AssertionError("unknown names must raise KeyError")


def test_nul_first_byte_is_an_empty_pattern_line() -> None:
    c = cfg(b"\0PARAM maxsize 5\n")
    assert c.configured and c.patterns[0].pattern == b"" and c.patterns[0].flags == ""
    assert c.last_group().get("maxsize") == 0
    c2 = cfg(b"PARAM maxsize 5\0 junk\n")
    assert c2.last_group().get("maxsize") == 5
