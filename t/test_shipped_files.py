"""Every file shipped in etc/ and contrib/ is parsed by the program that will read it.

A new file there needs a checker in CHECKERS; test_every_shipped_file_has_a_checker
fails until it has one.  The checks use the real readers: config.load_config,
the ZENV reader, the policy builder, cli.parse_args for command lines.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from zmailer_smtpd import cli, manpage, tcpwrap, zenv
from zmailer_smtpd.config import load_config
from zmailer_smtpd.policy import builder

ROOT = Path(__file__).resolve().parent.parent
ETC = ROOT / "etc"
MAILBIN = zenv.DEFAULTS["MAILBIN"]  # where tools/install puts smtpserver by default
PROGRAM = f"{MAILBIN}/smtpserver"
POLICY_FILES = ("smtp-policy.src", "localnames", "smtp-policy.relay", "smtp-policy.relay.manual",
                "smtp-policy.mx", "smtp-policy.mx.manual", "smtp-policy.spam",
                "smtp-policy.spam.manual")
SECURITY_DIRS = ("/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
                 "/lib/security", "/usr/lib/security")


def shipped() -> list[str]:
    """Every shipped file, relative to the source root."""
    return sorted(str(p.relative_to(ROOT)) for d in ("etc", "contrib")
                  for p in (ROOT / d).rglob("*") if p.is_file())


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _active(path: Path) -> list[str]:
    return [ln for ln in _lines(path) if ln.strip() and not ln.lstrip().startswith("#")]


# --- checkers ----------------------------------------------------------------------


def check_smtpserver_conf(path: Path) -> None:
    cfg = load_config(str(path), zenv.load_zenv(str(ETC / "zmailer.conf")))
    assert cfg.read and cfg.configured
    assert cfg.errors == [], cfg.errors
    assert cfg.warnings == [], cfg.warnings


def check_zmailer_conf(path: Path) -> None:
    names: list[str] = []
    for n, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line or line.startswith(b"#"):
            continue
        m = re.fullmatch(rb"([A-Z][A-Z0-9_]*)=(.*)", line)
        assert m, (n, line)
        assert m.group(2) == m.group(2).rstrip(), (n, "trailing blanks are part of the value")
        names.append(m.group(1).decode())
    assert len(names) == len(set(names)), "a name twice: only the first line counts"
    z = zenv.load_zenv(str(path))
    for name, default in zenv.DEFAULTS.items():
        value = z.file_value(name)
        assert value is None or value == default, (name, value, default)


def check_policy_sources(path: Path, tmp: Path) -> None:
    for name in POLICY_FILES:
        if (path.parent / name).exists():
            shutil.copy(path.parent / name, tmp / name)
    messages: list[str] = []
    assert builder.build(str(tmp), "smtp-policy", "btree", err=messages.append) == 0, messages
    assert messages == [], messages
    assert (tmp / "smtp-policy.db").is_file()
    if path.name != "smtp-policy.src":  # the builder really took this file in
        assert f"# {path.name}" in (tmp / "smtp-policy.dat").read_text(errors="replace")


def _argv_ok(argv: list[str], mode: str) -> cli.Options:
    opts = cli.parse_args(argv)
    assert opts.mode == mode, (argv, opts.mode)
    return opts


def check_inetd_conf(path: Path) -> None:
    entries = [ln.lstrip("#") for ln in _lines(path)
               if re.match(r"#?[a-z0-9-]+\s+stream\s", ln)]
    assert entries
    for line in entries:
        f = line.split()
        assert len(f) >= 7, line
        service, socktype, proto, wait, user, program, *argv = f
        assert socktype == "stream" and proto in ("tcp", "tcp6", "tcp4") and wait == "nowait"
        assert service in ("smtp", "submissions", "smtps", "submission"), service
        assert re.fullmatch(r"[a-z_][a-z0-9_-]*(\.[a-z_][a-z0-9_-]*)?", user), user
        assert program == PROGRAM, program
        assert argv[0] == "smtpserver"
        _argv_ok(argv, "inetd")


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in _active(path):
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        k, sep, v = line.partition("=")
        assert current is not None and sep and re.fullmatch(r"[A-Za-z]+", k), line
        current.setdefault(k, []).append(v)
    return sections


def check_systemd_unit(path: Path) -> None:
    unit = _unit(path)
    assert "Unit" in unit and "Description" in unit["Unit"]
    if path.suffix == ".service":
        svc = unit["Service"]
        (cmd,) = svc["ExecStart"]
        argv = shlex.split(cmd)
        assert argv[0] == PROGRAM
        if path.name.endswith("@.service"):  # started per connection by an Accept=yes socket
            _argv_ok(argv, "inetd")
            assert svc.get("StandardInput") == ["socket"]
        else:
            opts = _argv_ok(argv, "daemon")
            assert opts.foreground, "a daemon under systemd must not detach"
    elif path.suffix == ".socket":
        sock = unit["Socket"]
        for listen in sock["ListenStream"]:
            assert re.fullmatch(r"(\[[0-9a-fA-F:.]+\]:|[0-9.]+:)?[0-9]+", listen), listen
        if sock.get("Accept") == ["yes"]:
            assert (path.parent / f"{path.stem}@.service").is_file()
        else:
            target = sock.get("Service", [f"{path.stem}.service"])[0]
            assert (path.parent / target).is_file(), target
            for name in sock.get("FileDescriptorName", []):
                assert name in ("smtp", "smtps", "submit"), name
        assert "Install" in unit
    else:
        raise AssertionError(f"unknown unit type {path.name}")


def check_pam_service(path: Path) -> None:
    lines = _lines(path)
    assert lines[0] == "#%PAM-1.0"
    rules = _active(path)
    assert rules
    for rule in rules:
        f = rule.split()
        if f[0] == "@include":
            assert len(f) == 2
            if Path("/etc/pam.d").is_dir():
                assert (Path("/etc/pam.d") / f[1]).is_file(), f[1]
            continue
        assert f[0].lstrip("-") in ("auth", "account", "password", "session"), rule
        assert f[1] in ("required", "requisite", "sufficient", "optional", "include",
                        "substack") or f[1].startswith("["), rule
        module = f[2]
        if module.endswith(".so") and "/" not in module:
            assert any((Path(d) / module).is_file() for d in SECURITY_DIRS), module


CHECKERS: dict[str, Callable[..., None]] = {
    "etc/smtpserver.conf": check_smtpserver_conf,
    "etc/zmailer.conf": check_zmailer_conf,
    "etc/smtp-policy.src": check_policy_sources,
    "etc/localnames": check_policy_sources,
    "etc/smtp-policy.*": check_policy_sources,
    "etc/inetd.conf": check_inetd_conf,
    "etc/systemd/*.service": check_systemd_unit,
    "etc/systemd/*.socket": check_systemd_unit,
    "contrib/pam.d/*": check_pam_service,
}


def checker_for(rel: str) -> Callable[..., None] | None:
    for pattern, fn in CHECKERS.items():
        if fnmatch.fnmatchcase(rel, pattern):
            return fn
    return None


def test_something_is_shipped() -> None:
    files = shipped()
    for must in ("etc/smtpserver.conf", "etc/zmailer.conf", "etc/smtp-policy.src",
                 "contrib/pam.d/smtpauth-login"):
        assert must in files


def test_every_shipped_file_has_a_checker() -> None:
    unchecked = [rel for rel in shipped() if checker_for(rel) is None]
    assert not unchecked, f"add a checker to t/test_shipped_files.py for: {unchecked}"


@pytest.mark.parametrize("rel", shipped())
def test_shipped_file_parses(rel: str, tmp_path: Path) -> None:
    fn = checker_for(rel)
    if fn is None:
        pytest.fail(f"no checker for {rel}")
    if fn is check_policy_sources:
        fn(ROOT / rel, tmp_path)
    else:
        fn(ROOT / rel)


def test_shipped_text_files_are_clean() -> None:
    """No CR LF (a CR would end up in smtpserver.conf values), no tabs in PAM/units, final LF."""
    for rel in shipped():
        data = (ROOT / rel).read_bytes()
        assert b"\r" not in data, rel
        assert data.endswith(b"\n"), rel
        assert b"\0" not in data, rel


# --- the manual's examples are real too --------------------------------------------


def _unescaped_page() -> str:
    return (ROOT / "man" / "smtpserver.8zm").read_text(encoding="utf-8")


def test_manual_tcp_wrapper_example_behaves_as_described(tmp_path: Path) -> None:
    page = _unescaped_page()
    m = re.search(r"(?s)# /etc/hosts\.allow\n(.*?)\n# /etc/hosts\.deny\n(.*?)\n\.fi", page)
    assert m is not None
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text(manpage.unescape(m.group(1)) + "\n")
    deny.write_text(manpage.unescape(m.group(2)) + "\n")
    assert tcpwrap.allowed("smtp-receiver", "192.0.2.7", None, str(allow), str(deny))
    assert not tcpwrap.allowed("mailq", "192.0.2.7", None, str(allow), str(deny))


def test_manual_policy_test_recipe_parses() -> None:
    page = manpage.unescape(_unescaped_page())
    m = re.search(r"\$MAILBIN/smtpserver (-i -d 1 -T \S+)", page)
    assert m is not None
    argv = ["smtpserver", *shlex.split(m.group(1).replace("\\(aq", "'"))]
    opts = cli.parse_args(argv)
    assert opts.mode == "interactive" and opts.debug == 1 and opts.test_ip == "192.0.2.33"
