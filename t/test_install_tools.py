"""tools/install puts a working smtpserver into MAILBIN, and tools/gen-man-params works."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zmailer_smtpd import VERSION_NUMB, __version__

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "tools" / "install"
PAGE = ROOT / "man" / "smtpserver.8zm"


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(INSTALL), "--python", sys.executable, *args],
                          capture_output=True, text=True, timeout=120, cwd="/")


def _run(prog: Path, *args: str, env: dict[str, str] | None = None,
         stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(env or {})
    return subprocess.run([str(prog), *args], input=stdin, capture_output=True, timeout=120,
                          env=full, cwd="/")


def _pkgdir(stderr: bytes) -> str:
    """The package directory -V reports (its second line)."""
    return stderr.decode().splitlines()[1].split(":", 1)[1]


def test_root_install_uses_the_default_layout(tmp_path: Path) -> None:
    r = _install("--root", str(tmp_path))
    assert r.returncode == 0, r.stderr
    prog = tmp_path / "usr/lib/zmailer/smtpserver"
    builder = tmp_path / "usr/lib/zmailer/zmailer-policy-builder"
    page = tmp_path / "usr/share/man/man8/smtpserver.8zm"
    pkg = tmp_path / "usr/lib/zmailer/python/zmailer_smtpd"
    for f in (prog, builder):
        assert stat.S_IMODE(f.stat().st_mode) == 0o755
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    assert page.read_bytes() == PAGE.read_bytes()
    assert (pkg / "cli.py").is_file() and (pkg / "policy" / "builder.py").is_file()
    assert not list(pkg.rglob("__pycache__"))
    text = prog.read_text()
    assert text.startswith(f"#!{sys.executable}\n")
    # The launcher names the final place, not the DESTDIR one.
    assert "sys.path.insert(0, '/usr/lib/zmailer/python')" in text
    assert str(tmp_path) not in text
    assert not list(tmp_path.rglob(".*new-*"))


def test_root_install_runs_from_the_temporary_root(tmp_path: Path) -> None:
    mailbin = "/nonexistent-zmailer-smtpd-test/bin"
    r = _install("--root", str(tmp_path), "--mailbin", mailbin, "--mandir", "/usr/local/man")
    assert r.returncode == 0, r.stderr
    prog = tmp_path / mailbin.lstrip("/") / "smtpserver"
    assert (tmp_path / "usr/local/man/man8/smtpserver.8zm").is_file()
    lib = tmp_path / mailbin.lstrip("/") / "python"
    v = _run(prog, "-V", env={"PYTHONPATH": str(lib)})
    assert v.returncode == 0, v.stderr
    assert v.stderr.startswith(f"ZMailer smtpserver (zmailer_smtpd {__version__}".encode())
    assert _pkgdir(v.stderr) == str(lib / "zmailer_smtpd")


def test_installed_program_runs_a_session_and_builds_a_policy(tmp_path: Path) -> None:
    mailbin = tmp_path / "mailbin"
    r = _install("--mailbin", str(mailbin), "--mandir", str(tmp_path / "man"))
    assert r.returncode == 0, r.stderr
    prog = mailbin / "smtpserver"
    v = _run(prog, "-V")
    assert v.returncode == 0 and _pkgdir(v.stderr) == str(mailbin / "python" / "zmailer_smtpd")

    # The greeting's %V is the package version (interactive session, QUIT).
    (tmp_path / "po").mkdir()
    zconf = tmp_path / "zmailer.conf"
    zconf.write_text(f"POSTOFFICE={tmp_path / 'po'}\nMAILSHARE={tmp_path}\n")
    conf = tmp_path / "smtpserver.conf"
    conf.write_text("*  ve\n")
    s = _run(prog, "-i", "-Z", str(zconf), "-C", str(conf), stdin=b"QUIT\r\n")
    assert s.returncode == 0, s.stderr
    first, second = s.stdout.split(b"\r\n")[:2]
    assert first.startswith(b"220 ") and VERSION_NUMB.encode() + b" ESMTP" in first
    assert second.startswith(b"221 ")

    # The builder launcher compiles the shipped policy sources.
    db = tmp_path / "db"
    db.mkdir()
    for name in ("smtp-policy.src", "localnames", "smtp-policy.relay", "smtp-policy.mx",
                 "smtp-policy.spam"):
        shutil.copy(ROOT / "etc" / name, db / name)
    b = _run(mailbin / "zmailer-policy-builder", "-d", str(db))
    assert b.returncode == 0, b.stderr
    assert (db / "smtp-policy.db").is_file()


def test_existing_c_program_is_kept_once(tmp_path: Path) -> None:
    mailbin = tmp_path / "mailbin"
    mailbin.mkdir()
    c_prog = mailbin / "smtpserver"
    c_prog.write_bytes(b"\x7fELF the C smtpserver")
    c_prog.chmod(0o755)
    args = ("--mailbin", str(mailbin), "--mandir", str(tmp_path / "man"))
    assert _install(*args).returncode == 0
    backup = mailbin / "smtpserver.zmailer-c"
    assert backup.read_bytes() == b"\x7fELF the C smtpserver"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o755
    assert b"zmailer_smtpd" in c_prog.read_bytes()
    # A second install replaces our launcher and leaves the backup alone.
    assert _install(*args).returncode == 0
    assert backup.read_bytes() == b"\x7fELF the C smtpserver"
    assert not list(mailbin.glob("smtpserver.zmailer-c*"))[1:]


def test_reinstall_replaces_the_package_whole(tmp_path: Path) -> None:
    args = ("--mailbin", str(tmp_path / "bin"), "--mandir", str(tmp_path / "man"),
            "--libdir", str(tmp_path / "lib"))
    assert _install(*args).returncode == 0
    stale = tmp_path / "lib" / "zmailer_smtpd" / "removed_module.py"
    stale.write_text("# from an older release\n")
    assert _install(*args).returncode == 0
    assert not stale.exists()
    assert (tmp_path / "lib" / "zmailer_smtpd" / "__init__.py").is_file()
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == ["zmailer_smtpd"]
    assert f"'{tmp_path / 'lib'}'" in (tmp_path / "bin" / "smtpserver").read_text()


@pytest.mark.parametrize("bad", [["--mailbin", "relative/bin"], ["--mandir", "man"],
                                 ["--python", "/usr/bin/py thon"], ["--bogus"]])
def test_bad_arguments_are_refused(tmp_path: Path, bad: list[str]) -> None:
    r = _install("--root", str(tmp_path), *bad)
    assert r.returncode == 2
    assert not any(tmp_path.iterdir())


def test_help_documents_the_one_line_install() -> None:
    r = subprocess.run([sys.executable, str(INSTALL), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    for word in ("--mailbin", "--mandir", "--root", "/usr/lib/zmailer"):
        assert word in r.stdout


def test_manual_documents_every_install_option() -> None:
    r = subprocess.run([sys.executable, str(INSTALL), "--help"], capture_output=True, text=True,
                       timeout=60)
    options = set(re.findall(r"(--[a-z]+)", r.stdout)) - {"--help"}
    assert options >= {"--mailbin", "--mandir", "--root"}
    page = PAGE.read_text().replace("\\-", "-")
    section = page.split(".SH INSTALLATION\n", 1)[1].split("\n.SH ", 1)[0]
    for opt in options:
        assert opt in section, opt
