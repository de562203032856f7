"""The manual's PARAM list and the PARAM table agree, both ways, aliases included."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from zmailer_smtpd import manpage
from zmailer_smtpd import params as P
from zmailer_smtpd.config import config_from_bytes
from zmailer_smtpd.zenv import ZEnv

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "smtpserver.8zm"
ALL_SPELLINGS = {kw.lower() for p in P.PARAMS for kw in p.spellings}


def _text() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_generated_section_is_up_to_date() -> None:
    text = _text()
    assert manpage.update(text) == text, "run tools/gen-man-params"


def test_gen_man_params_check_passes() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen-man-params"), "--check"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_gen_man_params_rewrites_a_stale_page(tmp_path: Path) -> None:
    stale = _text().replace("Concurrent sessions per listener type.", "stale words", 1)
    stale = re.sub(r'"zmailer_smtpd [^"]*"', '"zmailer_smtpd 0.0.0"', stale, count=1)
    page = tmp_path / "smtpserver.8zm"
    page.write_text(stale)
    check = subprocess.run([sys.executable, "-m", "zmailer_smtpd.manpage", "--check", str(page)],
                           capture_output=True, timeout=60, cwd=ROOT)
    assert check.returncode == 1
    assert page.read_text() == stale
    fix = subprocess.run([sys.executable, "-m", "zmailer_smtpd.manpage", str(page)],
                         capture_output=True, timeout=60, cwd=ROOT)
    assert fix.returncode == 0, fix.stderr
    assert page.read_text() == _text()


def test_every_table_spelling_is_documented() -> None:
    documented = manpage.documented_keywords(_text())
    missing = ALL_SPELLINGS - documented
    assert not missing, f"in params.py, not in the manual: {sorted(missing)}"


def test_every_documented_keyword_is_in_the_table() -> None:
    documented = manpage.documented_keywords(_text())
    extra = documented - ALL_SPELLINGS
    assert not extra, f"in the manual, not in params.py: {sorted(extra)}"


def test_each_setting_has_one_entry() -> None:
    block = manpage.generated_block(_text())
    heads = [manpage.unescape(ln) for ln in block.splitlines() if ln.startswith((".B ", ".BI "))]
    names = [re.match(r'\.BI? "PARAM (\S+?)"?(\s|$)', h).group(1).lower()  # type: ignore[union-attr]
             for h in heads]
    assert names == [p.name for p in P.PARAMS]


def test_prose_names_only_real_keywords() -> None:
    """Hand-written text outside the generated list must not invent keywords."""
    mentioned = manpage.param_mentions(_text())
    assert mentioned, "no PARAM mentions found"
    assert mentioned <= ALL_SPELLINGS, sorted(mentioned - ALL_SPELLINGS)


def test_helper_tables_name_real_settings() -> None:
    names = {p.name for p in P.PARAMS}
    assert set(manpage.NOTES) <= names, sorted(set(manpage.NOTES) - names)
    assert set(manpage.HEADINGS) <= names, sorted(set(manpage.HEADINGS) - names)
    assert set(manpage.DISPLAY) <= ALL_SPELLINGS, sorted(set(manpage.DISPLAY) - ALL_SPELLINGS)


def test_not_implemented_settings_say_so() -> None:
    block = manpage.unescape(manpage.generated_block(_text()))
    entries = re.split(r"(?m)^\.TP$", block)
    for p in P.PARAMS:
        entry = next(e for e in entries
                     if re.search(rf'PARAM {re.escape(manpage.display(p.name))}"?( |$)', e, re.M))
        assert ("has no effect here" in entry) == (not p.implemented), p.name


def _example(text: str) -> bytes:
    """The "A configuration file" example of CONFIGURATION, as file bytes."""
    m = re.search(r'\.SS "A configuration file"\n\.RS\n\.nf\n(.*?)\n\.fi', text, re.S)
    assert m is not None
    plain = m.group(1).replace("\\-", "-").replace("\\e", "\\")
    return plain.encode() + b"\n"


def test_example_configuration_loads_cleanly() -> None:
    zenv = ZEnv.from_bytes(b"MAILVAR=/etc/zmailer\n")
    cfg = config_from_bytes(_example(_text()), zenv, path="example")
    assert cfg.errors == [] and cfg.warnings == []
    assert cfg.configured
    assert len(cfg.groups) == 2
    assert cfg.group(0).get("policydb") == ("btree", "/etc/zmailer/db/smtp-policy")
    pat = cfg.find_pattern(b"[192.0.2.1]")
    assert pat is not None and pat.flags == "ve"
    refused = cfg.find_pattern(b"bad.example.com")
    assert refused is not None and refused.flags.startswith("!")


def test_style_flags_section_covers_every_letter() -> None:
    text = manpage.unescape(_text())
    section = text.split('.SS "Style flags"', 1)[1].split(".SS", 1)[0]
    letters = re.findall(r"(?m)^\.TP\n\.B (\S)$", section)
    assert sorted(letters) == sorted("vefFtThRSD")
