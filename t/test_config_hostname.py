"""myhostname: uname node name, canonicalised by getaddrinfo (protocol.md §3.3 step 1)."""

from __future__ import annotations

import os
import socket

import pytest

from zmailer_smtpd import hostname


def test_unknown_name_falls_back_to_itself() -> None:
    assert hostname.canonical_name("no-such-host.invalid") == "no-such-host.invalid"


def test_an_alias_gives_its_canonical_name() -> None:
    """t/dns/hosts (the test namespace's /etc/hosts): ``127.0.0.2 hosts-client.example hc.example``."""
    assert hostname.canonical_name("hc.example") == "hosts-client.example"
    assert hostname.canonical_name("hosts-client.example") == "hosts-client.example"


def test_myhostname_is_node_or_its_canonical_name_and_cached() -> None:
    hostname.set_myhostname(None)
    try:
        first = hostname.myhostname()
        node = os.uname().nodename
        assert first == hostname.canonical_name(node)
        assert hostname.myhostname() is first
    finally:
        hostname.set_myhostname(None)


def test_eai_again_is_retried_up_to_five_times(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = socket.getaddrinfo

    def flaky(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) < 3:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure")
        return real("hc.example", None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                    socket.AI_CANONNAME)

    monkeypatch.setattr(socket, "getaddrinfo", flaky)
    assert hostname.canonical_name("whatever") == "hosts-client.example"
    assert len(calls) == 3

    calls.clear()

    def always_again(*args: object, **kw: object) -> object:
        calls.append(1)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure")

    monkeypatch.setattr(socket, "getaddrinfo", always_again)
    assert hostname.canonical_name("node") == "node"
    assert len(calls) == 5


def test_override_for_fixtures() -> None:
    hostname.set_myhostname("mx.example.org")
    try:
        assert hostname.myhostname() == "mx.example.org"
    finally:
        hostname.set_myhostname(None)
