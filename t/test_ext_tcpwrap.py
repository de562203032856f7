"""TCP wrappers: hosts.allow / hosts.deny semantics of hosts_access(5) (§6.3, §8.6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zmailer_smtpd import tcpwrap

D = tcpwrap.DAEMON


def files(tmp_path: Path, allow: str, deny: str) -> dict[str, str]:
    a = tmp_path / "hosts.allow"
    d = tmp_path / "hosts.deny"
    a.write_text(allow)
    d.write_text(deny)
    return {"allow_file": str(a), "deny_file": str(d)}


def test_p1_deny_all(tmp_path: Path) -> None:
    f = files(tmp_path, "", "smtp-receiver: ALL\n")
    assert D == "smtp-receiver"
    assert not tcpwrap.allowed(D, "192.0.2.7", "client.example.org", **f)
    assert tcpwrap.allowed("sshd", "192.0.2.7", "client.example.org", **f)


def test_missing_files_allow(tmp_path: Path) -> None:
    assert tcpwrap.allowed(D, "192.0.2.7", None, allow_file=str(tmp_path / "a"),
                           deny_file=str(tmp_path / "d"))


def test_allow_wins_over_deny(tmp_path: Path) -> None:
    f = files(tmp_path, "smtp-receiver: 192.0.2.\n", "ALL: ALL\n")
    assert tcpwrap.allowed(D, "192.0.2.7", None, **f)
    assert not tcpwrap.allowed(D, "198.51.100.1", None, **f)


@pytest.mark.parametrize(
    "pattern,addr,name,hit",
    [
        (".example.org", "192.0.2.7", "client.example.org", True),
        (".example.org", "192.0.2.7", "example.org.evil.net", False),
        ("192.0.2.", "192.0.2.7", None, True),
        ("192.0.2.", "192.0.20.7", None, False),
        ("192.0.2.0/255.255.255.0", "192.0.2.7", None, True),
        ("192.0.2.0/24", "192.0.3.7", None, False),
        ("[2001:db8::]/32", "2001:db8::1", None, True),
        ("[2001:db8::1]", "2001:db8::1", None, True),
        ("*.example.org", "192.0.2.7", "a.b.example.org", True),
        ("192.0.2.?", "192.0.2.7", None, True),
        ("LOCAL", "192.0.2.7", "localhost", True),
        ("LOCAL", "192.0.2.7", "a.example", False),
        ("UNKNOWN", "192.0.2.7", None, True),
        ("KNOWN", "192.0.2.7", "a.example", True),
        ("PARANOID", "192.0.2.7", None, True),
        ("@netgroup", "192.0.2.7", "a.example", False),
        ("ALL EXCEPT 192.0.2.7", "192.0.2.7", None, False),
        ("ALL EXCEPT 192.0.2.7", "192.0.2.8", None, True),
        ("ALL EXCEPT .example.org EXCEPT good.example.org", "1.2.3.4", "good.example.org", True),
        ("CLIENT.Example.ORG", "192.0.2.7", "client.example.org", True),
        ("a, b ,192.0.2.7", "192.0.2.7", None, True),
        ("192.0.2.7", "::ffff:192.0.2.7", None, True),
        ("192.0.2.0/24", "::ffff:192.0.2.7", None, True),
        ("192.0.2.", "[IPv6:::ffff:192.0.2.7]", None, True),
    ],
)
def test_client_patterns(tmp_path: Path, pattern: str, addr: str, name: str | None,
                         hit: bool) -> None:
    f = files(tmp_path, "", f"smtp-receiver: {pattern}\n")
    assert tcpwrap.allowed(D, addr, name, **f) is (not hit)


def test_daemon_list_and_except(tmp_path: Path) -> None:
    f = files(tmp_path, "", "ALL EXCEPT smtp-receiver: ALL\n")
    assert tcpwrap.allowed(D, "192.0.2.7", None, **f)
    f = files(tmp_path, "", "sshd, smtp-*: ALL\n")
    assert not tcpwrap.allowed(D, "192.0.2.7", None, **f)
    f = files(tmp_path, "", "smtp-receiver@127.0.0.1: ALL\n")
    assert not tcpwrap.allowed(D, "192.0.2.7", None, server_addr="127.0.0.1", **f)
    assert tcpwrap.allowed(D, "192.0.2.7", None, server_addr="127.0.0.2", **f)


def test_comments_continuation_and_options(tmp_path: Path) -> None:
    f = files(
        tmp_path,
        f"# comment\n\nsmtp-receiver: \\\n  192.0.2.9 : spawn (/bin/touch {tmp_path}/pwned)\n"
        "ALL: .bad.example : deny\n",
        "ALL: 10.\n",
    )
    assert tcpwrap.allowed(D, "192.0.2.9", None, **f)
    assert not tcpwrap.allowed(D, "192.0.2.1", "x.bad.example", **f)
    assert not (tmp_path / "pwned").exists()  # no shell command is ever run
    f = files(tmp_path, "", "ALL: 192.0.2.7 : allow\n")
    assert tcpwrap.allowed(D, "192.0.2.7", None, **f)


def test_user_at_host_and_file_lists(tmp_path: Path) -> None:
    lst = tmp_path / "list"
    lst.write_text("192.0.2.7\n.example.net\n")
    f = files(tmp_path, "", f"smtp-receiver: {lst}\n")
    assert not tcpwrap.allowed(D, "192.0.2.7", None, **f)
    assert not tcpwrap.allowed(D, "1.1.1.1", "a.example.net", **f)
    assert tcpwrap.allowed(D, "1.1.1.1", None, **f)
    f = files(tmp_path, "", "smtp-receiver: joe@192.0.2.7\n")
    assert not tcpwrap.allowed(D, "192.0.2.7", None, client_user="joe", **f)
    assert tcpwrap.allowed(D, "192.0.2.7", None, client_user="ann", **f)
