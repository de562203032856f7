"""DNS machinery (policy.md §7; spec/README.md): the resolver object, temporary
failures (timeout, SERVFAIL), the probe outcomes, DNSBL names, -d traces."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import dns.message
import dns.rcode
from policy_support import build_db, dnsmasq, run_dialogue

from zmailer_smtpd.dnsresolve import (
    Resolver,
    Server,
    TempFail,
    parse_servers,
    servers_from_resolv_conf,
)
from zmailer_smtpd.policy.dnscheck import (
    FOUND,
    MODE_EXISTS,
    MODE_MX,
    NOHOST,
    NOT_OURS,
    TEMPFAIL,
    DnsChecker,
    SelfAddrs,
    address_invalid,
)


def test_parse_servers() -> None:
    assert parse_servers("127.0.0.1:5353 ::1 [::1]:54,10.0.0.1") == [
        Server("127.0.0.1", 5353), Server("::1", 53), Server("::1", 54), Server("10.0.0.1", 53)]


def test_resolv_conf(tmp_path: Path) -> None:
    p = tmp_path / "resolv.conf"
    p.write_text("search x\nnameserver 127.0.0.9\nnameserver ::1\noptions timeout:2 attempts:1\n")
    assert servers_from_resolv_conf(str(p)) == ([Server("127.0.0.9"), Server("::1")], 2.0)
    # inside the test namespace the system file names 127.0.0.1 (tools/in-netns)
    assert Resolver().servers == [Server("127.0.0.1", 53)]
    assert Resolver.from_param("127.0.0.2:99").servers == [Server("127.0.0.2", 99)]


def test_timeout_is_tempfail() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # reads nothing, answers nothing
        silent.bind(("127.0.0.1", 0))
        r = Resolver([Server("127.0.0.1", silent.getsockname()[1])], timeout=0.3)
        try:
            r.query("x.example", "MX")
        except TempFail:
            pass
        else:
            raise AssertionError("no TempFail")
        chk = DnsChecker(r, SelfAddrs([]))
        assert chk.probe("x.example", MODE_MX) == TEMPFAIL
        assert chk.verify("x.example", MODE_EXISTS, "-") == -104


def test_servfail_is_tempfail() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    n = 2

    def serve() -> None:
        for _ in range(n):
            data, peer = sock.recvfrom(4096)
            q = dns.message.from_wire(data)
            resp = dns.message.make_response(q)
            resp.set_rcode(dns.rcode.SERVFAIL)
            sock.sendto(resp.to_wire(), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = Resolver([Server("127.0.0.1", port)], timeout=5)
        chk = DnsChecker(r, SelfAddrs([]))
        assert chk.verify("y.example", MODE_MX, "-") == -104
        assert chk.rbl_test("192.0.2.1", b"bl.example") == (False, None)
    finally:
        t.join(timeout=10)
        sock.close()


def test_probe_outcomes_and_ipv6_rbl(tmp_path: Path) -> None:
    conf = [
        "local=/example/",
        "mx-host=mx-us.example,mail.us.example,10",
        "mx-host=mx-us.example,backup.other.example,5",
        "host-record=mail.us.example,203.0.113.25",
        "host-record=backup.other.example,198.51.100.9",
        "mx-host=mx-other.example,mx.other.example,10",
        "host-record=mx.other.example,198.51.100.25",
        "cname=alias.example,mx-us.example",
        "host-record=loop.example,127.0.0.1",
        "host-record=1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.bl.example,127.0.0.4",
        'txt-record=1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.bl.example,"v6 listed"',
    ]
    with dnsmasq(conf, tmp_path) as r:
        notes: list[str] = []
        chk = DnsChecker(r, SelfAddrs(["203.0.113.25"]), log=notes.append)
        assert chk.probe("mx-us.example", MODE_MX) == FOUND  # a backup MX of ours counts
        assert chk.probe("MX-US.Example", MODE_MX) == FOUND
        assert chk.probe("mx-other.example", MODE_MX) == NOT_OURS
        assert chk.probe("mx-other.example", MODE_EXISTS) == FOUND
        assert chk.probe("alias.example", MODE_MX) == FOUND
        assert chk.probe("nx.example", MODE_MX) == NOHOST
        assert chk.probe("loop.example", MODE_EXISTS) == TEMPFAIL  # 127/8 is invalid
        assert chk.rbl_test("2001:db8::1", b"+:bl.example") == (True, b"v6 listed")
        assert notes[0] == "RBL zone '+' has no default in 3.0.1; skipped"
        assert chk.rbl_test("2001:db8::2", b"bl.example") == (False, None)


def test_address_validity_and_self() -> None:
    for ip in ("10.1.1.1", "127.0.0.1", "0.1.2.3", "224.0.0.1", "255.1.1.1", "172.16.0.1",
               "172.31.255.255", "192.168.1.1", "169.254.1.1"):
        assert address_invalid(ip), ip
    for ip in ("172.32.0.1", "192.0.2.1", "2001:db8::1", "::1"):
        assert not address_invalid(ip), ip
    s = SelfAddrs(["203.0.113.25", "2001:db8::25"])
    assert [s.test(x) for x in ("127.9.9.9", "0.0.0.1", "240.0.0.1", "203.0.113.25", "192.0.2.1",
                                "2001:db8::25", "::ffff:203.0.113.25", "::1")] == [2, 3, 3, 1, 0, 1, 1, 2]
    assert SelfAddrs(None).test("127.0.0.1") == 0


def test_debug_trace_matches_section_10_3(tmp_path: Path) -> None:
    assert build_db({"smtp-policy.src": "[192.0.2.0]/24 rejectnet +\n", "localnames": ""},
                    tmp_path)[0] == 0
    dbg: list[str] = []
    out = run_dialogue(str(tmp_path / "smtp-policy"), "192.0.2.33", [], debug=dbg)
    assert dbg[0] == f"000-Policyinit call starts: submission mode: 0, valid whoson: 0, dbpath: {tmp_path}/smtp-policy"
    assert dbg[1] == f"000- dbpath is '{tmp_path}/smtp-policy' dbname is '{tmp_path}/smtp-policy.db'"
    keys = [f"7/IPv4/192.0.2.{a}/{w}" for a, w in ((33, 32), (32, 31), (32, 30), (32, 29), (32, 28),
                                                   (32, 27), (0, 26), (0, 25))]
    expect = ["000- policytestaddr: lcldom/myaddress=0/0"]
    for k in keys:
        expect += [f"000- Key: {k}", "000-  query failed"]
    expect += [
        "000- Key: 7/IPv4/192.0.2.0/24",
        "000-   Attribute: 4/rejectnet/'+'",
        "000-     accepted!",
        "000- Results:  rejectnet + freezenet . rejectsource . freezesource . relaycustomer . "
        "relaycustnet . relaytarget . acceptifmx . acceptifdns . senderokwithdns . acceptbutfreeze . "
        "sendernorelay . test-dns-rbl . message . localdomain . maxinsize -1 maxoutsize -1 "
        "fulltrustnet . trustrecipients . trust-whoson . rcpt-dns-rbl . test-rcpt-dns-rbl . "
        "warn-rcpt-dns-rbl . filtering . maxsameipsource -1 spf . ratelimitmsgs . ",
        "000- policytestaddr: 'rejectnet +' found",
        "000--- policyresult=-1 initial policy msg: Your network address is blackholed in our static tables",
    ]
    assert dbg[2:] == expect
    assert out[-1] == "S: 550 5.7.1 Hello ; Your network address is blackholed in our static tables"


def test_missing_db_fails_closed(tmp_path: Path) -> None:
    out = run_dialogue(str(tmp_path / "nothing"), "192.0.2.1", ["HELO a.example", "QUIT"])
    assert out == [
        "S: 220 …",
        "C: HELO a.example",
        "S: 400-4.7.0 Ask HELP for our contact information.",
        "S: 400 4.7.0 Policy database problem: db Open failure",
        "C: QUIT",
        "S: 221 2.0.0 <H> Out",
    ]


def test_self_addresses_of_the_host() -> None:
    from zmailer_smtpd.policy.dnscheck import interface_addresses, self_addrs_for_host

    assert set(interface_addresses()) == {"127.0.0.1", "::1"}  # the test namespace
    # SELFADDRESSES host names resolve through t/dns/dnsmasq.conf; [literals] are ignored (§0)
    s = self_addrs_for_host(Resolver(), "mx.example.org [198.51.100.1]")
    assert s.test("203.0.113.25") == 1 and s.test("198.51.100.1") == 0
