"""Per-connection savings: what a typical session never loads or formats."""

from __future__ import annotations

import subprocess
import sys

from zmailer_smtpd.auth import Authenticator
from zmailer_smtpd.session import _redact_auth


def test_importing_auth_leaves_pysasl_unloaded() -> None:
    """pysasl loads on the first AUTH, so the daemon parent does not carry it into every fork."""
    code = "import sys, zmailer_smtpd.auth; print('pysasl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_session_log_redaction_matches_authenticator() -> None:
    lines = [
        b"MAIL FROM:<a@b>", b"AUTH PLAIN AGZvbwBiYXI=", b"auth plain AGZvbwBiYXI= x",
        b" \tAUTH PLAIN secret", b"\x0bAuTh PLAIN secret", b"AUTH LOGIN dXNlcg==",
        b"AUTHX PLAIN secret", b"AUTH", b"AUT", b"", b"   ", b"EHLO auth plain x",
    ]
    for line in lines:
        assert _redact_auth(line) == Authenticator.redact_command(line), line
    assert _redact_auth(b"AUTH PLAIN AGZvbwBiYXI=") == b"AUTH PLAIN **base64-credentials**"


def test_load_sasl_imports_pysasl() -> None:
    """What the daemon parent calls when some group has smtp-auth."""
    code = "import sys, zmailer_smtpd.auth as a; a.load_sasl(); print('pysasl.mechanism.plain' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
