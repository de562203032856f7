"""The shipped etc/smtpserver.conf and etc/zmailer.conf load cleanly and cover every PARAM."""

from __future__ import annotations

import re
from pathlib import Path

from zmailer_smtpd import params as P
from zmailer_smtpd.config import config_from_bytes, load_config
from zmailer_smtpd.zenv import load_zenv

ETC = Path(__file__).resolve().parent.parent / "etc"


def test_zmailer_conf_lines_are_name_value_or_comments() -> None:
    for n, line in enumerate((ETC / "zmailer.conf").read_bytes().split(b"\n"), 1):
        if not line or line.startswith(b"#"):
            continue
        assert re.fullmatch(rb"[A-Z][A-Z0-9_]*=.*", line), (n, line)


def test_samples_load_without_errors() -> None:
    zenv = load_zenv(str(ETC / "zmailer.conf"))
    assert zenv.get("MAILVAR") == "/etc/zmailer"
    cfg = load_config(str(ETC / "smtpserver.conf"), zenv)
    assert cfg.read
    assert cfg.errors == []
    assert cfg.warnings == []
    assert cfg.configured
    s = cfg.last_group()
    assert s.get("policydb") == ("btree", "/etc/zmailer/db/smtp-policy")
    p = cfg.find_pattern(b"client.example.net")
    assert p is not None and p.flags == "ve"


def test_sample_mentions_every_param() -> None:
    text = (ETC / "smtpserver.conf").read_text()
    mentioned = {m.lower() for m in re.findall(r"^#?PARAM\s+(\S+)", text, re.M)}
    for p in P.PARAMS:
        assert mentioned & set(p.spellings), p.name


def test_sample_with_everything_uncommented_has_no_errors() -> None:
    zenv = load_zenv(str(ETC / "zmailer.conf"))
    data = re.sub(rb"(?m)^#PARAM", b"PARAM", (ETC / "smtpserver.conf").read_bytes())
    cfg = config_from_bytes(data, zenv, path="uncommented")
    assert cfg.errors == []
    assert len(cfg.groups) == 2
