"""The administrator's recipe of policy.md §10: ``smtpserver -i -d 1 -T '[ip]'``
against a database made by ``zmailer-policy-builder`` (real programs, lock-step)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from policy_support import ROOT, build_db
from spoolutil import make_postoffice


class Client:
    """Lock-step client on the program's stdin/stdout (no pipelining)."""

    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=ROOT)
        self.buf = b""

    def reply(self) -> list[str]:
        """Lines up to the final line of one reply (000- debug lines included)."""
        out: list[str] = []
        deadline = time.monotonic() + 20
        assert self.p.stdout is not None
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.rstrip(b"\r").decode("latin-1")
                out.append(text)
                if len(text) >= 4 and text[3] == " " and not text.startswith("000"):
                    return out
            r, _, _ = select.select([self.p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert r, f"no reply; so far {out}"
            data = os.read(self.p.stdout.fileno(), 65536)
            if not data:
                return out
            self.buf += data

    def cmd(self, line: str) -> list[str]:
        assert self.p.stdin is not None
        self.p.stdin.write(line.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.reply()

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.close()
        self.p.wait(timeout=20)


def program(tmp: Path, src: str, ip: str, debug: bool = False) -> Client:
    assert build_db({"smtp-policy.src": src, "localnames": ""}, tmp / "db")[0] == 0
    po = make_postoffice(tmp / "po")
    (tmp / "zmailer.conf").write_text(f"POSTOFFICE={po}\nMAILVAR={tmp}\n")
    (tmp / "smtpserver.conf").write_text(f"PARAM policydb btree {tmp}/db/smtp-policy\n*  ve\n")
    argv = [sys.executable, str(ROOT / "bin" / "smtpserver"), "-Z", str(tmp / "zmailer.conf"),
            "-C", str(tmp / "smtpserver.conf"), "-i", "-T", ip]
    if debug:
        argv[-2:-2] = ["-d", "1"]
    return Client(argv)


def test_tv7_in_test_mode(tmp_path: Path) -> None:
    c = program(tmp_path, 'spammer@    message "No mail from spammer" rejectsource +\n', "[192.0.2.10]")
    try:
        assert c.reply()[-1].startswith("220 ")
        assert c.cmd("HELO client.example")[-1].endswith(" Hello client.example")
        assert c.cmd("MAIL FROM:<Spammer@Anywhere.Example>") == [
            "553 5.7.1 Hello , for your MAIL FROM address <Spammer@Anywhere.Example> policy"
            " analysis reported: No mail from spammer"]
        assert c.cmd("RCPT TO:<u@x.example>") == [
            "550 5.7.1 Hello , access denied by the policy analysis functions by earlier rejection"]
        assert c.cmd("MAIL FROM:<friend@anywhere.example>") == ["250 2.1.0 Sender syntax Ok; "]
        assert c.cmd("QUIT")[-1].startswith("221 2.0.0 ")
    finally:
        c.close()


def test_debug_trace_in_test_mode(tmp_path: Path) -> None:
    c = program(tmp_path, "[192.0.2.0]/24 rejectnet +\n", "[192.0.2.33]", debug=True)
    try:
        lines = c.reply()
        after = c.cmd("QUIT")
        assert after[-1].startswith("221 2.0.0 ")
    finally:
        c.close()
    pol = [x for x in lines if x.startswith(("000-Policyinit", "000- ", "000--- ", "550"))]
    # policy.md §10.3: the policyresult note follows the greeting.
    assert after[0] == ("000--- policyresult=-1 initial policy msg: Your network address is"
                        " blackholed in our static tables")
    assert pol[0].startswith("000-Policyinit call starts: submission mode: 0, valid whoson: 0, dbpath: ")
    assert "000- Key: 7/IPv4/192.0.2.33/32" in pol
    assert "000- policytestaddr: 'rejectnet +' found" in pol
    assert pol[-3:] == [
        "550-5.7.1 Hello ; If you feel we mistreat you, do contact us.",
        "550-5.7.1 Hello ; Ask HELP for our contact information.",
        "550 5.7.1 Hello ; Your network address is blackholed in our static tables",
    ]
