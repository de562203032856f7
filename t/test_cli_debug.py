"""`-d N` with the real program and a real policy database (protocol.md §3.10, §6;
policy.md §10): in -i and -n the internal notes and the policy traces are
``000-`` lines on the SMTP stream itself, after the replies queued before them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from policy_support import build_db
from progkit import PROG, inetd_launch, make_site, program_env, stop

# policy.md §10.3 example: the database holds only "[192.0.2.0]/24 rejectnet +".
CONNECT_TRACE = [
    b"000- policytestaddr: lcldom/myaddress=0/0",
    b"000- Key: 7/IPv4/192.0.2.33/32",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.32/31",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.32/30",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.32/29",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.32/28",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.32/27",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.0/26",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.0/25",
    b"000-  query failed",
    b"000- Key: 7/IPv4/192.0.2.0/24",
    b"000-   Attribute: 4/rejectnet/'+'",
    b"000-     accepted!",
    b"000- Results:  rejectnet + freezenet . rejectsource . freezesource . relaycustomer . relaycustnet"
    b" . relaytarget . acceptifmx . acceptifdns . senderokwithdns . acceptbutfreeze . sendernorelay"
    b" . test-dns-rbl . message . localdomain . maxinsize -1 maxoutsize -1 fulltrustnet"
    b" . trustrecipients . trust-whoson . rcpt-dns-rbl . test-rcpt-dns-rbl . warn-rcpt-dns-rbl"
    b" . filtering . maxsameipsource -1 spf . ratelimitmsgs . ",
    b"000- policytestaddr: 'rejectnet +' found",
    b"550-5.7.1 Hello ; If you feel we mistreat you, do contact us.",
    b"550-5.7.1 Hello ; Ask HELP for our contact information.",
    b"550 5.7.1 Hello ; Your network address is blackholed in our static tables",
    b"000--- policyresult=-1 initial policy msg: Your network address is blackholed in our static tables",
]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_site(tmp_path, conf=b"PARAM policydb btree $MAILVAR/db/smtp-policy\n*       ve\n")


def _policy(site: Path, src: str) -> None:
    rc, msgs = build_db({"smtp-policy.src": src}, site / "db")
    assert rc == 0, msgs


def _run_i(site: Path, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, PROG, "-i", *args, "-Z", str(site / "z.conf"),
                           "-l", str(site / "log")], input=stdin, capture_output=True,
                          timeout=60, env=program_env(), check=False)


def test_recipe_shows_the_policy_analysis_as_the_manual_describes(site: Path) -> None:
    """`smtpserver -i -d 1 -T '[192.0.2.33]'`: policy.md §10.3's example, in order."""
    _policy(site, "[192.0.2.0]/24   rejectnet +\n")
    r = _run_i(site, "-d", "1", "-T", "[192.0.2.33]", stdin=b"QUIT\r\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\r\n")
    assert lines[0].startswith(b"000-Policyinit call starts: submission mode: 0, valid whoson: 0, dbpath: ")
    assert lines[1].startswith(b"000- dbpath is '") and lines[1].endswith(b"smtp-policy.db'")
    start = lines.index(CONNECT_TRACE[0])
    assert lines[start:start + len(CONNECT_TRACE)] == CONNECT_TRACE
    assert lines[-2].startswith(b"221 2.0.0 ") and lines[-1] == b""
    log = (site / "log").read_bytes()
    assert b"#\t000- policytestaddr: 'rejectnet +' found\n" in log
    assert log.count(b"-- policyresult=-1") == 1


def test_policy_traces_follow_the_replies_queued_before_them(site: Path) -> None:
    """A pipelined batch: the EHLO reply is out before the MAIL analysis starts."""
    _policy(site, 'spammer@    message "No mail from spammer" rejectsource +\n')
    r = _run_i(site, "-d", "1", "-T", "[192.0.2.10]",
               stdin=b"EHLO client.example\r\nMAIL FROM:<Spammer@Anywhere.Example>\r\n"
                     b"RCPT TO:<u@x.example>\r\nQUIT\r\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\r\n")
    ehlo_end = lines.index(b"250 HELP")
    what3 = lines.index(b"000- policytest what=3")
    mail = next(i for i, ln in enumerate(lines) if ln.startswith(b"553 5.7.1 ") and b"spammer" in ln)
    assert ehlo_end < what3 < mail
    assert all(ln.startswith(b"000") for ln in lines[what3:mail])
    assert b"000- checkaddr(): user of 'spammer@anywhere.example'" in lines[what3:mail]
    assert lines[mail - 1] == b"000- mailfrom: 'rejectsource +'"
    # the RCPT after a refused MAIL and its reply; every non-000 line is a whole reply line
    assert any(ln.startswith(b"550 5.7.1 ") and b"earlier rejection" in ln for ln in lines[mail + 1:])
    assert all(ln[:3].isdigit() for ln in lines if ln)


def test_without_d_there_are_no_debug_lines(site: Path) -> None:
    _policy(site, "[192.0.2.0]/24   rejectnet +\n")
    r = _run_i(site, "-T", "[192.0.2.33]", stdin=b"QUIT\r\n")
    assert b"000" not in r.stdout
    assert r.stdout.startswith(b"550-5.7.1 ")
    assert b"-- policyresult=-1" in (site / "log").read_bytes()


def test_inetd_session_notes_and_traces_on_the_socket(site: Path) -> None:
    """-n -d 1 on a TCP socket: the 000- lines come over the connection."""
    _policy(site, "[127.0.0.2]/32   rejectnet +\n")
    client, proc = inetd_launch("-n", "-d", "1", "-Z", str(site / "z.conf"), stderr=subprocess.PIPE)
    try:
        data = b""
        for cmd, last in ((b"EHLO client.example\r\n", b"\r\n250 HELP\r\n"), (b"QUIT\r\n", b"\r\n221 ")):
            client.sendall(cmd)  # one at a time: no pipelining before EHLO
            while last not in data:
                chunk = client.recv(65536)
                assert chunk, data
                data += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        client.close()
        stop(proc)
    lines = data.split(b"\r\n")
    assert lines[0].startswith(b"000-Policyinit call starts: ")
    assert b"000- Key: 7/IPv4/127.0.0.1/32" in lines
    greet = next(i for i, ln in enumerate(lines) if ln.startswith(b"220 "))
    assert lines.index(b"000- Key: 7/IPv4/127.0.0.1/32") < greet
    assert lines.index(b"250 HELP") > greet
