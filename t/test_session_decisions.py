"""The spec/README.md decisions as seen on the wire: smuggling, stream sync,
clean states, recipient limits, DSN checks, gated verbs, load limit, -i batches,
spool failures, internal errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sessionkit import TV02, Harness, cmds, crlf

from zmailer_smtpd.session import NeutralPolicy, PolicyAnswer, SessionContext, run_session
from zmailer_smtpd.sessionlog import SessionLog
from zmailer_smtpd.spool import Spool
from zmailer_smtpd.stream import FdTransport
from zmailer_smtpd.zenv import ZEnv

pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


TXN = ("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA")
OK3 = crlf(
    "250 2.1.0 Sender syntax Ok; ",
    "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>",
    "354 Start mail input; end with <CRLF>.<CRLF>",
)


def after_greeting(out: bytes) -> bytes:
    return out.split(b"\r\n", 1)[1]


# ---------------------------------------------------------------- SMTP smuggling


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r"])
def test_smuggled_end_marker_is_not_an_end(h: Harness, fake_end: bytes) -> None:
    payload = (
        b"Subject: a\r\n\r\nbody" + fake_end
        + b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nforged\r\n.\r\n"
    )
    r = h.run(*cmds(*TXN), payload, *cmds("NOOP"))
    assert after_greeting(r.output) == TV02 + OK3 + crlf(
        "550 5.5.2 Bare LF or bare CR in message data; only CR LF line ends are accepted",
        "250 2.0.0 Ok",
    )
    assert r.files() == {}


def test_pipelined_data_payload_is_never_read_as_commands(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net"),
        crlf("MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA",
             "Subject: x", "", "QUIT", "RSET", ".", "NOOP"),
    )
    assert after_greeting(r.masked) == TV02 + OK3 + crlf("250 2.0.0 accepted; <spoolid>", "250 2.0.0 Ok")
    (data,) = r.files().values()
    assert data.endswith(b"env-end\nSubject: x\n\nQUIT\nRSET\n")


def test_bytes_after_bdat_chunk_are_commands_exactly_once(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"),
        b"BDAT 12 LAST\r\nQUIT\r\nRSET\r\nNOOP\r\n",
    )
    out = after_greeting(r.masked)
    assert out.endswith(crlf(
        f"250 2.0.0 <spoolid> Roger, got 12 bytes in the last chunk, stored {len(next(iter(r.files().values())))} bytes into spool",
        "250 2.0.0 Ok",
    ))
    assert out.count(b"250 2.0.0 Ok") == 1
    (data,) = r.files().values()
    assert data.endswith(b"env-end\nQUIT\nRSET\n")


def test_bdat_syntax_error_leaves_chunk_to_the_command_reader(h: Harness) -> None:
    # Trap 25, kept: an invalid BDAT does not consume its chunk.
    r = h.run(*cmds("EHLO client.example.net"), b"BDAT 6 FIRST\r\nNOOP\r\n")
    assert after_greeting(r.output) == TV02 + crlf(
        "501 5.5.2 Syntax error in parameters or arguments", "250 2.0.0 Ok"
    )


def test_bdat_in_wrong_state_consumes_chunk(h: Harness) -> None:
    r = h.run(*cmds("EHLO client.example.net"), b"BDAT 6\r\nNOOP\r\n", *cmds("NOOP"))
    assert after_greeting(r.output) == TV02 + crlf("503 5.5.2 Waiting for MAIL command", "250 2.0.0 Ok")


def test_data_pipelined_with_body_in_one_segment(h: Harness) -> None:
    r = h.run(
        *cmds("EHLO client.example.net"),
        crlf("MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>", "DATA", "hi", ".",
             "MAIL FROM:<carol@example.net>", "RCPT TO:<dave@example.org>", "DATA", "two", ".", "QUIT"),
    )
    out = after_greeting(r.masked)
    assert out.count(b"250 2.0.0 accepted; <spoolid>") == 2
    assert out.endswith(b"221 2.0.0 mx.example.org Out\r\n")
    assert sorted(v.rsplit(b"\n", 2)[-2] for v in r.files().values()) == [b"hi", b"two"]


# ---------------------------------------------------------------- clean states (README Q3)


@pytest.mark.parametrize("reset", ["RSET", "EHLO client.example.net", "HELO client.example.net", "DATA"])
def test_thrown_away_transaction_requires_mail_again(h: Harness, reset: str) -> None:
    seq = ["EHLO client.example.net", "MAIL FROM:<alice@example.net>"]
    if reset == "DATA":
        seq.append("DATA")  # refused in Recipient state: the transaction is gone
    else:
        seq += ["RCPT TO:<bob@example.org>", reset]
    r = h.run(*cmds(*seq, "RCPT TO:<x@example.org>", "DATA"))
    out = r.output
    assert out.endswith(crlf(
        "503 5.5.1 Hello [192.0.2.10], Waiting for MAIL command",
        "503 5.5.2 Hi [192.0.2.10], Waiting for MAIL command",
    ))
    assert r.files() == {}


def test_bdat_error_leaves_clean_state(h: Harness) -> None:
    h.values["maxsize"] = 10
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"),
        b"BDAT 5\r\n01234",
        b"BDAT 3 LAST\r\nabc",
        *cmds("RCPT TO:<x@example.org>"),
    )
    assert r.output.endswith(crlf(
        "552 5.3.4 Size of this message exceeds the fixed maximum size of  10  chars for received email ",
        "452 4.3.0 BDAT block discarded due to earlier error",
        "503 5.5.1 Hello [192.0.2.10], Waiting for MAIL command",
    ))
    assert r.files() == {}


# ---------------------------------------------------------------- recipient limits and DSN


def test_failed_rcpts_do_not_count_toward_empty_sender_limit(h: Harness) -> None:
    r = h.run(*cmds(
        "HELO client.example.net", "MAIL FROM:<>", "RCPT TO:<a@b@c>", "RCPT TO:<>", "RCPT TO:x",
        "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "RCPT TO:<c@example.org>", "RCPT TO:<d@example.org>",
        "DATA",
    ))
    out = r.output
    assert out.count(b"250 2.1.5") == 3
    assert out.endswith(crlf(
        "552 5.7.1 SPAM trap -- too many recipients for an empty source address!",
        "550 5.7.1 SPAM trap -- too many recipients for an empty source address!",
    ))


def test_rcpt_limit_counts_accepted_only(h: Harness) -> None:
    h.values["rcptlimitcount"] = 100
    lines = ["EHLO client.example.net", "MAIL FROM:<alice@example.net>", "RCPT TO:<bad"]
    lines += [f"RCPT TO:<r{i}@example.org>" for i in range(101)]
    r = h.run(*cmds(*lines))
    assert b"250-X-RCPTLIMIT" not in r.output  # 100 is not advertised (only > 100)
    assert r.output.count(b"250 2.1.5") == 100
    assert r.output.endswith(crlf("452 4.5.2 Too many recipients in one go!"))


@pytest.mark.parametrize(
    "param,reply",
    [
        ("NOTIFY=NEVER,SUCCESS", "501 5.5.4 NOTIFY-param data error"),
        ("NOTIFY=", "501 5.5.4 NOTIFY-param data error"),
        ("NOTIFY=SUCCESS,", "455 4.5.4 NOTIFY-param data error"),
        ("NOTIFY=never", "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.org>"),
    ],
)
def test_notify_rfc3461(h: Harness, param: str, reply: str) -> None:
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", f"RCPT TO:<bob@example.org> {param}"))
    assert r.output.endswith(crlf(reply))


@pytest.mark.parametrize("param", ["RET=", "ENVID=", "RET= SIZE=1"])
def test_empty_mail_dsn_values_refused(h: Harness, param: str) -> None:
    r = h.run(*cmds("EHLO client.example.net", f"MAIL FROM:<a@example.net> {param}"))
    last = r.output.rstrip(b"\r\n").rsplit(b"\r\n", 1)[1]
    assert last.startswith(b"501 ")


def test_refused_rcpt_leaves_no_trace(h: Harness) -> None:
    h.values["maxsize"] = 1000
    h.policy = type("P", (NeutralPolicy,), {"rcpt": lambda self, a: PolicyAnswer(-1 if b"bad" in a else 0)})()
    r = h.run(
        *cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", "RCPT TO:<x@bad.example>",
              "RCPT TO:<ok@example.org>", "DATA"),
        crlf("x", "."),
    )
    (data,) = r.files().values()
    assert b"bad.example" not in data
    assert data.count(b"\nto <") == 1


# ---------------------------------------------------------------- gated verbs answer once


def test_vrfy_expn_debug_enabled(h: Harness) -> None:
    h.values.update({"vrfycmd": True, "expncmd": True, "debugcmd": True})
    r = h.run(*cmds("VRFY bob", "EHLO client.example.net", "VRFY bob", "EXPN list", "Z-DEBUG", "VERB",
                    "Z-DEBUG", "Z-DEBUG secret"))
    out = after_greeting(r.output)
    assert out.startswith(crlf("503 5.5.1 Waiting for HELO/EHLO command"))
    assert b"250-EXPN\r\n250-VRFY\r\n" in out
    assert out.endswith(crlf(
        "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
        "502 5.4.0 Command not implemented",
        "423 Must be VERBose to use DEBUG",
        "250-2.0.0 ZMailer SMTP server 3.0.1 #1: Sat Nov 28 2026",
        "250-2.0.0 Copyright 1990 Rayan S. Zachariassen",
        "250 2.0.0 Copyright 1991-2004 Matti Aarnio",
        "423 Umm..  DEBUG <password>",
        "502 5.7.0 Command not implemented",
    ))


# ---------------------------------------------------------------- load average (-L, maxloadavg)


def test_load_limit_refuses_session(h: Harness, tmp_path: Path) -> None:
    la = tmp_path / "loadavg"
    la.write_text("50.12 3.00 2.00 1/100 999\n")
    h.options["maxloadavg"] = 10
    h.ctx_extra["loadavg_path"] = str(la)
    r = h.run(*cmds("QUIT"))
    assert r.output == crlf("421 4.3.2 Sorry, the system is too loaded for email reception at the moment")


def test_pattern_maxloadavg_refuses_at_helo(h: Harness, tmp_path: Path) -> None:
    la = tmp_path / "loadavg"
    la.write_text("50.12 3.00 2.00 1/100 999\n")
    h.config_text = b"PARAM policydb btree /x\n*.busy.example 5 ve\n* ve\n"
    h.ctx_extra["loadavg_path"] = str(la)
    r = h.run(*cmds("HELO ok.example", "HELO a.busy.example", "NOOP"))
    assert after_greeting(r.output) == crlf(
        "250 mx.example.org Hello ok.example",
        "421 4.3.2 Sorry, the system is too loaded for email reception at the moment",
    )


# ---------------------------------------------------------------- fail closed, reject_net, MSA


def test_network_without_policy_fails_closed(h: Harness) -> None:
    h.policy = None
    r = h.run(*cmds("HELO client.example.net", "HELP DATA", "QUIT"))
    assert r.output.startswith(b"220 mx.example.org ZMailer Server")  # sameip 0 is not > 0
    assert after_greeting(r.output).startswith(crlf(
        "400-4.7.0 Ask HELP for our contact information.",
        "400 4.7.0 Policy database problem: Configuration bug",
        "214-DATA",
    ))
    assert r.output.endswith(crlf("221 2.0.0 mx.example.org Out"))
    assert h.slept == [20.0]


def test_reject_net(h: Harness) -> None:
    h.policy = type("P", (NeutralPolicy,), {"connect": lambda self, a, n: PolicyAnswer(-1, b"Go away")})()
    r = h.run(*cmds("HELO x.example", "QUIT"))
    assert r.output == crlf(
        "550-5.7.1 Hello [192.0.2.10]; If you feel we mistreat you, do contact us.",
        "550-5.7.1 Hello [192.0.2.10]; Ask HELP for our contact information.",
        "550 5.7.1 Hello [192.0.2.10]; Go away",
        "550-5.7.1 Hello [192.0.2.10]; Ask HELP for our contact information.",
        "550-5.7.1 If you feel we mistreat you, do contact us.",
        "550 5.7.1 Hello [192.0.2.10]; you are on our reject-IP-address -list, GO AWAY!",
        "221 2.0.0 mx.example.org Out",
    )


def test_msa_mode_requires_auth(h: Harness) -> None:
    h.values["msa-mode"] = True
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", "HELP", "NOOP"))
    assert r.output.endswith(crlf(
        "530 5.3.0 Sorry [192.0.2.10]; Authentication required",
        "530 5.3.0 Sorry [192.0.2.10]; Authentication required",
        "250 2.0.0 Ok",
    ))
    assert b"250-ETRN" not in r.output


# ---------------------------------------------------------------- -i batches


def test_interactive_batch_from_file_with_lf_endings(tmp_path: Path) -> None:
    """-i reads a BSMTP batch from a file: no pipelining guard, LF line ends accepted."""
    h = Harness(tmp_path)
    batch = tmp_path / "batch"
    batch.write_bytes(
        b"EHLO batch.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n"
        b"Subject: lf\n\n..dotted\nline\n.\nQUIT\n"
    )
    outp = tmp_path / "out"
    zenv = ZEnv.from_bytes(f"POSTOFFICE={h.postoffice}\n".encode())
    from zmailer_smtpd.config import config_from_bytes

    cfg = config_from_bytes(b"", zenv)
    log = SessionLog(str(tmp_path / "log"), pid=4242)
    log.syslog_on = False
    with open(batch, "rb") as fin, open(outp, "wb") as fout:
        ctx = SessionContext(
            options={}, config=cfg, settings=cfg.last_group(), zenv=zenv, mode="interactive", network=False,
            log=log, spool=Spool(h.postoffice, zenv, hostname="mx.example.org"), myhostname=b"mx.example.org",
        )
        rc = run_session(ctx, FdTransport(fin.fileno(), fout.fileno()))
    log.close()
    assert rc == 0
    out = outp.read_bytes()
    assert out.startswith(b"220 mx.example.org ZMailer Server 3.0.1 #1 ESMTP ready at ")
    assert b"250 2.0.0 accepted; S" in out and out.endswith(b"221 2.0.0 mx.example.org Out\r\n")
    (data,) = (v for k, v in h_files(h.postoffice).items())
    assert data == b"with ESMTP\nfrom <a@example.org>\ntodsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example.net " \
        b"INRCPT=rfc822;b@example.net INFROM=rfc822;a@example.org\nto <b@example.net>\nenv-end\n" \
        b"Subject: lf\n\n.dotted\nline\n"
    logtext = (tmp_path / "log").read_bytes()
    assert b"r\tEHLO batch.example\n" in logtext
    assert b"pipeline input exists" in logtext  # noticed, not fatal in -i


def h_files(po: str) -> dict[str, bytes]:
    from spoolutil import spool_files

    return spool_files(po)


# ---------------------------------------------------------------- spool failures, internal errors


def test_commit_failure_answers_451_and_leaves_nothing(h: Harness) -> None:
    shutil.rmtree(os.path.join(h.postoffice, "router"))
    r = h.run(*cmds(*TXN), crlf("x", "."), *cmds("NOOP"))
    assert after_greeting(r.output) == TV02 + OK3 + crlf(
        "451 4.3.0 Requested action aborted: local error in processing", "250 2.0.0 Ok",
    )
    assert r.files() == {}


def test_spool_open_failure_at_mail(h: Harness) -> None:
    shutil.rmtree(os.path.join(h.postoffice, "public"))
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", "RCPT TO:<b@example.org>"))
    assert r.output.endswith(crlf(
        "452 4.3.0 Requested action not taken: insufficient storage",
        "503 5.5.1 Hello [192.0.2.10], Waiting for MAIL command",
    ))


def test_unexpected_exception_answers_451_and_logs_traceback(h: Harness) -> None:
    def boom(self: object, addr: bytes) -> PolicyAnswer:
        raise RuntimeError("secret internals")

    h.policy = type("P", (NeutralPolicy,), {"mail": boom})()
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>", "NOOP"))
    assert r.output.endswith(crlf("451 4.3.0 Requested action aborted: local error in processing", "250 2.0.0 Ok"))
    assert b"secret internals" not in r.output
    assert any(b"RuntimeError: secret internals" in ln for ln in r.log)
    assert any(b"Traceback" in ln for ln in r.log)


def test_session_ends_at_eof_without_reply(h: Harness) -> None:
    r = h.run(*cmds("EHLO client.example.net", "MAIL FROM:<a@example.net>"))
    assert r.output.endswith(crlf("250 2.1.0 Sender syntax Ok; "))
    assert any(b"aborted (" in ln and b"session terminated" in ln for ln in r.log)
    assert any(b"Session closed w/o QUIT" in ln for ln in r.log)
    assert r.files() == {}


def test_interactive_test_address_batch_is_not_guarded(h: Harness) -> None:
    """-i -T: network-connected for the policy, but still a batch (no guard, LF ok)."""
    h.mode = "interactive"
    h.config_text = b"PARAM policydb btree /x\n127.0.0.1 -\n* ve\n"
    r = h.run(b"HELO a.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nx\n.\nQUIT\n")
    out = r.masked.split(b"\r\n", 1)[1]
    assert out == crlf(
        "250 mx.example.org Hello a.example",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<b@example.net>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 accepted; <spoolid>",
        "221 2.0.0 mx.example.org Out",
    )
