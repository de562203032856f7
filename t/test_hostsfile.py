"""The host name service (hostsfile.py): /etc/hosts and DNS in nsswitch.conf's order.

3.0.1 names its client with gethostbyaddr() and checks names with getaddrinfo(),
which ask glibc's sources in turn.  The namespace's /etc/hosts is t/dns/hosts
(tools/in-netns) and its DNS is t/dns/dnsmasq.conf: 127.0.0.2 is named in
both, differently; 127.0.0.3 only in the file; 127.0.0.4 only in DNS.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_daemon_clients import ME, Smtpd, read_replies, smtpd  # noqa: F401  (fixture)

from zmailer_smtpd.dnsresolve import Resolver, Server, TempFail
from zmailer_smtpd.hostsfile import DEFAULT_SOURCES, HostsTable, NameService, parse_sources

NS = Resolver([Server("127.0.0.1")], timeout=2.0)  # the namespace's dnsmasq

HOSTS = """\
# a comment line
127.0.0.1   localhost
192.0.2.7   Mail.Example.NET  mail alias-two   # trailing comment
192.0.2.7   second-line.example
2001:db8::7 mail.example.net
::ffff:192.0.2.8 mapped.example
not-an-address bogus.example
192.0.2.9
198.51.100.1 mail.example.net
"""


def test_hosts_table_names_an_address_by_the_first_name_of_its_first_line() -> None:
    t = HostsTable(HOSTS)
    assert t.name_of("192.0.2.7") == "Mail.Example.NET"
    assert t.name_of("127.0.0.1") == "localhost"
    assert t.name_of("2001:db8:0::7") == "mail.example.net"  # any spelling of the address
    assert t.name_of("::ffff:192.0.2.7") == "Mail.Example.NET"  # mapped: looked up as IPv4
    assert t.name_of("192.0.2.8") == "mapped.example"
    assert t.name_of("192.0.2.9") is None  # a line without a name names nothing
    assert t.name_of("192.0.2.99") is None
    assert t.name_of("bogus") is None


def test_hosts_table_addresses_of_a_name_any_case_alias_or_line() -> None:
    t = HostsTable(HOSTS)
    assert t.addresses_of("mail.example.net", ipv6=False) == ["192.0.2.7", "198.51.100.1"]
    assert t.addresses_of("MAIL.example.NET", ipv6=True) == ["192.0.2.7", "198.51.100.1",
                                                               "2001:db8::7"]
    assert t.addresses_of("alias-two", ipv6=False) == ["192.0.2.7"]
    assert t.addresses_of("bogus.example", ipv6=True) == []
    assert t.addresses_of("localhost.", ipv6=False) == []  # no trailing-dot folding, as glibc


@pytest.mark.parametrize(("text", "want"), [
    ("hosts:          files dns\n", ("files", "dns")),
    ("hosts: dns files\n", ("dns", "files")),
    ("hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n", ("files", "dns")),
    ("hosts: files [ SUCCESS=continue dns ] dns\n", ("files", "dns")),  # inside [..]: an action
    ("# hosts: dns\npasswd: files\n", DEFAULT_SOURCES),
    ("hosts: files\nhosts: dns\n", ("dns",)),  # the last line wins
    ("hosts: nis\n", ()),
    ("", DEFAULT_SOURCES),
])
def test_nsswitch_hosts_line(text: str, want: tuple[str, ...]) -> None:
    assert parse_sources(text) == want


def _service(tmp_path: Path, hosts: str, nss: str | None) -> NameService:
    (tmp_path / "hosts").write_text(hosts)
    if nss is not None:
        (tmp_path / "nsswitch.conf").write_text(nss)
    return NameService(str(tmp_path / "hosts"), str(tmp_path / "nsswitch.conf"), recheck=0)


def test_files_before_dns_the_hosts_name_wins(tmp_path: Path) -> None:
    names = _service(tmp_path, "127.0.0.2 from-file.example\n", "hosts: files dns\n")
    assert NS.ptr("127.0.0.2") == "dns-client.example"  # DNS has another name
    assert names.name_of(NS, "127.0.0.2") == "from-file.example"
    assert names.name_of(NS, "127.0.0.4") == "dns-only.example"  # not in the file: DNS
    assert names.addresses_of(NS, "from-file.example") == ["127.0.0.2"]
    assert names.addresses_of(NS, "dns-only.example") == ["127.0.0.4"]
    assert names.addresses_of(NS, "nowhere.example") == []


def test_dns_before_files_and_files_only_as_fallback(tmp_path: Path) -> None:
    names = _service(tmp_path, "127.0.0.2 from-file.example\n127.0.0.9 nine.example\n",
                     "hosts: dns files\n")
    assert names.name_of(NS, "127.0.0.2") == "dns-client.example"
    assert names.name_of(NS, "127.0.0.9") == "nine.example"


def test_without_files_in_nsswitch_the_hosts_file_is_not_read(tmp_path: Path) -> None:
    names = _service(tmp_path, "127.0.0.2 from-file.example\n", "hosts: dns\n")
    assert names.name_of(NS, "127.0.0.2") == "dns-client.example"
    names = _service(tmp_path, "127.0.0.4 from-file.example\n", "hosts: files\n")
    assert names.name_of(NS, "127.0.0.4") == "from-file.example"
    assert names.name_of(NS, "127.0.0.2") is None  # DNS not asked


def test_without_nsswitch_conf_glibc_default_order(tmp_path: Path) -> None:
    names = _service(tmp_path, "127.0.0.2 from-file.example\n127.0.0.9 nine.example\n", None)
    assert names.name_of(NS, "127.0.0.2") == "dns-client.example"
    assert names.name_of(NS, "127.0.0.9") == "nine.example"


def test_a_changed_hosts_file_is_read_again(tmp_path: Path) -> None:
    names = _service(tmp_path, "127.0.0.9 old.example\n", "hosts: files dns\n")
    assert names.name_of(NS, "127.0.0.9") == "old.example"
    (tmp_path / "hosts").write_text("127.0.0.9 new-name.example\n")  # other size
    assert names.name_of(NS, "127.0.0.9") == "new-name.example"
    (tmp_path / "hosts").unlink()
    assert names.name_of(NS, "127.0.0.9") is None
    (tmp_path / "nsswitch.conf").write_text("hosts: dns\n")
    (tmp_path / "hosts").write_text("127.0.0.2 from-file.example\n")
    assert names.name_of(NS, "127.0.0.2") == "dns-client.example"


def test_a_change_is_seen_within_the_recheck_interval(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("127.0.0.9 old.example\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files\n")
    names = NameService(str(tmp_path / "hosts"), str(tmp_path / "nsswitch.conf"), recheck=3600)
    assert names.name_of(NS, "127.0.0.9") == "old.example"
    (tmp_path / "hosts").write_text("127.0.0.9 new-name.example\n")
    assert names.name_of(NS, "127.0.0.9") == "old.example"  # not looked at again yet
    names._hosts.checked -= 3600
    assert names.name_of(NS, "127.0.0.9") == "new-name.example"


def test_a_dns_failure_is_temporary_only_when_no_source_found_it(tmp_path: Path) -> None:
    dead = Resolver([Server("127.0.0.1", 9)], timeout=0.5)  # nothing listens: refused at once
    names = _service(tmp_path, "127.0.0.9 nine.example\n", "hosts: dns files\n")
    assert names.addresses_of(dead, "nine.example") == ["127.0.0.9"]
    with pytest.raises(TempFail):
        names.addresses_of(dead, "other.example")
    assert names.name_of(dead, "127.0.0.9") == "nine.example"


def _session_from(d: Smtpd, source: str, helo: bytes) -> bytes:
    """One message from ``source`` (a loopback address) with ``helo``; the spooled envelope head."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=30,
                                  source_address=(source, 0)) as s:
        read_replies(s, 1)
        for cmd in (b"HELO " + helo, b"MAIL FROM:<a@example.net>", b"RCPT TO:<postmaster@localhost>",
                    b"DATA"):
            s.sendall(cmd + b"\r\n")
            assert read_replies(s, 1)[0][:1] in (b"2", b"3")
        s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        done = read_replies(s, 1)[0]
        assert done.startswith(b"250 "), done
        s.sendall(b"QUIT\r\n")
        read_replies(s, 1)
    d.sessions_done()
    (name,) = os.listdir(d.po / "router")
    data = (d.po / "router" / name).read_bytes()
    os.unlink(d.po / "router" / name)
    return data


def test_daemon_names_its_client_from_etc_hosts(smtpd: Callable[..., Smtpd]) -> None:  # noqa: F811
    """t/dns/hosts names 127.0.0.2 (DNS says otherwise): the session, the log and the spool say so."""
    assert "files" in Path("/etc/nsswitch.conf").read_text()  # Debian's "hosts: files dns"
    d = smtpd()
    data = _session_from(d, "127.0.0.2", b"hc.example")
    assert re.search(rb'^rcvdfrom hosts-client\.example \(\[127\.0\.0\.2\]:\d+ "HELO hc\.example" '
                     rb"rhost-flags-OK-OK-OK-OK\)$", data, re.M), data
    assert re.search(rb"connection from hosts-client\.example \[127\.0\.0\.2\]:\d+ ",
                     d.log_bytes()), d.log_bytes()
    # in DNS only: the hosts file passes the lookup on; the HELO name is nowhere
    data = _session_from(d, "127.0.0.4", b"nowhere.example")
    assert re.search(rb'^rcvdfrom dns-only\.example \(\[127\.0\.0\.4\]:\d+ "HELO nowhere\.example" '
                     rb"rhost-flags-OK-OK-OK-FAIL\)$", data, re.M), data
    # a name in the file only, and its HELO checked against the file
    data = _session_from(d, "127.0.0.3", b"files-only.example")
    assert re.search(rb'^rcvdfrom files-only\.example \(\[127\.0\.0\.3\]:\d+ "HELO files-only\.example" '
                     rb"rhost-flags-OK-OK-OK-OK\)$", data, re.M), data


def test_daemon_greets_with_the_name_of_the_address_the_client_reached(tmp_path: Path) -> None:
    """protocol.md §4.2 step 3: myhostname is the local address's name (t/dns/hosts), per session."""
    d = Smtpd(tmp_path)
    d.conf.write_text(d.conf.read_text().replace(
        f"PARAM BindSmtp [127.0.0.1] {d.port}\n",
        f"PARAM BindSmtp [127.0.0.3] {d.port}\nPARAM BindSmtp [127.0.0.1] {d.port}\n"))
    try:
        d.start()
        for addr, me in (("127.0.0.3", b"files-only.example"), ("127.0.0.1", ME)):
            with socket.create_connection((addr, d.port), timeout=30) as s:
                assert read_replies(s, 1)[0].startswith(b"220 " + me + b" "), addr
                s.sendall(b"HELO client.example\r\n")
                assert read_replies(s, 1)[0].startswith(b"250 " + me + b" "), addr
                s.sendall(b"QUIT\r\n")
                assert read_replies(s, 1)[0] == b"221 2.0.0 " + me + b" Out\r\n"
    finally:
        d.stop()


@pytest.fixture(autouse=True)
def _namespace_hosts() -> Iterator[None]:
    """These tests need the namespace's t/dns/hosts as /etc/hosts (tools/in-netns)."""
    here = Path(__file__).resolve().parent / "dns" / "hosts"
    assert Path("/etc/hosts").read_bytes() == here.read_bytes(), "run through tools/test"
    yield
