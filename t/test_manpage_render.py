"""man/smtpserver.8zm renders cleanly and has the structure the issue asks for."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from zmailer_smtpd import __version__, cli
from zmailer_smtpd.manpage import unescape

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "smtpserver.8zm"

SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CONFIGURATION",
            "CONTENTFILTER INTERFACE", "TCP-WRAPPER", "SASL", "TLS MODE", "SMTP-AUTH", "PAM",
            "SMTP-POLICY", "ENVIRONMENT", "Z-ENV", "FILES", "DEVIATIONS", "SEE ALSO", "AUTHOR")


def _text() -> str:
    return PAGE.read_text(encoding="utf-8")


def _sections(text: str) -> list[str]:
    return [unescape(m.group(1)).strip('"') for m in re.finditer(r"(?m)^\.SH (.*)$", text)]


def _section(text: str, name: str) -> str:
    """The troff source of one .SH section."""
    parts = re.split(r"(?m)^(?=\.SH )", text)
    for part in parts:
        first = part.split("\n", 1)[0]
        if first.startswith(".SH ") and unescape(first[4:]).strip('"') == name:
            return part
    raise AssertionError(f"no section {name}")


@pytest.mark.parametrize("device", [[], ["-Tutf8"]])
def test_groff_prints_no_warning(device: list[str]) -> None:
    r = subprocess.run(["groff", "-man", "-ww", "-z", *device, str(PAGE)], capture_output=True,
                       timeout=60)
    assert r.returncode == 0
    assert r.stderr == b"", r.stderr.decode(errors="replace")


def test_man_renders_every_section() -> None:
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "-l", str(PAGE)], capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("utf-8", errors="replace")
    lines = set(out.splitlines())
    for name in SECTIONS:
        assert name in lines, name
    assert f"zmailer_smtpd {__version__}" in out
    assert "PARAM MaxSameIpSource N" in out


def test_sections_in_order() -> None:
    found = _sections(_text())
    positions = [found.index(name) for name in SECTIONS]
    assert positions == sorted(positions), found


def test_title_line_carries_the_package_version() -> None:
    th = re.search(r"(?m)^\.TH .*$", _text())
    assert th is not None
    assert th.group(0).startswith('.TH SMTPSERVER 8zm "')
    assert f'"zmailer_smtpd {__version__}"' in th.group(0)


def _option_heads(text: str) -> list[str]:
    """The first line after each .TP/.TQ of OPTIONS, as plain text."""
    lines = _section(text, "OPTIONS").splitlines()
    heads = []
    for i, line in enumerate(lines[:-1]):
        if line in (".TP", ".TQ"):
            heads.append(unescape(re.sub(r"^\.[BIR]{1,2} ", "", lines[i + 1])).replace('"', ""))
    return heads


@pytest.mark.parametrize("letter", sorted(set(cli.OPTSTRING.replace(":", ""))))
def test_every_option_letter_is_documented(letter: str) -> None:
    heads = _option_heads(_text())
    assert any(re.match(rf"-{re.escape(letter)}(\s|$)", h) for h in heads), (letter, heads)


@pytest.mark.parametrize("name", cli.LONG_OPTIONS)
def test_long_options_are_documented(name: str) -> None:
    assert f"--{name}" in _option_heads(_text())


def test_synopsis_names_every_option_with_an_argument() -> None:
    synopsis = unescape(_section(_text(), "SYNOPSIS"))
    takes_arg = {c for i, c in enumerate(cli.OPTSTRING) if cli.OPTSTRING[i + 1:i + 2] == ":"}
    for letter in takes_arg:
        assert f"-{letter}" in synopsis, letter


def test_pam_section_shows_the_shipped_service_file() -> None:
    shipped = (ROOT / "contrib" / "pam.d" / "smtpauth-login").read_text()
    pam = unescape(_section(_text(), "PAM"))
    rules = [ln for ln in shipped.splitlines() if ln.strip() and not ln.startswith("#")]
    assert rules
    for rule in rules:
        assert rule in pam, rule


def test_files_section_names_existing_samples() -> None:
    text = unescape(_text())
    for rel in re.findall(r"(?<![/\w])((?:etc|contrib)/[A-Za-z0-9_./-]+[A-Za-z0-9_])", text):
        assert (ROOT / rel).exists(), rel
