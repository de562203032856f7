"""TLS through the real daemon (issues 3 and 5): the SMTPS listener (`PARAM BindSmtpS`,
implicit TLS before the greeting) and STARTTLS on the plain listener, with real
clients (Python's ssl and smtplib, swaks --tlsc / --tls) and real certificates.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from test_daemon_clients import Smtpd, swaks
from test_daemon_parent import free_port


@pytest.fixture
def tls_smtpd(tmp_path: Path) -> Iterator[tuple[Smtpd, int, trustme.CA]]:
    ca = trustme.CA()
    cert = ca.issue_cert("mx.example.org", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    d = Smtpd(tmp_path)
    sport = free_port()
    with d.conf.open("a") as f:
        f.write(f"PARAM use-tls\nPARAM tls-cert-file {tmp_path}/cert.pem\n"
                f"PARAM tls-key-file {tmp_path}/key.pem\nPARAM rcvd-tls-mode\n"
                f"PARAM BindSmtpS [127.0.0.1] {sport}\n")
    d.start()
    try:
        yield d, sport, ca
    finally:
        d.stop()


def _spooled(d: Smtpd) -> bytes:
    d.sessions_done()
    (data,) = d.router_files().values()
    return data


def test_smtps_listener_greets_inside_tls(tls_smtpd: tuple[Smtpd, int, trustme.CA]) -> None:
    d, sport, ca = tls_smtpd
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with smtplib.SMTP_SSL("127.0.0.1", sport, context=ctx, timeout=30) as s:
        code, ehlo = s.ehlo("client.example.net")
        assert code == 250 and b"STARTTLS" not in ehlo  # already inside TLS
        s.sendmail("a@example.net", ["postmaster@localhost"], b"Subject: t\r\n\r\nbody\r\n")
    data = _spooled(d)
    assert b"TLS-CIPHER: " in data and b"\nwith ESMTPS\n" in data


def test_swaks_tlsc_on_the_smtps_listener(tls_smtpd: tuple[Smtpd, int, trustme.CA]) -> None:
    d, sport, _ = tls_smtpd
    p = swaks(d, "--tlsc", "--from", "a@example.net", "--to", "postmaster@localhost", port=sport)
    assert p.returncode == 0, p.stdout.decode("latin-1")
    assert b"=== TLS started" in p.stdout and b"<~  250 2.0.0 " in p.stdout
    assert b"TLS-CIPHER: " in _spooled(d)


def test_swaks_starttls_on_the_plain_listener(tls_smtpd: tuple[Smtpd, int, trustme.CA]) -> None:
    d, _, _ = tls_smtpd
    p = swaks(d, "--tls", "--from", "a@example.net", "--to", "postmaster@localhost")
    assert p.returncode == 0, p.stdout.decode("latin-1")
    assert b"<-  220 " in p.stdout and b"=== TLS started" in p.stdout
    assert b"<~  250 2.0.0 " in p.stdout
    assert b"\nwith ESMTPS\n" in _spooled(d)
