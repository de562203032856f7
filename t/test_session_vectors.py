"""protocol.md §8 test vectors TV-01 … TV-32 as in-memory transcripts (fixture F0).

Where spec/README.md decides against 3.0.1, the test asserts the decision and
says so (TV-05 "(null)", TV-12 guard reply, TV-14 trailing blank, TV-27 final line).
TV-26 (MaxSameIpSource refusal) happens in the daemon parent: test_daemon_*.
"""

from __future__ import annotations

import os

import pytest
from sessionkit import F0_GREETING, TV02, Harness, cmds, crlf
from sessionkit import after_greeting as body

from zmailer_smtpd import replies as R

pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def test_tv01_greeting_quit(h: Harness) -> None:
    r = h.run(*cmds("QUIT"))
    assert r.output == F0_GREETING + crlf("221 2.0.0 mx.example.org Out")
    assert r.rc == 0


def test_tv02_ehlo_capabilities(h: Harness) -> None:
    r = h.run(*cmds("EHLO client.example.net"))
    assert body(r.output) == TV02


def test_tv03_complete_transaction(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA"),
        crlf("Subject: test", "", "Hello.", "."),
        *cmds("QUIT"),
    )
    assert body(r.masked) == TV02 + crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 accepted; <spoolid>",
        "221 2.0.0 mx.example.org Out",
    )
    files = r.files()
    assert len(files) == 1
    (name, data), = files.items()
    assert name.startswith("router/")
    assert data.endswith(b"env-end\nSubject: test\n\nHello.\n")
    sid = r.output.split(b"accepted; ")[1].split(b"\r\n")[0]
    assert sid.startswith(b"S" + name.split("/")[1].encode())


def test_tv04_greeting_required(h: Harness) -> None:
    r = h.run(*cmds("MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA", "NOOP"))
    assert body(r.output) == crlf(
        "503 5.5.1 Hello [192.0.2.10], Waiting for HELO/EHLO command",
        "503 5.5.1 Hello [192.0.2.10], Waiting for HELO command",
        "503 5.5.2 Hi [192.0.2.10], Waiting for HELO command",
        "250 2.0.0 Ok",
    )


def test_tv05_sequence_errors_poisoned_transaction(h: Harness) -> None:
    r = h.run(*cmds(
        "HELO client.example.net", "RCPT TO:<bob@example.org>", "DATA",
        "MAIL FROM:<alice@example.net>", "MAIL FROM:<carol@example.net>",
        "RCPT TO:<bob@example.org>", "MAIL FROM:<carol@example.net>", "DATA",
        "RCPT TO:<x@example.org>",
    ))
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "503 5.5.1 Hello [192.0.2.10], Waiting for MAIL command",
        "503 5.5.2 Hi [192.0.2.10], Waiting for MAIL command",
        "250 2.1.0 Sender syntax Ok; ",
        "503 5.5.1 Hello [192.0.2.10], Waiting for RCPT command",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
        # README: no "(null)" on the wire (3.0.1: "Hello [192.0.2.10], (null)")
        "503 5.5.1 Hello [192.0.2.10], Nested MAIL command",
        "550 5.1.7 No valid sender, rejecting all recipients",
        # README Q3: the refused DATA left a clean state, no crash on RCPT
        "503 5.5.1 Hello [192.0.2.10], Waiting for MAIL command",
    )
    assert b"(null)" not in r.output
    assert r.files() == {}


def test_tv06_helo_versus_ptr(h: Harness) -> None:
    h.peer_addr = "192.0.2.20"
    h.rhostname = b"client.example.net"
    r = h.run(*cmds("HELO foo.example", "ehlo CLIENT.example.NET"))
    assert body(r.output.replace(b"[192.0.2.20]", b"[192.0.2.10]")) == crlf(
        '250 mx.example.org expected "HELO client.example.net"',
    ) + TV02.replace(b"Hello client.example.net", b"Hello CLIENT.example.NET")


def test_tv07_mail_syntax_caret(h: Harness) -> None:
    r = h.run(*cmds(
        "EHLO client.example.net", "MAIL FROM:<user@example.com.>", "MAIL FROM:<alice@example.net>>",
        "MAIL FROM:<<alice@example.net>", "MAIL TO:<alice@example.net>",
    ))
    assert body(r.output) == TV02 + crlf(
        "501-5.1.7" + " " * 18 + "^",
        "501-5.1.7 Path data: Spurious dot (.) at the end of the domain name",
        "501 5.1.7 Hi [192.0.2.10], that was for input: <user@example.com.>",
        "501 5.1.7 Hi [192.0.2.10], there are too many >'s in this: <<alice@example.net>>",
        "501 5.1.7 there are too many <'s in this: <<alice@example.net>",
        "501 5.5.2 Hello [192.0.2.10], where is From: in that?",
    )
    caret = crlf("501-5.1.7" + " " * 18 + "^")
    assert body(r.output)[len(TV02):].index(b"^") == 27  # column 27, under the final "."
    assert caret


def test_tv08_rcpt_syntax(h: Harness) -> None:
    r = h.run(*cmds(
        "EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<user:x@example.com>",
        "RCPT TO:<>", "RCPT TO:bob@example.org",
    ))
    assert body(r.output) == TV02 + crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "501-5.1.3    ^",
        "501 5.1.3 Path data: Perhaps this should have been a dot (.) instead of colon (:) ?",
        "501 5.1.3 Null address valid only as source: <>",
        "501 5.1.3 where is <...> in this?  bob@example.org",
    )


def test_tv09_unknown_and_disabled(h: Harness) -> None:
    r = h.run(*cmds("FOO bar", "", "VRFY bob", "DEBUG", "STARTTLS", "550 5.7.1 stray reply text", "NOOP"))
    assert body(r.output) == crlf(
        "550 5.5.2 Unknown command 'FOO bar'",
        "550 5.5.2 Unknown command ''",
        "550 5.5.2 Unknown command 'VRFY bob'",
        "550 5.5.2 Unknown command 'DEBUG'",
        "502 5.4.0 Command not implemented",
        "250 2.0.0 Ok",
    )


def test_tv10_unknown_command_limit(h: Harness) -> None:
    h.values["max-unknown-commands"] = 3
    r = h.run(*cmds("FOO", "AUTH LOGIN", "BAR baz", "NOOP"))
    assert body(r.output) == crlf(
        "550 5.5.2 Unknown command 'FOO'",
        "550 5.5.2 Unknown command 'AUTH LOGIN'",
        "550 5.5.2 Hi [192.0.2.10], One too many unknown command 'BAR baz'",
    )
    assert r.session.ended


def test_tv11_illegal_bytes(h: Harness) -> None:
    r = h.run(b"MAIL FROM:<j\xf6rg@example.net>\r\n", b"NO\x00OP\r\n", b"HELO caf\xe9.example\r\n")
    assert body(r.output) == (
        b"500-5.5.2   ^\r\n"
        b"500 5.5.2 Illegal input characters: 8-bit char on SMTP input\r\n"
        b"500-5.5.2 ^\r\n"
        b"500 5.5.2 Illegal input characters: NUL on SMTP input\r\n"
        b"250 mx.example.org Hello caf\xe9.example\r\n"
    )


@pytest.mark.parametrize("first", ["HELO", "EHLO"])
def test_tv12_pipelining_before_ehlo(h: Harness, first: str) -> None:
    r = h.run(crlf(f"{first} client.example.net", "MAIL FROM:<alice@example.net>"), *cmds("NOOP"))
    guard = b"550 5.7.1 HELLO [192.0.2.10], YOU ARE SENDING PIPELINED INPUT, BUT DIDN'T GREET PROPERLY WITH EHLO"
    # README decision: the 550 is sent (flushed) before the close; 3.0.1 only logged it
    assert body(r.output) == guard + b"\r\n"
    assert any(guard in ln for ln in r.log)
    assert any(b"-- pipeline input exists" in ln for ln in r.log)
    assert r.session.ended


def test_tv13_pipelining_after_ehlo(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net"),
        crlf("MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "RCPT TO:<>", "DATA"),
        crlf("x", "."),
    )
    four = crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
        "501 5.1.3 Null address valid only as source: <>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
    )
    assert four in r.sends  # the four replies leave in one write, released by the 354
    assert body(r.masked).startswith(TV02 + four + crlf("250 2.0.0 accepted; <spoolid>"))


def test_tv14_mail_parameters(h: Harness) -> None:
    r = h.run(*cmds(
        "EHLO client.example.net",
        "MAIL FROM:<alice@example.net> FOO=BAR",
        "MAIL FROM:<alice@example.net> SIZE=12x",
        "MAIL FROM:<alice@example.net> SIZE=100 SIZE=200",
        "MAIL FROM:<alice@example.net> BODY=8BIT",
        "MAIL FROM:<alice@example.net> ENVID=a=b",
        "MAIL FROM:<alice@example.net> BODY=8BITMIME SIZE=100 RET=HDRS ENVID=abc+2Bdef",
    ))
    assert body(r.output) == TV02 + crlf(
        "501 5.5.4 Unknown MAIL FROM:<> parameter: FOO=BAR",
        "501 5.5.4 SIZE-param data error",
        "501 5.5.4 SIZE-param double definition!",
        "501 5.5.4 BODY-param data error, must be one of: 8BITMIME/BINARYMIME/7BIT",
        "501-5.5.4" + " " * 28 + "^",
        "501-5.5.4 Invalid ENVID value 'a=b'",
        "501 5.5.4 ENVID data contains illegal characters!",
        "250 2.1.0 Sender syntax Ok; ",
    )


def test_tv14_trailing_blank_decision(h: Harness) -> None:
    # README: trailing blanks are stripped on CR LF lines too (3.0.1: "parameter: ").
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net> "))
    assert body(r.output) == TV02 + crlf("250 2.1.0 Sender syntax Ok; ")


def test_tv14_trailing_blank_strict(h: Harness) -> None:
    # ... except under -s strict, where 3.0.1's reply stays.
    h.options["strict_protocol"] = 1
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net> "))
    assert body(r.output) == TV02 + crlf("501 5.5.4 Unknown MAIL FROM:<> parameter: ")


def test_tv15_size_limit(h: Harness) -> None:
    h.values["maxsize"] = 1000000
    r = h.run(*cmds(
        "EHLO client.example.net", "MAIL FROM:<alice@example.net> SIZE=2000000",
        "MAIL FROM:<alice@example.net> SIZE=500", "RCPT TO:<bob@example.org>",
    ))
    assert body(r.output) == TV02.replace(b"SIZE 0", b"SIZE 1000000") + crlf(
        "552 5.3.4 This message is larger, than our maximum acceptable incoming message size of  1000000  chars.",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Ok; can accomodate 500 byte message for <bob@example.org>",
    )


def test_tv16_rcpt_parameters(h: Harness) -> None:
    r = h.run(*cmds(
        "EHLO client.example.net", "MAIL FROM:<alice@example.net>",
        "RCPT TO:<bob@example.org> NOTIFY=SOMETIMES", "RCPT TO:<bob@example.org> FOO=1",
        "RCPT TO:<bob@example.org> ORCPT=rfc822;b+ZZ@x",
        "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org",
    ))
    assert body(r.output) == TV02 + crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "455 4.5.4 NOTIFY-param data error",
        "555 5.5.4 Unknown RCPT TO:<> parameter: FOO=1",
        "501-4.5.4" + " " * 32 + "^",
        "501-4.5.4 Invalid ORCPT value 'ORCPT=rfc822;b+ZZ@x'",
        "501 4.5.4 ORCPT-param data error!",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
    )


def test_tv17_empty_sender_limit(h: Harness) -> None:
    r = h.run(*cmds(
        "HELO client.example.net", "MAIL FROM:<>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>",
        "RCPT TO:<c@example.org>", "RCPT TO:<d@example.org>", "DATA", "MAIL FROM:<alice@example.net>",
    ))
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<a@example.org>",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<b@example.org>",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<c@example.org>",
        "552 5.7.1 SPAM trap -- too many recipients for an empty source address!",
        "550 5.7.1 SPAM trap -- too many recipients for an empty source address!",
        "250 2.1.0 Sender syntax Ok; ",
    )
    # the DATA refusal discarded the first file; only the new MAIL's file is open
    assert len(r.files()) == 0


def test_tv18_rset_noop_help(h: Harness) -> None:
    r = h.run(*cmds(
        "HELO client.example.net", "MAIL FROM:<alice@example.net>", "RSET", "NOOP", "HELP DATA", "HELP RSET",
    ))
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.0.0 Reset processed, now waiting for MAIL command",
        "250 2.0.0 Ok",
        "214-DATA",
        "214-    Start collecting the message itself.  The text data",
        "214     is terminated by a <CRLF>.<CRLF> combination.",
        "214-RSET",
        "214-    Reset the state of the SMTP server to be ready for",
        "214-    the next message, and abort any current transaction.",
        "214-",
        '214 The current state is: Waiting for "MAIL" or "EHLO"/"HELO" command.',
    )


def test_tv19_etrn(h: Harness) -> None:
    os.mkdir(os.path.join(h.postoffice, "transport"))
    r = h.run(*cmds("ETRN", "ETRN @example.org", "ETRN example.org"))
    assert body(r.output) == crlf(
        "552 5.0.0 ETRN needs target domain name parameter.",
        "458 5.7.1 Sorry, only literal target domains accepted",
        "250-2.0.0 An ETRN request is initiated - lets hope the system",
        "250-2.0.0 has resources to honour it. We call the remote,",
        "250 2.0.0 if we have anything to send there.",
    )
    names = os.listdir(os.path.join(h.postoffice, "transport"))
    assert len(names) == 1 and names[0].endswith("-etrn")
    with open(os.path.join(h.postoffice, "transport", names[0]), "rb") as f:
        assert f.read() == b"T example.org [192.0.2.10]\n"


def test_tv20_legacy_verbs(h: Harness) -> None:
    r = h.run(*cmds("TURN", "ONEX", "TICK 42", "VERB", "HELO client.example.net", "SEND FROM:<alice@example.net>"))
    out = body(r.output)
    assert out.startswith(crlf(
        "502 5.5.1 Command not implemented", "250 2.0.0 Ok", "250 2.0.0 TICK 42",
    ) + b"250-2.0.0 ZMailer SMTP server 3.0.1 #1: ")
    assert out.endswith(crlf(
        "250-2.0.0 Copyright 1990 Rayan S. Zachariassen",
        "250 2.0.0 Copyright 1991-2004 Matti Aarnio",
        "250 mx.example.org Hello client.example.net",
        "250 2.1.0 Sender syntax Ok; ",
    ))


def test_tv21_bdat(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"),
        b"BDAT 12\r\nSubject: x\r\n",
        b"BDAT 7 LAST\r\n\r\nHi!\r\n",
        b"BDAT 5\r\nhello",
        *cmds("BDAT five"),
    )
    out = body(r.masked)
    assert out.startswith(TV02 + crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
        "250 2.0.0 Received 12 bytes",
    ))
    (name, data), = r.files().items()
    tail = crlf(
        f"250 2.0.0 <spoolid> Roger, got 7 bytes in the last chunk, stored {len(data)} bytes into spool",
        "503 5.5.2 Waiting for MAIL command",
        "501 5.5.2 Syntax error in parameters or arguments",
    )
    assert out.endswith(tail)
    assert data.endswith(b"env-end\nSubject: x\n\nHi!\n")


def test_tv22_helo_pattern_rejection(h: Harness) -> None:
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n*.bad.example  !Go away\n*       ve\n"
    r = h.run(*cmds("EHLO host.bad.example", "MAIL FROM:<alice@example.net>"))
    assert body(r.output) == crlf(
        "501 5.7.1 Sorry [192.0.2.10], Go away",
        "503 5.5.1 Hello [192.0.2.10], Waiting for HELO/EHLO command",
    )


def test_tv23_h_helo_syntax_rejection(h: Harness) -> None:
    h.options["check_helo"] = True
    r = h.run(*cmds("HELO foo_bar.example", "MAIL FROM:<alice@example.net>"))
    assert body(r.output) == crlf(
        "501-    ^",
        "501-Invalid `HELO foo_bar.example' parameter!",
        "501 5.7.1 Sorry [192.0.2.10], Err: Spurious junk after the DOMAIN in HELO/EHLO argument",
        "503 5.5.1 Hello [192.0.2.10], Waiting for HELO/EHLO command",
    )


def test_tv24_ehlo_syntax_warnings(h: Harness) -> None:
    r = h.run(*cmds("EHLO foo_bar.example"))
    assert body(r.output) == crlf(
        "250-    ^",
        "250-Invalid `EHLO foo_bar.example' parameter!",
        "250-5.7.1 Sorry [192.0.2.10], Err: Spurious junk after the DOMAIN in HELO/EHLO argument",
    ) + TV02.replace(b"client.example.net", b"foo_bar.example")


def test_tv25_ehlo_helo_without_argument(h: Harness) -> None:
    r = h.run(*cmds("EHLO", "HELO"))
    assert body(r.output) == crlf(
        "250- ^",
        "250-Invalid `EHLO' parameter!",
        "250-5.7.1 Sorry [192.0.2.10], Err: RFC821: No input",
    ) + TV02.replace(b"Hello client.example.net", b"Hello ") + crlf("250 mx.example.org Hello ")


def test_tv27_unconfigured(h: Harness) -> None:
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n"
    r = h.run(*cmds("EHLO client.example.net", "FOO"))
    # README: every reply has a final line (3.0.1 sent only "400-4.7.0 ...")
    assert body(r.output) == crlf(
        "400 4.7.0 This SMTP server has not been configured!",
        "550 5.5.2 Unknown command 'FOO'",
    )
    assert h.slept == [20.0]


def test_tv28_source_routes(h: Harness) -> None:
    r = h.run(*cmds(
        "HELO client.example.net", "MAIL FROM:<@relay.example:alice@example.net>",
        "RCPT TO:<@relay.example,@r2.example:bob@example.org>",
    ))
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "250 2.1.0 Sender syntax Ok; , source route ignored",
        "250 2.1.5 Recipient address syntax Ok, source route ignored; rcpt=<bob@example.org>",
    )


def test_tv29_strict_protocol(h: Harness) -> None:
    h.options["strict_protocol"] = 1
    r = h.run(
        *cmds("EHLO client.example.net"), b"NOOP\n",
        *cmds("MAIL FROM: <alice@example.net>", "MAIL FROM:<alice>"),
    )
    assert body(r.output) == TV02 + crlf(
        "500 5.5.2 Line not terminated with CRLF..",
        "501 5.1.7 Hello [192.0.2.10], strangeness between ':' and '<':  <alice@example.net>",
        "501-5.1.7       ^",
        "501-5.1.7 Path data: Missing \"@\" from mailbox definition",
        "501 5.1.7 Hi [192.0.2.10], that was for input: <alice>",
    )


def test_tv30_style_R_extras(h: Harness) -> None:
    h.config_text = b"PARAM policydb btree /var/db/smtp-policy\n*  veR\n"
    r = h.run(*cmds("HELO client.example.net", "NOOP please", "MAIL FROM:<alice@example.net>  SIZE=10", "QUIT now"))
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "501 5.5.4 Extra junk after 'NOOP' verb",
        "501 5.5.4 Unknown MAIL FROM:<> parameter:  SIZE=10",
        "221-5.5.4 Extra junk after 'QUIT' verb",
        "221 2.0.0 mx.example.org Out",
    )


def test_tv31_message_too_large(h: Harness) -> None:
    h.values["maxsize"] = 100
    r = h.run(
        *cmds("HELO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA"),
        b"x" * 198 + b"\r\n", crlf("."), *cmds("NOOP"),
    )
    assert body(r.output) == crlf(
        "250 mx.example.org Hello client.example.net",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "552 5.3.4 Size of this message exceeds the fixed maximum size of  100  chars for received email ",
        "250 2.0.0 Ok",
    )
    assert r.files() == {}


def test_tv32_interactive(h: Harness) -> None:
    h.mode = "interactive"
    h.network = False
    h.config_text = b""
    r = h.run(*cmds("MAIL FROM:<alice@example.net>", "RCPT TO:<>", "MAIL FROM:<bob@example.net>", "QUIT"))
    assert r.output.split(b"\r\n", 1)[1] == crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "501 5.1.3 Null address valid only as source: <>",
        "503 5.5.1 Hello , Waiting for RCPT command",
        "221 2.0.0 mx.example.org Out",
    )
    assert r.output.startswith(b"220 mx.example.org ZMailer Server 3.0.1 #1 ESMTP ready at ")


def test_reply_constants_are_the_vector_texts() -> None:
    assert R.MAIL_OK == b"Sender syntax Ok; "
    assert R.DATA_TOO_LARGE.endswith(b"received email ")
