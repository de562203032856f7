"""Real PAM (interfaces.md §3.6.2): a service file installed for the test, pam_pwdfile behind it.

Checked two ways: through our PamVerifier (python-pam) and with pamtester, so
a failure tells whether PAM or our code is wrong.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zmailer_smtpd import auth, config

PAMD = Path("/etc/pam.d")
MODULE_DIRS = [Path("/lib/x86_64-linux-gnu/security"), Path("/usr/lib/x86_64-linux-gnu/security"),
               Path("/lib/security"), Path("/usr/lib/security")]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not any((d / "pam_pwdfile.so").exists() for d in MODULE_DIRS),
    reason="needs root (to install a PAM service) and libpam-pwdfile",
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    """A unique PAM service: alice/s3cret in a pwdfile; removed afterwards."""
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "zmailertest", "s3cret"],
        capture_output=True, check=True, text=True,
    ).stdout.strip()
    pwdfile = tmp_path / "passwd"
    pwdfile.write_text(f"alice:{hashed}\n")
    name = f"zmailer-test-{uuid.uuid4().hex[:12]}"
    path = PAMD / name
    path.write_text(
        "# installed by zmailer_smtpd's t/test_auth_pam.py; removed when the test ends\n"
        f"auth\trequired\tpam_pwdfile.so pwdfile={pwdfile} nodelay\n"
        "account\trequired\tpam_permit.so\n"
    )
    try:
        yield name
    finally:
        path.unlink()


def test_pamtester_agrees(service: str) -> None:
    if shutil.which("pamtester") is None:
        pytest.skip("pamtester missing")
    good = subprocess.run(["pamtester", service, "alice", "authenticate"], input=b"s3cret\n",
                          capture_output=True, timeout=60, check=False)
    bad = subprocess.run(["pamtester", service, "alice", "authenticate"], input=b"wrong\n",
                         capture_output=True, timeout=60, check=False)
    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0


def test_pam_verifier(service: str) -> None:
    v = auth.PamVerifier(service)
    assert v.verify(b"alice", b"s3cret").ok
    wrong = v.verify(b"alice", b"wrong")
    assert not wrong.ok and not wrong.temporary and "PAM" in wrong.detail
    assert not v.verify(b"mallory", b"s3cret").ok
    assert v.fail_reply == (535, None, b"Authentication Failed")


def test_auth_login_through_pam(service: str) -> None:
    log: list[str] = []
    a = auth.Authenticator(config.Settings.from_values({"smtp-auth": True}), pam_service=service, log=log.append)
    f = auth.AuthFacts(rhostaddr=b"[192.0.2.7]", helo_seen=True, in_transaction=False,
                       authenticated=False, tls_active=True)
    assert a.start(b"LOGIN", f).reply == (334, None, b"VXNlcm5hbWU6")
    a.step(base64.b64encode(b"alice"))
    step = a.step(base64.b64encode(b"s3cret"))
    assert step.reply == (235, None, b"Authentication successful.") and step.user == b"alice"
    b = auth.Authenticator(config.Settings.from_values({"smtp-auth": True}), pam_service=service, log=log.append)
    step = b.start(b"PLAIN " + base64.b64encode(b"\0alice\0wrong"), f)
    assert step.reply == (535, None, b"Authentication Failed") and step.failed
    assert not any("s3cret" in m or "wrong" in m.split(":")[-1] for m in log)


def test_contrib_service_file_is_well_formed() -> None:
    """contrib/pam.d/smtpauth-login names modules that exist on Debian."""
    text = (Path(__file__).parent.parent / "contrib" / "pam.d" / "smtpauth-login").read_text()
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert any(ln[0] in ("auth", "@include") for ln in lines)
    for ln in lines:
        if ln[0] == "@include":
            assert (PAMD / ln[1]).exists(), ln
        else:
            assert ln[0] in ("auth", "account", "password", "session")
            assert any((d / ln[2]).exists() for d in MODULE_DIRS), ln
