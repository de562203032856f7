"""proctitle's title text (protocol.md §6.3): control bytes and DEL show as '?'."""

from __future__ import annotations

from zmailer_smtpd import proctitle


def test_plain_title() -> None:
    assert proctitle.title_text(b"mx.example [192.0.2.7]", b"MAIL FROM:<a@b>") == (
        "<mx.example [192.0.2.7] MAIL FROM:<a@b>"
    )


def test_control_bytes_and_del_become_question_marks() -> None:
    text = bytes(range(0x20)) + b"\x7f ok\x80\xff"
    want = "<h " + "?" * 0x20 + "? ok\x80\xff"
    assert proctitle.title_text(b"h", text) == want
    assert proctitle.title_text("h", text.decode("latin-1")) == want


def test_tab_cr_lf_in_rhostname() -> None:
    assert proctitle.title_text(b"a\tb\r\n", "(connected)") == "<a?b?? (connected)"
