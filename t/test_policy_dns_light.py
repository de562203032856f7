"""The resolver's light response reader (dnsresolve.Light) gives dnspython's answers,
and the daemon parent's primed resolv.conf and interface addresses."""

from __future__ import annotations

import random
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from zmailer_smtpd import dnsresolve
from zmailer_smtpd.dnsresolve import NOT_OURS, Light, Resolver, _reverse_name
from zmailer_smtpd.policy import dnscheck


def wire(name: dns.name.Name | str) -> bytes:
    n = dns.name.from_text(name) if isinstance(name, str) else name
    return n.to_wire() or b""


NAMES = ["a.example.", "B.Example.", "x\\.y.example.", "sp\\032ace.example.", "h\\200i.example."]


def test_light_matches_dnspython() -> None:
    rnd = random.Random(7)
    for _ in range(1500):
        qt = rnd.choice(["A", "PTR"])
        qn = dns.name.from_text(rnd.choice(NAMES))
        r = dns.message.make_response(dns.message.make_query(qn, qt))
        r.set_rcode(dns.rcode.Rcode.make(rnd.choice([0, 0, 3, 2])))
        for _ in range(rnd.randint(0, 4)):
            t = rnd.choice(["A", "PTR", "CNAME"])
            rd = f"10.0.0.{rnd.randint(1, 3)}" if t == "A" else rnd.choice([*NAMES, "."])
            r.answer.append(dns.rrset.from_text(rnd.choice(NAMES), 300, "IN", t, rd))
        data = r.to_wire()
        want = dns.rdatatype.from_text(qt)
        lr = Light.parse(data, wire(qn), want)
        full = dns.message.from_wire(data)
        assert isinstance(lr, Light)
        assert lr.rcode() == full.rcode()
        sets = [rs for rs in full.answer if rs.rdtype == want]
        if qt == "A":
            assert lr.addresses() == [rd.address for rs in sets for rd in rs]
        else:
            first = next((rd.target.to_text(omit_final_dot=True) for rs in sets for rd in rs), None)
            assert lr.ptr() == first
        assert Light.parse(data, wire("zzz.example."), want) is NOT_OURS


def test_light_leaves_the_unusual_to_dnspython() -> None:
    qn = dns.name.from_text("a.example.")
    r = dns.message.make_response(dns.message.make_query(qn, "A", use_edns=0))
    assert Light.parse(r.to_wire(), wire(qn), dns.rdatatype.A) is None  # OPT record
    assert Light.parse(b"\0" * 5, wire(qn), dns.rdatatype.A) is None


def test_reverse_names() -> None:
    for ip in ("192.0.2.1", "127.0.0.1", "::1", "2001:db8::5"):
        assert _reverse_name(ip) == dns.reversename.from_address(ip).to_text()


def test_prime_reads_resolv_conf_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.7\noptions timeout:3\n")
    monkeypatch.setattr(dnsresolve, "RESOLV_CONF", str(conf))
    try:
        dnsresolve.prime()
        conf.write_text("nameserver 127.0.0.8\n")
        r = Resolver()
        assert [s.host for s in r.servers] == ["127.0.0.7"] and r.timeout == 3.0
        dnsresolve.prime()  # SIGHUP
        assert [s.host for s in Resolver().servers] == ["127.0.0.8"]
    finally:
        dnsresolve.unprime()


def test_prime_interface_addresses() -> None:
    live = dnscheck.interface_addresses()
    try:
        dnscheck.prime()
        assert dnscheck.interface_addresses() == live
        s = dnscheck.self_addrs_for_host(None, None)
        assert s is dnscheck.self_addrs_for_host(None, "[192.0.2.1]")
        assert s.addrs == dnscheck.SelfAddrs(live).addrs
    finally:
        dnscheck.unprime()


def test_loopback_nameserver_socket_is_kept_per_process() -> None:
    """Lookups against a loopback nameserver reuse one socket; a timeout drops it."""
    dnsresolve._LOOPBACK_SOCKETS.pop(("127.0.0.1", 53), None)
    r = Resolver.from_param("127.0.0.1:53")
    assert r.addresses("mx.example.org") == ["203.0.113.25"]
    pid, first = dnsresolve._LOOPBACK_SOCKETS[("127.0.0.1", 53)]
    assert r.addresses("a-us.example") == ["203.0.113.25"]
    assert dnsresolve._LOOPBACK_SOCKETS[("127.0.0.1", 53)] == (pid, first)
    assert first.fileno() >= 0
    # nothing listens on port 9: the error is raised and the socket is not kept
    with pytest.raises(dnsresolve.TempFail):
        Resolver.from_param("127.0.0.1:9", timeout=0.5).addresses("mx.example.org")
    assert ("127.0.0.1", 9) not in dnsresolve._LOOPBACK_SOCKETS


def test_only_loopback_nameservers_keep_a_socket() -> None:
    """Elsewhere every query has a new socket, so a new random source port."""
    assert all(map(dnsresolve.on_loopback, ("127.0.0.1", "127.0.0.53", "::1")))
    assert not any(map(dnsresolve.on_loopback, ("192.0.2.1", "10.0.0.1", "2001:db8::1", "::")))


def test_plain_names_are_packed_as_dnspython_packs_them() -> None:
    for name in ("localhost", "1.0.0.127.in-addr.arpa.", "mx.example.com", "a_b-c.x.",
                 "zen.spamhaus.org", "x" * 63 + ".com"):
        want = dns.name.from_text(name if name.endswith(".") else name + ".").to_wire()
        assert dnsresolve._plain_wire_name(name) == want, name
    for name in ("", ".", "a..b", "x" * 64, "\u00e4.com", "a\\.b", "a b"):
        assert dnsresolve._plain_wire_name(name) is None, name  # dnspython decides
