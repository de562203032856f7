"""helper.py: field validation, environment, byte-clean bounded line reads (§0.3, §0.4)."""

from __future__ import annotations

import os
import sys

import pytest

from zmailer_smtpd import helper
from zmailer_smtpd.helper import Helper, LineChannel


@pytest.mark.parametrize("bad", [b"a\rb", b"a\nb", b"a\tb", b"a\0b"])
def test_check_field_refuses(bad: bytes) -> None:
    with pytest.raises(helper.FieldError):
        helper.check_field(bad)


def test_check_field_passes_other_bytes() -> None:
    v = b"$(id) `id` ${run{x}} \x7f\xff;|&<>'\""
    assert helper.check_field(v) is v


def test_helper_env_cleanup() -> None:
    env = helper.helper_env(
        {"PATH": "/bin", "LOGNAME": "a", "USER": "b", "FULLNAME": "c", "PRETTYLOGIN": "d",
         "IFS": " "}, {"SMTPSERVER": "y"})
    assert env == {"PATH": "/bin", "SHELL": "/bin/sh", "SMTPSERVER": "y"}
    assert helper.helper_env({"PATH": "/bin"}) == {"PATH": "/bin"}


def pipe_channel() -> tuple[LineChannel, int]:
    r, w = os.pipe()
    return LineChannel(r, w), w


def test_byte_clean_lines_and_partial_then_eof() -> None:
    ch, w = pipe_channel()
    os.write(w, b"a\x00b\xff\xfe\rc\n#hungry\r\npartial")
    assert ch.readline(1) == b"a\x00b\xff\xfe\rc\n"
    assert ch.readline(1) == b"#hungry\r\n"  # CR is data: not the end marker
    # write end is the same fd pair here; close our writer to signal EOF
    os.close(w)
    assert ch.readline(1) == b"partial"
    with pytest.raises(helper.HelperEOF):
        ch.readline(1)
    os.close(ch.rfd)


def test_partial_then_timeout() -> None:
    ch, w = pipe_channel()
    os.write(w, b"half")
    assert ch.readline(0.05) == b"half"
    with pytest.raises(helper.HelperTimeout):
        ch.readline(0.05)
    ch.close()


def test_overlong_line_discarded() -> None:
    ch, w = pipe_channel()
    os.write(w, b"x" * 5000 + b"\nshort\n")
    with pytest.raises(helper.HelperGarbage):
        ch.readline(1, maxline=100)
    assert ch.readline(1) == b"short\n"
    ch.close()


def test_read_until_hungry_limits() -> None:
    ch, w = pipe_channel()
    os.write(w, b"one\ntwo\n#hungry\n" + b"l\n" * 20 + b"#hungry\n")
    assert ch.read_until_hungry(1) == [b"one", b"two"]
    with pytest.raises(helper.HelperGarbage):
        ch.read_until_hungry(1, maxlines=10)
    ch.close()


def test_trickle_without_lf_hits_deadline() -> None:
    ch, w = pipe_channel()
    os.write(w, b"y" * 100)  # never a LF, never EOF
    with pytest.raises(helper.HelperTimeout):
        ch.read_until_hungry(5, deadline=0.1)
    ch.close()


def test_start_argv_no_shell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "argv"
    prog = tmp_path / "prog"
    prog.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(out)!r},'w').write(repr(sys.argv[1:]))\n"
        "print('done')\n")
    prog.chmod(0o755)
    h = Helper.start(str(prog), ["name", "$(id)", "a b;c", "`x`"], env={"PATH": "/bin"})
    assert h.chan.readline(5) == b"done\n"
    h.close()
    assert out.read_text() == "['$(id)', 'a b;c', '`x`']"


def test_start_failure_is_helper_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(helper.HelperError):
        Helper.start(str(tmp_path / "nope"), ["nope"])


def test_kill_reaps_hanging_child() -> None:
    h = Helper.start(sys.executable, ["python", "-c", "import time; time.sleep(3600)"])
    pid = h.pid
    h.kill()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
