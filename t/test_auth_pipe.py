"""SMTP-auth-pipe (interfaces.md §3.6.1, vector A2): real child processes from t/peers/."""

from __future__ import annotations

import json
import os
import syslog
from pathlib import Path

import pytest

from zmailer_smtpd import auth

PEERS = Path(__file__).parent / "peers"


class ZEnv(dict):
    pass


class SysLog(list):
    def __call__(self, priority: int, message: str) -> None:
        self.append((priority, message))


def verifier(name: str, zenv: ZEnv | None = None, timeout: float = 20.0) -> tuple[auth.PipeVerifier, SysLog]:
    log = SysLog()
    return auth.PipeVerifier(str(PEERS / name), zenv=zenv, syslog=log, timeout=timeout), log


def test_good_and_bad_password() -> None:
    v, log = verifier("authpipe_good.py")
    assert v.verify(b"alice", b"s3cret").ok
    bad = v.verify(b"alice", b"wrong")
    assert not bad.ok and not bad.temporary and "exit status 1" in bad.detail
    assert log == [(syslog.LOG_INFO, "alice: password ok"), (syslog.LOG_INFO, "alice: bad password")]
    assert v.fail_reply == (535, None, b"Authentication failed")


def test_user_name_reaches_argv_untouched() -> None:
    v, _ = verifier("authpipe_good.py")
    assert v.verify(b"-rf *", b"pw").ok


def test_argv_environment_stdin_and_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vector A2: argv [path, user], replaced environment, "password LF" then EOF."""
    zconfig = tmp_path / "zmailer.conf"
    monkeypatch.setenv("TZ", "Europe/Helsinki")
    monkeypatch.setenv("SECRET_FROM_PARENT", "leak")
    v, _ = verifier("authpipe_record.py", ZEnv(PATH="/usr/local/bin:/usr/bin:/bin", ZCONFIG=str(zconfig)))
    keep = os.open("/dev/null", os.O_RDONLY)  # an inheritable-looking descriptor must not leak
    os.set_inheritable(keep, True)
    try:
        assert v.verify(b"alice", b"s3cret").ok
    finally:
        os.close(keep)
    rec = json.loads(Path(str(zconfig) + ".record").read_text())
    assert rec["argv"] == [str(PEERS / "authpipe_record.py"), "alice"]
    assert rec["stdin"] == "s3cret\n"
    env = {k: v for k, v in rec["env"].items() if k not in ("PWD", "SHLVL", "_", "LC_CTYPE")}
    assert env == {
        "SHELL": "/bin/sh",
        "IFS": " \t\n",
        "TZ": "Europe/Helsinki",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "ZCONFIG": str(zconfig),
    }
    assert rec["fds"][:3] == [0, 1, 2] and keep not in rec["fds"][3:]


def test_default_path_and_zconfig(tmp_path: Path) -> None:
    v, _ = verifier("authpipe_good.py")
    env = v.environment()
    assert env["PATH"] == "/usr/bin:/bin:/usr/ucb" and env["ZCONFIG"] == "/etc/zmailer/zmailer.conf"


def test_missing_program_is_a_failure() -> None:
    log = SysLog()
    v = auth.PipeVerifier("/nonexistent/authcheck", syslog=log)
    verdict = v.verify(b"alice", b"s3cret")
    assert not verdict.ok and not verdict.temporary
    assert "cannot start" in verdict.detail
    assert all("s3cret" not in m for _, m in log)


def test_slow_program_times_out_and_is_killed() -> None:
    v, log = verifier("authpipe_slow.py", timeout=0.5)
    verdict = v.verify(b"alice", b"s3cret")
    assert not verdict.ok and "timed out" in verdict.detail
    assert log[-1][1].startswith("alice: ")


@pytest.mark.parametrize("user, ok", [(b"alice", True), (b"bob", False)])
def test_garbage_output_does_not_hang_and_status_decides(user: bytes, ok: bool) -> None:
    v, log = verifier("authpipe_garbage.py")
    assert v.verify(user, b"whatever").ok is ok
    assert len(log) == 1 and len(log[0][1]) < 400  # first line only, cut to 255 bytes


def test_password_never_in_syslog_lines() -> None:
    v, log = verifier("authpipe_good.py")
    v.verify(b"alice", b"s3cret")
    v.verify(b"alice", b"hunter2")
    assert log and all("s3cret" not in m and "hunter2" not in m for _, m in log)
