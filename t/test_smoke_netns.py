"""The suite runs in a private network namespace: prove it, so no test can reach out."""

import socket
from pathlib import Path


def test_only_loopback_exists() -> None:
    names = {name for _, name in socket.if_nameindex()}
    assert names == {"lo"}, f"interfaces other than lo exist: {names}"


def test_resolver_is_loopback() -> None:
    servers = [
        line.split()[1]
        for line in Path("/etc/resolv.conf").read_text().splitlines()
        if line.startswith("nameserver")
    ]
    assert servers == ["127.0.0.1"]


def test_outside_address_unreachable() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            s.connect(("192.0.2.1", 53))
        except OSError:
            return
        raise AssertionError("a non-loopback route exists inside the test namespace")
    finally:
        s.close()
