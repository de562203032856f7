"""The content filter through the real session (interfaces.md §2, §8.2).

The filter is the real stand-in program t/peers/contentfilter.py (it answers
what the message carries after a ``PEER-SCRIPT`` line) or, where the answer
needs a byte SMTP cannot carry in DATA, a one-line script written here.  The
verdict decides what is spooled (router/, nothing, freezer/<ino>policy-N) and
what the client hears.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from pathlib import Path

from peers.support import peer, read_log
from sessionkit import Harness, cmds
from spoolutil import mask_spoolid

from zmailer_smtpd.contentfilter import ContentFilter

SID = re.compile(rb"S\d+[A-Za-z0-9=\-]{8}(?:[A-Za-z0-9=\-]{5})?")


def harness(tmp: Path, program: str | None = None, answer_timeout: float = 120.0) -> tuple[Harness, Path]:
    plog = tmp / "filter.log"
    h = Harness(tmp)
    env = dict(os.environ, PEER_LOG=str(plog))
    h.ctx_extra["contentfilter"] = ContentFilter(
        program or peer("contentfilter.py"), env=env, cwd=h.postoffice,
        answer_timeout=answer_timeout, answer_deadline=30.0, log=lambda m: None)
    return h, plog


def message(script: bytes) -> bytes:
    return b"Subject: t\r\n\r\nbody\r\nPEER-SCRIPT\r\n" + script + b".\r\n"


def data_reply(h: Harness, *scripts: bytes) -> tuple[list[bytes], dict[str, bytes]]:
    chunks = cmds("EHLO client.example.net")
    for s in scripts:
        chunks += cmds("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA")
        chunks.append(message(s))
    chunks += cmds("QUIT")
    r = h.run(*chunks)
    lines = mask_spoolid(r.output).split(b"\r\n")[:-1]
    i = next(k for k, ln in enumerate(lines) if ln.startswith(b"250 HELP"))
    return [ln for ln in lines[i + 1:] if not ln.startswith((b"250 2.1.", b"354 ", b"221 "))], r.files()


def where(files: dict[str, bytes]) -> list[str]:
    return sorted(re.sub(r"^(\w+)/\d+", r"\1/<ino>", k) for k in files)


def test_f1_accept_with_text_queues(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    got, files = data_reply(h, b"0 250 2.6.0 Message OK!\r\n")
    assert got == [b"250 2.6.0 Message OK!; <spoolid>"]
    assert where(files) == ["router/<ino>"]
    paths = [x["path"] for x in read_log(plog) if "path" in x]
    assert len(paths) == 1 and paths[0].startswith(h.postoffice + "/public/")
    start = next(x for x in read_log(plog) if "argv" in x)
    assert start["argv"][1:] == [] and start["cwd"] == h.postoffice  # argv [PATH], in $POSTOFFICE


def test_f2_reject_multiline_removes_the_file(tmp_path: Path) -> None:
    prog = tmp_path / "crfilter"
    prog.write_text(
        f"#!{sys.executable}\nimport sys\nw = sys.stdout.buffer\nw.write(b'#hungry\\n'); w.flush()\n"
        "for line in sys.stdin.buffer:\n"
        "    w.write(b'-1 550 5.7.1 Spam detected\\rSee http://www.example.org/why\\n#hungry\\n')\n"
        "    w.flush()\n")
    prog.chmod(0o755)
    h, _ = harness(tmp_path, str(prog))
    got, files = data_reply(h, b"")
    assert got == [
        b"550-5.7.1 Content-Policy msg: Spam detected; <spoolid>",
        b"550-5.7.1 msg: See http://www.example.org/why",
        b"550 5.7.1 Content-Policy analysis rejected this message",
    ]
    assert files == {}


def test_f3_freeze_goes_to_the_freezer(tmp_path: Path) -> None:
    h, _ = harness(tmp_path)
    got, files = data_reply(h, b"1 250 2.7.1 Held for review\r\n")
    assert got == [b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: Held for review; <spoolid>"]
    assert where(files) == ["freezer/<ino>policy-1"]


def test_f3_freeze_verdict_number_names_the_file(tmp_path: Path) -> None:
    h, _ = harness(tmp_path)
    got, files = data_reply(h, b"3\r\n")
    assert got == [b"250 2.7.1 Content-Policy accept-into-freezer-3 msg: accepted into freezer,"
                   b" no explanations; <spoolid>"]
    assert where(files) == ["freezer/<ino>policy-3"]


def test_f4_f5_seed_grammar(tmp_path: Path) -> None:
    h, _ = harness(tmp_path)
    got, files = data_reply(h, b"-3 Multiple occurrances of unique RFC822 header: 'From'\r\n",
                            b"-1\r\n")
    assert got == [
        b"552 5.7.1 Content-Policy reject msg: Multiple occurrances of unique RFC822 header:"
        b" 'From'; <spoolid>",
        b"552 5.7.1 Content-Policy reject msg: rejected, no further explanations; <spoolid>",
    ]
    assert files == {}


def test_f6_last_valid_line_wins(tmp_path: Path) -> None:
    h, _ = harness(tmp_path)
    got, files = data_reply(h, b"# scanning\r\n0 250 2.6.0 first\r\ngarbage\r\n-1 554 5.7.1 second\r\n")
    assert got == [b"554 5.7.1 Content-Policy reject msg: second; <spoolid>"]
    assert files == {}


def test_code_and_verdict_are_independent(tmp_path: Path) -> None:
    h, _ = harness(tmp_path)
    got, files = data_reply(h, b"0 550 5.7.1 told no, queued anyway\r\n")
    assert got == [b"550 5.7.1 told no, queued anyway; <spoolid>"]
    assert where(files) == ["router/<ino>"]


def test_three_messages_one_filter(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    got, files = data_reply(h, b"0 250 2.6.0 one\r\n", b"-1 550 5.7.1 two\r\n", b"1 250 2.7.1 three\r\n")
    assert got == [b"250 2.6.0 one; <spoolid>",
                   b"550 5.7.1 Content-Policy reject msg: two; <spoolid>",
                   b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: three; <spoolid>"]
    assert where(files) == ["freezer/<ino>policy-1", "router/<ino>"]
    assert sum(1 for x in read_log(plog) if "argv" in x) == 1


FROZEN = b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: accepted into freezer, no explanations; <spoolid>"


def test_f8_filter_dies_message_frozen_next_message_restarts(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    got, files = data_reply(h, b"!die\r\n", b"0 250 2.6.0 fine\r\n")
    assert got == [FROZEN, b"250 2.6.0 fine; <spoolid>"]
    assert where(files) == ["freezer/<ino>policy-1", "router/<ino>"]
    assert sum(1 for x in read_log(plog) if "argv" in x) == 2


def test_filter_that_never_answers_does_not_hang(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, answer_timeout=0.5)
    got, files = data_reply(h, b"!hang\r\n", b"0 250 2.6.0 fine\r\n")
    assert got == [FROZEN, b"250 2.6.0 fine; <spoolid>"]
    assert where(files) == ["freezer/<ino>policy-1", "router/<ino>"]


def test_filter_without_hungry_after_its_answer_does_not_hang(tmp_path: Path) -> None:
    h, plog = harness(tmp_path, answer_timeout=0.5)
    got, files = data_reply(h, b"!nohungry\r\n")
    assert got == [FROZEN]


def test_ten_megabytes_of_output_neither_hang_nor_bloat(tmp_path: Path) -> None:
    h, plog = harness(tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got, files = data_reply(h, b"!flood\r\n", b"!floodlines\r\n", b"0 250 2.6.0 fine\r\n")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert got == [FROZEN, FROZEN, b"250 2.6.0 fine; <spoolid>"]
    assert grown_kib < 8 * 1024
    assert where(files) == ["freezer/<ino>policy-1", "freezer/<ino>policy-1", "router/<ino>"]


def test_filter_that_cannot_start_freezes(tmp_path: Path) -> None:
    h, _ = harness(tmp_path, str(tmp_path / "nonexistent"))
    got, files = data_reply(h, b"")
    assert got == [FROZEN]
    assert where(files) == ["freezer/<ino>policy-1"]


def test_sid_pattern_matches_replies() -> None:
    assert SID.search(b"250 ok; S2162999AbmK1HA0BPTLx")
