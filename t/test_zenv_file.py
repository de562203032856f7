"""ZENV (zmailer.conf): which file, line rules, defaults (spool.md §1, protocol.md §1.4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zmailer_smtpd import zenv as Z
from zmailer_smtpd.zenv import ZEnv, load_zenv, parse_zenv


def test_first_matching_line_wins() -> None:
    z = ZEnv.from_bytes(b"A=1\nA=2\n")
    assert z.get("A") == "1"


def test_name_only_at_start_of_line_exactly() -> None:
    z = ZEnv.from_bytes(b" A=1\nAB=2\na=3\n#A=4\nA =5\n")
    assert z.get("A") is None  # indented, other name, lower case, comment, space before =
    assert z.get("AB") == "2"
    assert z.get("a") == "3"


def test_value_leading_blanks_skipped_rest_verbatim() -> None:
    data = b'R= \t\x0b\x0c\r"-dWkn 4"  # not a comment  \nQ=$HOME/x\n'
    z = ZEnv.from_bytes(data)
    assert z.get("R") == '"-dWkn 4"  # not a comment  '
    assert z.get("Q") == "$HOME/x"  # no expansion


def test_empty_value_is_set_not_unset() -> None:
    z = ZEnv.from_bytes(b"E=\nF=   \n")
    assert z.get("E") == ""
    assert z.get("F") == ""
    assert z.has("E")
    assert not z.has("G")


def test_nul_is_a_line_end_and_crlf_keeps_cr() -> None:
    z = ZEnv.from_bytes(b"A=1\0B=2\r\nC=3")
    assert z.get("B") == "2\r"
    assert z.get("C") == "3"
    assert parse_zenv(b"A=1\0B=2", b"B") == b"2"


def test_process_environment_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZMSMTPD_TEST_VAR", "from-env")
    z = ZEnv.from_bytes(b"")
    assert z.get("ZMSMTPD_TEST_VAR") is None


def test_zconfig_environment_is_not_consulted(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    f = tmp_path / "z.conf"
    f.write_bytes(b"POSTOFFICE=/elsewhere\n")
    monkeypatch.setenv("ZCONFIG", str(f))
    z = load_zenv(None)
    assert z.path == Z.DEFAULT_ZENV_FILE
    assert z.get("POSTOFFICE") != "/elsewhere"


def test_defaults_of_spool_md_1_3() -> None:
    z = ZEnv.from_bytes(b"")
    assert z.get("POSTOFFICE") == Z.DEFAULTS["POSTOFFICE"]
    assert z.get("MAILSHARE") == Z.DEFAULTS["MAILSHARE"]
    assert z.get("MAILVAR") == Z.DEFAULTS["MAILVAR"]
    assert z.get("MAILBIN") == Z.DEFAULTS["MAILBIN"]
    assert z.get("TRUSTEDUSER") == "daemon"
    assert z.get("INPUTDIRS") is None
    assert z.get("INPUTDIRS", "x") == "x"
    # Defaults are not file values: $MAILVAR expansion sees only the file.
    assert z.file_value("MAILVAR") is None


def test_file_value_beats_default() -> None:
    z = ZEnv.from_bytes(b"POSTOFFICE=/p\nTRUSTEDUSER=mail\n")
    assert z.get("POSTOFFICE") == "/p"
    assert z.get("TRUSTEDUSER") == "mail"


def test_dash_z_unreadable_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_zenv(str(tmp_path / "missing.conf"))


def test_dash_z_file_is_read(tmp_path: Path) -> None:
    f = tmp_path / "z.conf"
    f.write_bytes(b"MAILSHARE=/ms\n")
    z = load_zenv(str(f))
    assert z.path == str(f)
    assert z.get("MAILSHARE") == "/ms"
    assert z.loaded


def test_without_dash_z_missing_file_is_retried(tmp_path: Path) -> None:
    f = tmp_path / "later.conf"
    z = ZEnv(str(f), None, retry=True)
    assert z.get("X") is None
    assert z.get("POSTOFFICE") == Z.DEFAULTS["POSTOFFICE"]
    f.write_bytes(b"X=1\n")
    assert z.get("X") == "1"


def test_read_once(tmp_path: Path) -> None:
    f = tmp_path / "z.conf"
    f.write_bytes(b"X=1\n")
    z = load_zenv(str(f))
    f.write_bytes(b"X=2\n")
    assert z.get("X") == "1"


def test_non_utf8_values_round_trip() -> None:
    z = ZEnv.from_bytes(b"P=/sp\xf6ol\n")
    v = z.get("P")
    assert v is not None and os.fsencode(v) == b"/sp\xf6ol"
    assert z.file_bytes(b"P") == b"/sp\xf6ol"
