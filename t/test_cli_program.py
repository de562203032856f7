"""The smtpserver program as a real child process: exit codes, stderr, modes (§1, §3.3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from progkit import (
    PROG,
    ROOT,
    inetd_launch,
    make_policy_db,
    make_site,
    program_env,
    read_reply,
    stop,
)

USAGE = (f"Usage: {PROG} [-46aBignVvw] [-C cfgfile] [-s xx] [-L maxLoadAvg] [-M SMTPmaxsize]"
         " [-R rtrprog] [-p port#] [-P postoffice] [-l logfile] [-S 'local'|'remote']"
         " [-I pidfile] [-T test-net-addr] [-Z zenvfile]\n")


def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, PROG, *args], input=stdin, capture_output=True,
                          timeout=60, env=program_env(**(env or {})), check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A ZENV, a POSTOFFICE with its directories, and an smtpserver.conf."""
    return make_site(tmp_path, conf=b"PARAM policydb btree $MAILVAR/db/smtp-policy\n*       ve\n")


def test_invalid_option_exit_1() -> None:
    r = run("-x")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode() == f"{PROG}: invalid option -- 'x'\n" + USAGE


def test_missing_argument_exit_1() -> None:
    r = run("-p")
    assert r.returncode == 1
    assert r.stderr.decode() == f"{PROG}: option requires an argument -- 'p'\n" + USAGE


def test_usage_and_leftover() -> None:
    assert (run("-?").returncode, run("-?").stderr.decode()) == (1, USAGE)
    r = run("-i", "leftover")
    assert (r.returncode, r.stderr.decode()) == (1, USAGE)


def test_version_exit_0() -> None:
    r = run("-V")
    assert r.returncode == 0 and r.stdout == b""
    assert r.stderr.startswith(b"ZMailer smtpserver (")
    assert b"Copyright 1992-2004 Matti Aarnio\n" in r.stderr


def test_dash_t_error_exit_1() -> None:
    r = run("-i", "-T", "1.2.3.4")
    assert r.returncode == 1
    assert r.stderr.decode() == (
        "smtpserver: -T option argument must be wrapped inside brackets: 1.2.3.4\n" + USAGE)


def test_dash_z_open_error_exit_1(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    r = run("-Z", missing, "-i")
    assert r.returncode == 1
    assert r.stderr.decode() == f"{PROG}: open: {missing}: No such file or directory\n" + USAGE


@pytest.mark.parametrize("name", ["sub-router", "sub-ratetracker", "sub-contentfilter"])
def test_sub_daemon_values_exit_0(site: Path, name: str) -> None:
    r = run("-Z", str(site / "z.conf"), "-I", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_interactive_session_uses_default_config_path(site: Path) -> None:
    # $MAILSHARE/<basename argv0>.conf is read: its policydb line is there, and the
    # "*  ve" line makes the session configured; -i needs no HELO without -T.
    r = run("-i", "-Z", str(site / "z.conf"), stdin=b"NOOP\r\nQUIT\r\n")
    assert r.returncode == 0
    lines = r.stdout.split(b"\r\n")
    assert lines[0].startswith(b"220 ") and b" ZMailer Server " in lines[0]
    assert lines[1] == b"250 2.0.0 Ok"
    assert lines[2].startswith(b"221 2.0.0 ") and lines[2].endswith(b" Out")


def test_interactive_batch_from_file_is_spooled(site: Path) -> None:
    batch = (b"HELO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n"
             b"DATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    r = run("-i", "-Z", str(site / "z.conf"), stdin=batch)
    assert r.returncode == 0
    assert b"250 2.0.0 accepted; " in r.stdout
    assert len(os.listdir(site / "po" / "router")) == 1


def test_dash_m_limits_interactive_size(site: Path) -> None:
    r = run("-i", "-M", "1000", "-Z", str(site / "z.conf"),
            stdin=b"EHLO x\r\nQUIT\r\n")
    assert b"250-SIZE 1000\r\n" in r.stdout


def test_param_maxsize_beats_dash_m(site: Path) -> None:
    (site / "smtpserver.conf").write_bytes(b"PARAM maxsize 500\n*  ve\n")
    r = run("-i", "-M", "1000", "-Z", str(site / "z.conf"), stdin=b"EHLO x\r\nQUIT\r\n")
    assert b"250-SIZE 500\r\n" in r.stdout


def test_verbose_echo(site: Path) -> None:
    r = run("-i", "-v", "-Z", str(site / "z.conf"), stdin=b"NOOP\r\nQUIT\r\n")
    assert b"NOOP\n" in r.stdout and b"QUIT\n" in r.stdout


def _read_reply(proc: subprocess.Popen[bytes]) -> bytes:
    """One whole reply (up to its final line), bounded in time."""
    import select

    assert proc.stdout is not None
    buf = b""
    deadline = 30.0
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], deadline)
        assert ready, f"no reply; got {buf!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"EOF; got {buf!r}"
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) > 1 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return buf


def test_test_address_makes_a_policy_checked_session(site: Path) -> None:
    make_policy_db(site)
    proc = subprocess.Popen([sys.executable, PROG, "-i", "-T", "[192.0.2.1]", "-Z",
                             str(site / "z.conf")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=program_env())
    try:
        assert proc.stdin is not None
        assert _read_reply(proc).startswith(b"220 ")
        proc.stdin.write(b"EHLO client.example\r\n")
        proc.stdin.flush()
        reply = _read_reply(proc)
        assert reply.startswith(b"250-") and b"Policy database problem" not in reply
        proc.stdin.write(b"QUIT\r\n")
        proc.stdin.flush()
        assert _read_reply(proc).startswith(b"221 ")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_check_config_reports_lines_and_policydb(site: Path) -> None:
    conf = site / "smtpserver.conf"
    r = run("--check-config", "-Z", str(site / "z.conf"))
    out = r.stdout.decode()
    assert r.returncode == 1  # the policy database does not exist yet
    assert "group 0" in out and "smtp-policy.db" in out and "error" in out
    make_policy_db(site)
    r = run("--check-config", "-Z", str(site / "z.conf"))
    assert r.returncode == 0, r.stdout.decode()
    assert "opens" in r.stdout.decode()
    conf.write_bytes(conf.read_bytes() + b"PARAM bogus-keyword 1\nPARAM tls-use-scache\n")
    r = run("--check-config", "-Z", str(site / "z.conf"), "-C", str(conf))
    out = r.stdout.decode()
    assert r.returncode == 1
    assert (f"{conf}:3: error: Cfgfile '{conf}' line 3 has bad PARAM keyword/missing"
            f" parameters: 'bogus-keyword'") in out
    assert f"{conf}:4: warning: " in out


def test_check_config_without_patterns_warns(site: Path) -> None:
    make_policy_db(site)
    (site / "smtpserver.conf").write_bytes(b"PARAM policydb btree $MAILVAR/db/smtp-policy\n")
    r = run("--check-config", "-Z", str(site / "z.conf"))
    assert r.returncode == 0
    assert "no HELO pattern line" in r.stdout.decode()


def test_check_config_of_the_shipped_samples() -> None:
    r = run("--check-config", "-Z", str(ROOT / "etc" / "zmailer.conf"),
            "-C", str(ROOT / "etc" / "smtpserver.conf"))
    out = r.stdout.decode()
    assert "error: Cfgfile" not in out and "warning:" not in out


def test_inetd_mode_on_a_tcp_socket(site: Path) -> None:

    make_policy_db(site)
    client, proc = inetd_launch("-n", "-Z", str(site / "z.conf"), stderr=subprocess.PIPE)
    try:
        assert read_reply(client).startswith(b"220 ")
        client.sendall(b"MAIL FROM:<a@example.net>\r\n")
        # An inetd session is "insecure": HELO is required (the client is 127.0.0.1
        # but the "*  ve" pattern's flags are not "-", §2.6).
        assert read_reply(client) == (
            b"503 5.5.1 Hello [127.0.0.1], Waiting for HELO/EHLO command\r\n")
        client.sendall(b"QUIT\r\n")
        assert read_reply(client).startswith(b"221 2.0.0 ")
        assert proc.wait(timeout=30) == 0
    finally:
        client.close()
        stop(proc)


def test_inetd_mode_without_a_socket_writes_to_fd_1(site: Path) -> None:
    r = run("-n", "-Z", str(site / "z.conf"), stdin=b"QUIT\r\n")
    assert r.returncode == 0
    assert r.stdout.startswith(b"220 ") and b"\r\n221 2.0.0 " in r.stdout


def test_config_diagnostics_reach_debug_output_and_log(site: Path) -> None:
    (site / "smtpserver.conf").write_bytes(b"PARAM no-such-keyword\n*  ve\n")
    log = site / "session.log"
    r = run("-i", "-d", "1", "-l", str(log), "-Z", str(site / "z.conf"), stdin=b"QUIT\r\n")
    conf = site / "smtpserver.conf"
    want = (f"000-Cfgfile '{conf}' line 1 has bad PARAM keyword/missing parameters:"
            f" 'no-such-keyword'").encode()
    assert want + b"\r\n" in r.stdout
    assert want in log.read_bytes()


def test_daemon_start_up_names_bad_lines_on_stderr(site: Path) -> None:
    """What main() says on stderr before the daemon detaches (report_config)."""
    from zmailer_smtpd.cli import parse_args, report_config, startup

    (site / "smtpserver.conf").write_bytes(b"PARAM maxsize\n*  ve\n")
    opts = parse_args(["smtpserver", "-Z", str(site / "z.conf")])
    _, cfg = startup(opts)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        report_config(opts, cfg, None, None, stderr=True)
    assert buf.getvalue() == (
        f"smtpserver: {cfg.path}:1: Cfgfile '{cfg.path}' line 1 has bad PARAM"
        f" keyword/missing parameters: 'maxsize'\n")


def test_daemon_mode_dispatches_to_the_server(site: Path) -> None:
    """--foreground daemon on an inherited (socket-activated) listener: greeting and QUIT."""
    import signal
    import socket as socket_mod

    lsock = socket_mod.socket(socket_mod.AF_INET, socket_mod.SOCK_STREAM)
    lsock.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    fd = lsock.fileno()

    def activate() -> None:
        """In the child: the listener on fd 3 and the LISTEN_* variables (sd_listen_fds)."""
        if fd != 3:
            os.dup2(fd, 3)
        os.set_inheritable(3, True)
        os.environ.pop("POSIXLY_CORRECT", None)
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_FDNAMES"] = "smtp"

    proc = subprocess.Popen([sys.executable, PROG, "--foreground", "-Z", str(site / "z.conf"),
                             "-P", str(site / "po")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=activate, close_fds=False)
    client = socket_mod.create_connection(lsock.getsockname(), timeout=30)
    lsock.close()
    try:
        greeting = read_reply(client)
        assert greeting.startswith(b"220 ")
        client.sendall(b"QUIT\r\n")
        assert read_reply(client).startswith(b"221 ")
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    # Without the database the daemon fails closed and says why at start-up.
    assert "group 0: policy database" in err and "smtp-policy.db" in err


def test_session_helpers_are_wired_from_the_settings(site: Path) -> None:
    """smtp-auth gives an Authenticator, contentfilter a filter client (interactive mode)."""
    peer = ROOT / "t" / "peers" / "contentfilter.py"
    filt = site / "filter"
    filt.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(peer)!r},"
                    " run_name='__main__')\n")
    filt.chmod(0o755)
    # The filter runs as TRUSTEDUSER; pytest's private tmp dir is readable by root only.
    z = site / "z.conf"
    z.write_bytes(z.read_bytes() + b"TRUSTEDUSER=root\n")
    (site / "smtpserver.conf").write_bytes(
        b"PARAM smtp-auth\nPARAM AUTH-LOGIN-also-without-TLS\n"
        b"PARAM contentfilter " + bytes(filt) + b"\n*  ve\n")
    batch = (b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
             b"Subject: t\r\n\r\nPEER-SCRIPT\r\n-1 550 5.7.1 no thanks\r\n.\r\nQUIT\r\n")
    r = run("-i", "-Z", str(site / "z.conf"), stdin=batch)
    assert r.returncode == 0
    assert b"\r\n250-AUTH=LOGIN PLAIN\r\n250-AUTH LOGIN PLAIN\r\n" in r.stdout
    assert b"\r\n550 5.7.1 Content-Policy reject msg: no thanks; " in r.stdout
    assert os.listdir(site / "po" / "router") == []


def test_inetd_resolves_the_client_with_dns_nameservers_param(site: Path) -> None:
    """§3.7 step 3 through PARAM dns-nameservers: PTR name, then the HELO comparison (TV-06)."""

    sys.path.insert(0, str(ROOT / "t"))
    from policy_support import dnsmasq  # type: ignore[import-not-found]

    make_policy_db(site)
    with dnsmasq(["ptr-record=1.0.0.127.in-addr.arpa,client.example.net",
                  "host-record=client.example.net,127.0.0.1"], site) as resolver:
        port = resolver.servers[0].port
        (site / "smtpserver.conf").write_bytes(
            b"PARAM policydb btree $MAILVAR/db/smtp-policy\n"
            b"PARAM dns-nameservers 127.0.0.1:%d\n*  ve\n" % port)
        client, proc = inetd_launch("-n", "-Z", str(site / "z.conf"), env=dict(os.environ))
        try:
            # §4.2 step 3: the server side is 127.0.0.1 too, so it is client.example.net
            assert read_reply(client).startswith(b"220 client.example.net ")
            client.sendall(b"HELO foo.example\r\n")
            assert read_reply(client).endswith(b' expected "HELO client.example.net"\r\n')
            client.sendall(b"QUIT\r\n")
            assert read_reply(client).startswith(b"221 ")
            assert proc.wait(timeout=30) == 0
        finally:
            client.close()
            stop(proc)


def test_check_config_reports_a_tls_setup_that_cannot_start(site: Path) -> None:
    make_policy_db(site)
    (site / "smtpserver.conf").write_bytes(
        b"PARAM policydb btree $MAILVAR/db/smtp-policy\nPARAM use-tls\n"
        b"PARAM tls-cert-file $MAILVAR/missing.pem\n*  ve\n")
    r = run("--check-config", "-Z", str(site / "z.conf"))
    assert r.returncode == 1
    assert "error: group 0: TLS cannot start" in r.stdout.decode()


def test_config_diagnostics_reach_the_inetd_stream_with_d(site: Path) -> None:
    """-n -d 1 without a socket: the 000- diagnostic precedes the greeting on fd 1."""
    (site / "smtpserver.conf").write_bytes(b"PARAM no-such-keyword\n*  ve\n")
    r = run("-n", "-d", "1", "-Z", str(site / "z.conf"), stdin=b"QUIT\r\n")
    conf = site / "smtpserver.conf"
    want = (f"000-Cfgfile '{conf}' line 1 has bad PARAM keyword/missing parameters:"
            f" 'no-such-keyword'\r\n").encode()
    assert r.stdout.startswith(want), r.stdout
    assert b"\r\n220 " in r.stdout and r.stdout.endswith(b"\r\n") and b"\r\n221 2.0.0 " in r.stdout
    r = run("-n", "-Z", str(site / "z.conf"), stdin=b"QUIT\r\n")
    assert r.stdout.startswith(b"220 ")
