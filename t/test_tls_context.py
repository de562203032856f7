"""TLS context set-up from the tls-* PARAMs: a broken file is a start-up error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from zmailer_smtpd import config, tls


def Settings(values: dict[str, object] | None = None) -> config.Settings:  # noqa: N802
    """The real Settings of config.py, made from keyword -> value."""
    return config.Settings.from_values(values)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    other = trustme.CA()
    srv = ca.issue_cert("mx.example.net", key_type=trustme.KeyType.RSA)
    wrong = other.issue_cert("mx.example.net", key_type=trustme.KeyType.RSA)
    files = {
        "cert": d / "cert.pem",
        "key": d / "key.pem",
        "both": d / "both.pem",
        "wrongkey": d / "wrongkey.pem",
        "ca": d / "ca.pem",
        "garbage": d / "garbage.pem",
        "dh": d / "dh.pem",
    }
    srv.cert_chain_pems[0].write_to_path(str(files["cert"]))
    srv.private_key_pem.write_to_path(str(files["key"]))
    srv.private_key_and_cert_chain_pem.write_to_path(str(files["both"]))
    wrong.private_key_pem.write_to_path(str(files["wrongkey"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["garbage"].write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    files["dh"].write_bytes(b"this is no DH parameter file\n")
    return files


def test_use_tls_off_means_no_context(pki: dict[str, Path]) -> None:
    assert tls.ServerTLS.from_settings(Settings({"tls-cert-file": str(pki["cert"])})) is None


def test_good_cert_and_key(pki: dict[str, Path]) -> None:
    t = tls.ServerTLS.from_settings(
        Settings({"use-tls": True, "tls-cert-file": str(pki["cert"]), "tls-key-file": str(pki["key"])})
    )
    assert t is not None and t.available


def test_one_file_names_both(pki: dict[str, Path]) -> None:
    """Setting either of cert/key defaults the other to the same file (§4.1)."""
    for kw in ("tls-cert-file", "tls-key-file"):
        t = tls.ServerTLS(Settings({"use-tls": True, kw: str(pki["both"])}))
        assert t.conf.cert_file == t.conf.key_file == str(pki["both"])


@pytest.mark.parametrize(
    "conf, named",
    [
        ({"tls-cert-file": "/nonexistent/cert.pem", "tls-key-file": "KEY"}, "/nonexistent/cert.pem"),
        ({"tls-cert-file": "CERT", "tls-key-file": "/nonexistent/key.pem"}, "/nonexistent/key.pem"),
        ({"tls-cert-file": "GARBAGE", "tls-key-file": "KEY"}, "GARBAGE"),
        ({"tls-cert-file": "CERT", "tls-key-file": "CERT"}, "tls-key-file"),
        ({"tls-cert-file": "CERT", "tls-key-file": "WRONGKEY"}, "WRONGKEY"),
        ({"tls-cert-file": "CERT", "tls-key-file": "KEY", "tls-cipher-list": "NO-SUCH-CIPHER"}, "tls-cipher-list"),
        ({"tls-cert-file": "CERT", "tls-key-file": "KEY", "tls-ask-cert": 1}, "tls-CAfile"),
        ({"tls-cert-file": "CERT", "tls-key-file": "KEY", "tls-dh1024": "DH"}, "DH"),
        ({"tls-cert-file": "CERT", "tls-key-file": "KEY", "tls-cafile": "/nonexistent/ca"}, "/nonexistent/ca"),
        ({}, "tls-cert-file"),
    ],
)
def test_broken_setup_is_a_startup_error_naming_the_file(
    pki: dict[str, Path], conf: dict[str, object], named: str
) -> None:
    names = {
        "CERT": str(pki["cert"]),
        "KEY": str(pki["key"]),
        "GARBAGE": str(pki["garbage"]),
        "WRONGKEY": str(pki["wrongkey"]),
        "DH": str(pki["dh"]),
    }
    conf = {k: names.get(v, v) if isinstance(v, str) else v for k, v in conf.items()}
    with pytest.raises(tls.TLSConfigError) as exc:
        tls.ServerTLS.from_settings(Settings({"use-tls": True, **conf}))
    assert names.get(named, named) in str(exc.value)


def test_ask_cert_with_cafile_builds(pki: dict[str, Path]) -> None:
    t = tls.ServerTLS(
        Settings(
            {
                "use-tls": True,
                "tls-cert-file": str(pki["cert"]),
                "tls-key-file": str(pki["key"]),
                "tls-cafile": str(pki["ca"]),
                "tls-ask-cert": 1,
            }
        )
    )
    assert t.conf.ask_cert and not t.conf.require_cert and t.conf.ccert_vd == 1


def test_cipher_info_text() -> None:
    info = tls.TLSInfo(protocol="TLSv1.2", cipher="DHE-RSA-AES256-SHA", secret_bits=256, cipher_version="TLSv1/SSLv3")
    assert info.cipher_info == "DHE-RSA-AES256-SHA keybits 256/256 version TLSv1/SSLv3"
    assert tls.TLSInfo().cipher_info == "<no-cipher-in-use!>"
