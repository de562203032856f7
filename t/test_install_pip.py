"""``python3 -m pip install .`` installs the package, bin/smtpserver, the builder and the page.

Installed with ``--prefix`` into a temporary directory from a copy of the
source tree (the checkout stays untouched: no build/ or egg-info appears in
it), offline: ``--no-deps --no-build-isolation --no-index``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zmailer_smtpd import __version__

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "bin", "man", "zmailer_smtpd")


def _can_build_wheels() -> bool:
    """setuptools before 70.1 needs the wheel package for bdist_wheel."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _can_build_wheels():
        pytest.skip("offline pip install needs 'wheel' (or setuptools >= 70.1) in the venv")
    tmp = tmp_path_factory.mktemp("pip")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(p, src / name)
    prefix = tmp / "inst"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                        "--no-build-isolation", "--no-index", "--prefix", str(prefix), str(src)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    return prefix


def _site(prefix: Path) -> Path:
    found = list(prefix.glob("lib/python*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _run(prog: Path, *args: str, prefix: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(_site(prefix)))
    return subprocess.run([str(prog), *args], capture_output=True, timeout=120, env=env, cwd="/")


def test_files_are_installed(installed: Path) -> None:
    for name in ("smtpserver", "zmailer-smtpserver", "zmailer-policy-builder"):
        assert os.access(installed / "bin" / name, os.X_OK), name
    page = installed / "share" / "man" / "man8" / "smtpserver.8zm"
    assert page.read_bytes() == (ROOT / "man" / "smtpserver.8zm").read_bytes()
    pkg = _site(installed) / "zmailer_smtpd"
    assert (pkg / "cli.py").is_file() and (pkg / "policy" / "builder.py").is_file()
    assert (pkg / "manpage.py").is_file()


@pytest.mark.parametrize("name", ["smtpserver", "zmailer-smtpserver"])
def test_installed_program_prints_its_version(installed: Path, name: str) -> None:
    r = _run(installed / "bin" / name, "-V", prefix=installed)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.decode().splitlines()
    assert lines[0].startswith(f"ZMailer smtpserver (zmailer_smtpd {__version__}")
    assert lines[1].endswith(str(_site(installed) / "zmailer_smtpd"))


def test_installed_builder_runs(installed: Path, tmp_path: Path) -> None:
    for name in ("smtp-policy.src", "localnames"):
        shutil.copy(ROOT / "etc" / name, tmp_path / name)
    r = _run(installed / "bin" / "zmailer-policy-builder", "-d", str(tmp_path),
             prefix=installed)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "smtp-policy.db").is_file()
