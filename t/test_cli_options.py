"""Command-line parsing: every option of protocol.md §1.2 and the getopt rules of §1.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from zmailer_smtpd import VERSION
from zmailer_smtpd.cli import USAGE, Exit, Options, build_config, parse_args
from zmailer_smtpd.zenv import ZEnv

A0 = "smtpserver"


def parse(*args: str) -> Options:
    return parse_args([A0, *args])


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(Exit) as e:
        parse(*args)
    out, err = capsys.readouterr()
    return e.value.status, out, err


USAGE_LINE = USAGE % A0 + "\n"


def test_defaults() -> None:
    o = parse()
    assert o.mode == "daemon"
    assert (o.style, o.strict_protocol, o.pidfile, o.maxloadavg, o.maxsize, o.port) == (
        "ve", 0, ".pid.smtpserver", 999, 0, 0)
    assert o.config_path is None and o.logfile is None and not o.log_syslog
    assert o.test_addr is None and o.zenv is None


@pytest.mark.parametrize(("args", "field", "value"), [
    (["-4"], "ipv4", True),
    (["-6"], "ipv6", True),
    (["-a"], "ident", True),
    (["-B"], "bsmtp", True),
    (["-C", "/x.conf"], "config_path", "/x.conf"),
    (["-C/x.conf"], "config_path", "/x.conf"),
    (["-d", "3"], "debug", 3),
    (["-d3x"], "debug", 3),
    (["-dx"], "debug", 0),
    (["-g"], "gullible", True),
    (["-h"], "check_helo", True),
    (["-i"], "interactive", True),
    (["-I", "my.pid"], "pidfile", "my.pid"),
    (["-I", "/run/x.pid"], "pidfile", "/run/x.pid"),
    (["-I", "sub-router"], "subdaemon", "sub-router"),
    (["-I", "sub-ratetracker"], "subdaemon", "sub-ratetracker"),
    (["-I", "sub-contentfilter"], "subdaemon", "sub-contentfilter"),
    (["-l", "/var/log/smtp"], "logfile", "/var/log/smtp"),
    (["-l", "SYSLOG"], "log_syslog", True),
    (["-l", "syslog"], "logfile", "syslog"),  # exact upper-case match only
    (["-L", "5"], "maxloadavg", 5),
    (["-L", "0"], "maxloadavg", 10),
    (["-L", "x"], "maxloadavg", 10),
    (["-M", "1000"], "maxsize", 1000),
    (["-M", "-5"], "maxsize", 0),
    (["-n"], "inetd", True),
    (["-p", "2525"], "port", 2525),
    (["-p2525"], "port", 2525),
    (["-p", "70000"], "port", 70000 & 0xFFFF),
    (["-p", "smtp"], "port", 0),
    (["-P", "/po"], "postoffice", "/po"),
    (["-R", "/bin/router"], "router", "/bin/router"),
    (["-s", "strict"], "strict_protocol", 1),
    (["-s", "sloppy"], "strict_protocol", -1),
    (["-s", "Strict"], "style", "Strict"),  # exact, case-sensitive match
    (["-s", "veR"], "style", "veR"),
    (["-s", ""], "style", ""),
    (["-S", "local"], "log_suffix", "local"),
    (["-S", "REMOTE"], "log_suffix", "remote"),
    (["-S", "other"], "log_suffix", None),
    (["-t"], "tls_on_connect", True),
    (["-T", "[192.0.2.1]"], "test_ip", "192.0.2.1"),
    (["-T", "[IPv6:2001:db8::1]"], "test_ip", "2001:db8::1"),
    (["-T", "[ipv6 2001:DB8::1]"], "test_ip", "2001:db8::1"),
    (["-T", "[IPV6.::1]"], "test_family", socket.AF_INET6),
    (["-v"], "verbose", True),
    (["-w"], "whoson", True),
    (["--check-config"], "check_config", True),
    (["--foreground"], "foreground", True),
])
def test_option(args: list[str], field: str, value: object) -> None:
    assert getattr(parse(*args), field) == value


def test_bundling_and_attached_argument() -> None:
    o = parse("-igvp2525")
    assert o.interactive and o.gullible and o.verbose and o.port == 2525
    o = parse("-iC", "/c.conf", "-a")
    assert o.interactive and o.config_path == "/c.conf" and o.ident


def test_later_options_overwrite_earlier() -> None:
    o = parse("-p", "1", "-p", "2", "-s", "strict", "-s", "veR", "-l", "/a", "-l", "/b")
    assert o.port == 2 and o.strict_protocol == 1 and o.style == "veR" and o.logfile == "/b"
    o = parse("-l", "SYSLOG", "-l", "/a")
    assert o.log_syslog and o.logfile == "/a"
    o = parse("-l", "/a", "-l", "SYSLOG")
    assert o.log_syslog and o.logfile == "/a"


def test_i_beats_n() -> None:
    assert parse("-n", "-i").mode == "interactive"
    assert parse("-i", "-n").mode == "interactive"
    assert parse("-n").mode == "inetd"


def test_sub_daemon_values_are_not_pidfiles() -> None:
    o = parse("-I", "x.pid", "-I", "sub-router")
    assert o.pidfile == "x.pid" and o.subdaemon == "sub-router"


def test_argument_that_looks_like_an_option() -> None:
    assert parse("-C", "-i").config_path == "-i"
    assert parse("-C", "--").config_path == "--"


def test_double_dash_ends_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse("-i", "--").interactive
    status, _, err = fails(capsys, "--", "-i")
    assert status == 1 and err == USAGE_LINE


def test_leftover_argument_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = fails(capsys, "-i", "extra")
    assert (status, out, err) == (1, "", USAGE_LINE)
    status, _, err = fails(capsys, "-")
    assert status == 1 and err == USAGE_LINE


def test_options_after_a_non_option_still_count_glibc(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = fails(capsys, "extra", "-V")
    assert status == 0 and err.startswith("ZMailer smtpserver (")


def test_posixly_correct_stops_at_first_non_option(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSIXLY_CORRECT", "1")
    status, _, err = fails(capsys, "extra", "-V")
    assert status == 1 and err == USAGE_LINE


def test_invalid_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = fails(capsys, "-x")
    assert (status, out) == (1, "")
    assert err == f"{A0}: invalid option -- 'x'\n" + USAGE_LINE
    status, _, err = fails(capsys, "-ix")
    assert err == f"{A0}: invalid option -- 'x'\n" + USAGE_LINE
    status, _, err = fails(capsys, "-:")
    assert err == f"{A0}: invalid option -- ':'\n" + USAGE_LINE


@pytest.mark.parametrize("letter", list("CdlIpPRsSTLMZ"))
def test_missing_argument(capsys: pytest.CaptureFixture[str], letter: str) -> None:
    status, _, err = fails(capsys, "-" + letter)
    assert status == 1
    assert err == f"{A0}: option requires an argument -- '{letter}'\n" + USAGE_LINE


def test_question_mark_gives_usage_only(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = fails(capsys, "-?")
    assert (status, out, err) == (1, "", USAGE_LINE)
    status, _, err = fails(capsys, "-i?V")  # processing stops at the first ?
    assert (status, err) == (1, USAGE_LINE)


def test_unknown_long_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = fails(capsys, "--help-me")
    assert status == 1 and err == f"{A0}: unrecognized option '--help-me'\n" + USAGE_LINE


def test_usage_text_exact() -> None:
    assert USAGE % "smtpserver" == (
        "Usage: smtpserver [-46aBignVvw] [-C cfgfile] [-s xx] [-L maxLoadAvg] "
        "[-M SMTPmaxsize] [-R rtrprog] [-p port#] [-P postoffice] [-l logfile] "
        "[-S 'local'|'remote'] [-I pidfile] [-T test-net-addr] [-Z zenvfile]")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = fails(capsys, "-V")
    assert status == 0 and out == ""
    lines = err.split("\n")
    assert lines[0] == f"ZMailer smtpserver ({VERSION})"
    assert lines[1].startswith("  ") and "@" in lines[1] and ":" in lines[1]
    assert lines[2] == "Copyright 1992 Rayan S. Zachariassen"
    assert lines[3] == "Copyright 1992-2004 Matti Aarnio"
    assert lines[4].startswith("Configured with command: '") and lines[4].endswith("'")
    assert lines[5] == ""


def test_version_stops_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = fails(capsys, "-V", "-x", "extra")
    assert status == 0
    status, _, _ = fails(capsys, "-x", "-V")
    assert status == 1


@pytest.mark.parametrize(("arg", "message"), [
    ("[ipv6.hhhh:hhhh:hhhh:hhhh:hhhh:hhhh:1.2.3.4]",
     "smtpserver: -T option argument is not valid IPv6 address: "
     "[ipv6.hhhh:hhhh:hhhh:hhhh:hhhh:hhhh:1.2.3.4]"),
    ("[1.2.3.400]", "smtpserver: -T option argument is not valid IPv4 address: [1.2.3.400]"),
    ("[2001:db8::1]",
     "smtpserver: -T option argument is not valid IPv4 address: [2001:db8::1]"),
    ("1.2.3.4", "smtpserver: -T option argument must be wrapped inside brackets: 1.2.3.4"),
    ("[1.2.3.4", "smtpserver: -T option argument must be wrapped inside brackets: [1.2.3.4"),
])
def test_dash_t_errors(capsys: pytest.CaptureFixture[str], arg: str, message: str) -> None:
    with pytest.raises(Exit) as e:
        parse_args(["/usr/lib/zmailer/smtpserver", "-T", arg])
    _, err = capsys.readouterr()
    assert e.value.status == 1
    # The word "smtpserver" is literal; the usage line names argv[0].
    assert err == message + "\n" + USAGE % "/usr/lib/zmailer/smtpserver" + "\n"


def test_dash_z_is_read_when_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "z.conf"
    f.write_bytes(b"MAILSHARE=/ms\n")
    o = parse("-Z", str(f))
    assert o.zenv_path == str(f) and o.zenv is not None and o.zenv.get("MAILSHARE") == "/ms"
    missing = str(tmp_path / "missing.conf")
    status, _, err = fails(capsys, "-Z", missing)
    assert status == 1
    assert err == f"{A0}: open: {missing}: No such file or directory\n" + USAGE_LINE
    # An error in -Z comes before a later -V.
    status, _, _ = fails(capsys, "-Z", missing, "-V")
    assert status == 1


# ---- options against the configuration (§1.3) ----------------------------------------


def conf(tmp_path: Path, text: bytes, *args: str, zenv: bytes = b"") -> tuple[Options, object]:
    c = tmp_path / "s.conf"
    c.write_bytes(text)
    o = parse("-C", str(c), *args)
    return o, build_config(o, ZEnv.from_bytes(zenv))


def test_param_maxsize_beats_dash_m(tmp_path: Path) -> None:
    _, cfg = conf(tmp_path, b"PARAM maxsize 100\n", "-M", "5000")
    assert cfg.last_group().get("maxsize") == 100  # type: ignore[attr-defined]
    _, cfg = conf(tmp_path, b"*  ve\n", "-M", "5000")
    assert cfg.last_group().get("maxsize") == 5000  # type: ignore[attr-defined]


def test_allowsourceroute_from_zenv(tmp_path: Path) -> None:
    _, cfg = conf(tmp_path, b"", zenv=b"ALLOWSOURCEROUTE=\n")
    assert cfg.last_group().get("allowsourceroute") is True  # type: ignore[attr-defined]
    _, cfg = conf(tmp_path, b"")
    assert cfg.last_group().get("allowsourceroute") is False  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "args", "lmtp"), [
    (b"PARAM lmtp-mode\n", [], False),
    (b"PARAM lmtp-mode\n", ["-p", "2525"], True),
    (b"PARAM lmtp-mode\n", ["-p", "25"], False),
    (b"PARAM lmtp-mode\n", ["-n", "-p", "24"], True),
    (b"PARAM lmtp-mode\nPARAM BindPort 2424\n", [], True),
    (b"PARAM lmtp-mode\nPARAM BindPort 25\n", ["-p", "2525"], False),
    (b"PARAM lmtp-mode\n", ["-i"], True),
])
def test_lmtp_needs_explicit_port(tmp_path: Path, text: bytes, args: list[str],
                                  lmtp: bool) -> None:
    _, cfg = conf(tmp_path, text, *args)
    assert cfg.last_group().get("lmtp-mode") is lmtp  # type: ignore[attr-defined]
