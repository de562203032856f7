"""Reply formatting details, HELP, tarpit, the session log, style flags, LMTP,
line-end oddities, protocol markers (protocol.md §4.1, §4.4, §4.7.9, §4.12-§4.14, §6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit import TV02, Harness, cmds, crlf
from sessionkit import after_greeting as rest

pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def test_general_help(h: Harness) -> None:
    r = h.run(*cmds("HELP"))
    assert rest(r.output) == crlf(
        "214-Copyright 1990 Rayan S. Zachariassen",
        "214-Copyright 1991-2004 Matti Aarnio",
        "214-",
        "214-The following commands are recognized:",
        "214-    EHLO, HELO, MAIL, RCPT, DATA, BDAT, RSET, VRFY, EXPN",
        "214-    NOOP, QUIT, TURNME, ETRN, AUTH, VERB, ONEX, SEND, SOML",
        "214-    TURN, TICK, EMAL, ESND, ESOM, ESAM, EVFY, Z-IDENT, Z-DEBUG",
        "214-    Z-REPORT",
        "214-",
        "214-The normal sequence is: EHLO/HELO (MAIL RCPT+ DATA)+ QUIT.",
        "214-",
        "214-This mailer will always accept 8-bit and binary message data",
        "214-though you are better to use MIME format!",
        "214-",
        "214-For local information contact: postmaster@mx.example.org",
        "214 SMTP server comments and bug reports to: <zmhacks@nic.funet.fi>",
    )


def test_help_param_lines_and_topics(h: Harness) -> None:
    h.config_text += b"PARAM help Call +358 123\nPARAM help   (office hours)\n"
    r = h.run(*cmds("HELP", "HELP bdat", "HELP HELP", "HELP mail", "HELP SOML", "HELP VRFY"))
    out = rest(r.output)
    assert b"214-\r\n214-Call +358 123\r\n214-  (office hours)\r\n214-\r\n214-The following" in out
    # README: every reply has a final line (3.0.1 left HELP BDAT / HELP HELP open)
    assert out.endswith(crlf(
        "214-BDAT nnn [LAST]",
        '214     ESMTP "CHUNKING" service extension; See RFC 1830',
        "214-HELP [command]",
        "214     Reminder of what the SMTP command does.",
        "214-MAIL FROM:<sender> (ESMTP parameters)",
        "214-EMAL FROM:<sender>",
        "214-    Specify the originator address for the next message.",
        "214     Any address will be accepted here, but may be rejected later.",
        "214-SOML",
        "214     This command will never be implemented.",
        "214-VRFY <recipient>",
        "214-EVFY <recipient>",
        "214-    Prints the recipients for the given address.",
        "214     If the address is local, it is not expanded.",
    ))


def test_tarpit_sequence(h: Harness) -> None:
    h.values["tarpit"] = (20.0, 0.1, 300.0)
    r = h.run(*cmds("FOO", "FOO", "FOO", "FOO", "FOO", "NOOP"))
    assert h.slept == [20, 22, 24, 27, 29]
    assert r.output.endswith(crlf("250 2.0.0 Ok"))
    assert any(b"tarpit delay:0020 sec. at Mon, 6 Jan 2025 10:00:00 +0000" in ln for ln in r.log)
    assert any(b"tarpit with delay" in ln for ln in r.log)


def test_tarpit_stops_when_toplimit_below_initial(h: Harness) -> None:
    h.values["tarpit"] = (5.0, 1.0, 0.5)
    h.run(*cmds("FOO", "FOO", "FOO"))
    assert h.slept == [5]


def test_session_log_format(h: Harness) -> None:
    r = h.run(*cmds("NOOP", "QUIT"))
    assert r.log[0] == b"FKAADA50000w\t220 mx.example.org ZMailer Server 3.0.1 #1 ESMTP ready at Mon, 6 Jan 2025 10:00:00 +0000\n"
    assert r.log[1:] == [
        b"FKAADA50000r\tNOOP\n",
        b"FKAADA50000w\t250 2.0.0 Ok\n",
        b"FKAADA50000r\tQUIT\n",
        b"FKAADA50000w\t221 2.0.0 mx.example.org Out\n",
    ]


def test_session_log_file(h: Harness, tmp_path: Path) -> None:
    from zmailer_smtpd.sessionlog import SessionLog

    log = SessionLog(str(tmp_path / "smtp.log"), pid=12345, clock=lambda: 1736157600.0)
    log.note(b"connection from x")
    log.raw(b"-- policy result=0, msg: ")
    log.close()
    assert (tmp_path / "smtp.log").read_bytes() == (
        b"FKAADA50000#\t000-connection from x\nFKAADA50000#\t-- policy result=0, msg: \n"
    )
    master = SessionLog(str(tmp_path / "m.log"), master=True)
    master.note(b"started server")
    master.close()
    assert (tmp_path / "m.log").read_bytes() == b"00000000000#\t000-started server\n"


def test_no_multiline_replies(h: Harness) -> None:
    h.values["multiline-replies-ok"] = False
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<user@example.com.>"))
    assert rest(r.output) == TV02 + crlf(
        "501-5.1.7 Path data: Spurious dot (.) at the end of the domain name",
        "501 5.1.7 Hi [192.0.2.10], that was for input: <user@example.com.>",
    )


def test_no_enhanced_status_codes(h: Harness) -> None:
    h.values["enhancedstatuscodes-ok"] = False
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<user@example.com.>", "NOOP"))
    assert b"ENHANCEDSTATUSCODES" not in r.output
    assert rest(r.output).endswith(crlf(
        "501-" + " " * 23 + "^",
        "501-Path data: Spurious dot (.) at the end of the domain name",
        "501 Hi [192.0.2.10], that was for input: <user@example.com.>",
        "250 Ok",
    ))


def test_ehlo_feature_switches(h: Harness) -> None:
    h.values.update({
        "pipelining-ok": False, "chunking-ok": False, "8bitmime-ok": False, "dsn-ok": False,
        "etrn-ok": False, "deliverby": 3600, "rcptlimitcount": 500, "vrfycmd": True, "maxsize": 5000,
    })
    r = h.run(*cmds("EHLO client.example.net", "BDAT 1 LAST", "ETRN x.example"))
    assert rest(r.output) == crlf(
        "250-mx.example.org Hello client.example.net",
        "250-SIZE 5000",
        "250-ENHANCEDSTATUSCODES",
        "250-VRFY",
        "250-DELIVERBY 3600",
        "250-X-RCPTLIMIT 500",
        "250 HELP",
        "550 5.5.2 Unknown command 'BDAT 1 LAST'",
        "550 5.5.2 Unknown command 'ETRN x.example'",
    )


def test_ehlo_disabled(h: Harness) -> None:
    h.values["ehlo-ok"] = False
    r = h.run(*cmds("EHLO client.example.net", "HELO client.example.net"))
    assert rest(r.output) == crlf(
        "550 5.5.2 Unknown command 'EHLO client.example.net'", "250 mx.example.org Hello client.example.net"
    )


def test_helo_replaces_markers_and_guard_comes_back(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net", "HELO client.example.net"),
        crlf("MAIL FROM:<a@example.net>", "RCPT TO:<b@example.org>"),
    )
    assert rest(r.output).endswith(crlf(
        "250 mx.example.org Hello client.example.net",
        "550 5.7.1 HELLO [192.0.2.10], YOU ARE SENDING PIPELINED INPUT, BUT DIDN'T GREET PROPERLY WITH EHLO",
    ))


def test_tick_marks_bsmtp(h: Harness) -> None:
    r = h.run(*cmds("EHLO client.example.net", "TICK 1", "MAIL FROM:<a@example.net>", "RCPT TO:<b@example.org>",
                    "DATA"), crlf("x", "."))
    (data,) = r.files().values()
    assert b"\nwith BSMTP\n" in data


def test_localhost_rule_and_sloppy(h: Harness) -> None:
    h.peer_addr = "127.0.0.1"
    h.config_text = b"PARAM policydb btree /x\n127.0.0.1 -\n* ve\n"
    r = h.run(*cmds("MAIL FROM:<a@example.net>"))
    assert rest(r.output.replace(b"[127.0.0.1]", b"[192.0.2.10]")) == crlf("250 2.1.0 Sender syntax Ok; ")


def test_s_sloppy_bare_addresses(h: Harness) -> None:
    h.options["strict_protocol"] = -1
    r = h.run(*cmds("MAIL FROM: a@example.net", "RCPT TO: b@example.org"))
    assert rest(r.output) == crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<b@example.org>",
    )


def test_style_S_tolerates_blanks_and_brackets(h: Harness) -> None:
    h.config_text = b"PARAM policydb btree /x\n* veS\n"
    r = h.run(*cmds("HELO c.example", "MAIL FROM:<< a@example.net >", "RCPT TO:<b@example.org"))
    assert rest(r.output) == crlf(
        "250 mx.example.org Hello c.example",
        "250 2.1.0 Sender syntax Ok; ",
        "501-5.1.7" + " " * 13 + "^",
        "501 5.1.7 Missing ending '>' bracket: b@example.org",
    )


def test_custom_greeting_tags(h: Harness) -> None:
    h.config_text += b"PARAM hdr220 %H at %i port %p 100%% %Q%V\nPARAM hdr220 second line\n"
    r = h.run(*cmds("QUIT"))
    assert r.output == crlf(
        "220-mx.example.org at [192.0.2.10] port 25 100% 3.0.1 #1",
        "220 second line",
        "221 2.0.0 mx.example.org Out",
    )


def test_greeting_tag_edges(h: Harness) -> None:
    """%% is a literal % (the letter after it stays plain), a lone final % stays, %X goes."""
    h.config_text += b"PARAM hdr220 a%%H b%%%p%X c%\n"
    r = h.run(*cmds("QUIT"))
    assert r.output.split(b"\r\n")[0] == b"220 a%H b%25 c%"


def test_lmtp_interactive(h: Harness) -> None:
    h.mode, h.network, h.config_text = "interactive", False, b""
    h.values["lmtp-mode"] = True
    r = h.run(*cmds("HELO x", "LHLO x", "MAIL FROM:<a@example.net>", "RCPT TO:<b@example.org>",
                    "RCPT TO:<c@example.org>", "DATA"), crlf("x", "."))
    out = r.masked.split(b"\r\n", 1)[1]
    assert out.startswith(crlf("550 5.5.2 Unknown command 'HELO x'", "250 mx.example.org Hello x"))
    assert out.endswith(crlf("250 2.0.0 accepted; <spoolid>", "250 2.0.0 accepted; <spoolid>"))


@pytest.mark.parametrize(
    "sent,reply",
    [
        (b"QUIT", "500 5.5.2 Line not terminated with CRLF.."),  # the inverted 3.0.1 test, kept
        (b"NOOP", "250 2.0.0 Ok"),
        (b"A\rB\r\n", None),
    ],
)
def test_unterminated_lines(h: Harness, sent: bytes, reply: str | None) -> None:
    r = h.run(sent)
    if reply is None:
        assert rest(r.output) == crlf("500-5.5.2 ^", "500 5.5.2 Illegal input characters: Control chars on SMTP input")
    else:
        assert rest(r.output) == crlf(reply)


def test_overlong_line_is_executed_truncated(h: Harness) -> None:
    r = h.run(b"NOOP " + b"x" * 9000 + b"\r\n", *cmds("QUIT"))
    assert rest(r.output) == crlf("250 2.0.0 Ok", "221 2.0.0 mx.example.org Out")


def test_must_exit_ends_quietly(h: Harness) -> None:
    flag = {"n": 0}

    def must_exit() -> bool:
        flag["n"] += 1
        return flag["n"] > 2

    h.ctx_extra["must_exit"] = must_exit
    r = h.run(*cmds("NOOP", "NOOP", "NOOP"))
    assert rest(r.output) == crlf("250 2.0.0 Ok")


def test_verbose_echo_in_interactive_mode(h: Harness) -> None:
    echoed: list[bytes] = []
    h.mode, h.network, h.config_text = "interactive", False, b""
    h.options["verbose"] = True
    h.ctx_extra["out_of_band"] = echoed.append
    h.run(*cmds("NOOP", "QUIT"))
    assert echoed == [b"NOOP\n", b"QUIT\n"]
