"""The spool file life cycle on a real POSTOFFICE: names, modes, records, commit,
notification, abort, freezer, debug keep, and failures that must leave nothing."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from spoolutil import NotifySocket, make_postoffice, mask_name, spool_files

from zmailer_smtpd.spool import (
    REPLY_LOCAL_ERROR,
    REPLY_NO_STORAGE,
    Spool,
    SpoolError,
    SpoolRecordError,
    spoolid,
)

PID = 4242


@pytest.fixture
def po(tmp_path: Path) -> str:
    return make_postoffice(tmp_path / "po")


def mk(po: str, zenv: dict[str, str] | None = None, **kw: object) -> Spool:
    return Spool(po, zenv or {}, hostname="mx.example.org", pid_fn=lambda: PID, **kw)  # type: ignore[arg-type]


def test_name_mode_cloexec(po: str) -> None:
    sf = mk(po).open_message()
    assert sf.path == os.path.join(po, "public", f"mx.example.org:{PID}")
    st = os.stat(sf.path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 0
    assert sf.fd is not None
    assert fcntl.fcntl(sf.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    sf.abort()


def test_host_part_is_first_19_bytes(po: str) -> None:
    sp = Spool(po, {}, hostname="a-very-long-host-name.example.org", pid_fn=lambda: 7)
    sf = sp.open_message()
    assert os.path.basename(sf.path) == "a-very-long-host-na:7"
    sf.abort()


def test_27_candidates_then_452(po: str) -> None:
    sp = mk(po)
    files = [sp.open_message() for _ in range(27)]
    names = [os.path.basename(f.path) for f in files]
    assert names == [f"mx.example.org:{PID}{s}" for s in [""] + list("abcdefghijklmnopqrstuvwxyz")]
    with pytest.raises(SpoolError) as ei:
        sp.open_message()
    assert ei.value.reply == REPLY_NO_STORAGE
    assert ei.value.reply == (452, "4.3.0", "Requested action not taken: insufficient storage")
    for f in files:
        f.abort()
    assert spool_files(po) == {}


def test_existing_name_is_never_overwritten(po: str) -> None:
    victim = Path(po, "public", f"mx.example.org:{PID}")
    victim.write_bytes(b"someone else's\n")
    sf = mk(po).open_message()
    assert sf.path.endswith(f":{PID}a")
    sf.abort()
    assert victim.read_bytes() == b"someone else's\n"


def test_records_and_refusals(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"external")
    sf.record(b"from", b"<a@b>")
    sf.record(b"notaryret", b"")  # empty value keeps its SP (§5.3)
    for bad in (b"a\nb", b"a\rb", b"a\0b"):
        with pytest.raises(SpoolRecordError):
            sf.record(b"comment", bad)
    for kw in (b"", b"to:", b"t o", b"\xe9"):
        with pytest.raises(SpoolRecordError):
            sf.record(kw, b"x")
    sf.flush_point()
    assert Path(sf.path).read_bytes() == b"external\nfrom <a@b>\nnotaryret \n"
    sf.abort()


def test_truncate_reuses_same_inode(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"from", b"<first@x>")
    sf.flush_point()
    ino = os.stat(sf.path).st_ino
    sf.record(b"to", b"<unflushed@x>")
    sf.truncate()
    sf.record(b"from", b"<second@x>")
    sf.flush_point()
    assert os.stat(sf.path).st_ino == ino
    assert Path(sf.path).read_bytes() == b"from <second@x>\n"
    sf.abort()


def test_flush_point_id_and_size_match_committed_file(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"env-end")
    sf.write(b"x" * 200000)  # more than the write buffer
    sid, size = sf.flush_point()
    rel = sf.commit(0)
    st = os.stat(os.path.join(po, rel))
    assert (sid, size) == (spoolid(st), st.st_size) == (sf.spoolid, 200008)
    assert rel == f"router/{st.st_ino}"


def test_abort_leaves_nothing_and_is_idempotent(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"from", b"<a@b>")
    sf.abort()
    sf.abort()
    assert spool_files(po) == {}
    with pytest.raises(SpoolError):
        sf.write(b"late")
    with pytest.raises(SpoolError):
        sf.commit(0)


def test_abort_after_commit_keeps_the_message(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"env-end")
    rel = sf.commit(0)
    sf.abort()
    assert list(spool_files(po)) == [rel]


def test_context_manager_aborts_on_exception(po: str) -> None:
    with pytest.raises(RuntimeError):
        with mk(po).open_message() as sf:
            sf.record(b"from", b"<a@b>")
            raise RuntimeError("session died")
    assert spool_files(po) == {}


def test_notify_unset_sends_nothing_and_missing_listener_is_ignored(po: str) -> None:
    sock = os.path.join(po, ".router.notify")
    with NotifySocket(sock) as ns:
        sf = mk(po).open_message()
        sf.record(b"env-end")
        sf.commit(0)
        assert ns.drain() == []
    sf = mk(po, {"ROUTERNOTIFY": sock}).open_message()  # nobody bound it any more
    sf.record(b"env-end")
    assert sf.commit(0).startswith("router/")


def test_input_dir_uses_inputnotify(tmp_path: Path) -> None:
    po = make_postoffice(tmp_path / "po", extra=["input"])
    z = {
        "INPUTDIRS": "input",
        "INPUTNOTIFY": os.path.join(po, ".input.notify"),
        "ROUTERNOTIFY": os.path.join(po, ".router.notify"),
    }
    with NotifySocket(z["INPUTNOTIFY"]) as inp, NotifySocket(z["ROUTERNOTIFY"]) as rtr:
        sf = mk(po, z).open_message()
        sf.record(b"env-end")
        rel = sf.commit(9)
        assert rel.startswith("input/")
        assert inp.drain() == [f"NEW input {rel.split('/')[1]}".encode()]
        assert rtr.drain() == []
        sf = mk(po, z).open_message()
        sf.record(b"env-end")
        rel = sf.commit(0)
        assert rtr.drain() == [f"NEW router {rel.split('/')[1]}".encode()]
        assert inp.drain() == []


def test_rename_failure_missing_hash_dir_leaves_nothing(po: str) -> None:
    """ROUTERDIRHASH=1 but router/A..Z missing: rename fails -> 451, no file anywhere."""
    sock = os.path.join(po, ".router.notify")
    with NotifySocket(sock) as ns:
        sf = mk(po, {"ROUTERDIRHASH": "1", "ROUTERNOTIFY": sock}).open_message()
        sf.record(b"env-end")
        sf.write(b"body\n")
        sf.flush_point()
        with pytest.raises(SpoolError) as ei:
            sf.commit(0)
        assert ei.value.reply == REPLY_LOCAL_ERROR
        assert ei.value.reply[:2] == (451, "4.3.0")
        assert ns.drain() == []
    assert spool_files(po) == {}
    sf.abort()  # still harmless


def test_rename_failure_missing_router_dir(po: str) -> None:
    shutil.rmtree(os.path.join(po, "router"))
    sf = mk(po).open_message()
    sf.record(b"env-end")
    with pytest.raises(SpoolError):
        sf.commit(0)
    assert spool_files(po) == {}


def test_freezer_failure_missing_dir(po: str) -> None:
    os.rmdir(os.path.join(po, "freezer"))
    sf = mk(po).open_message()
    sf.record(b"env-end")
    sid, _ = sf.flush_point()
    with pytest.raises(SpoolError) as ei:
        sf.freeze("policy-2")
    assert ei.value.reply == (451, "4.3.0", f"Message file disposition failed; {sid}")
    assert spool_files(po) == {}


def test_keep_debug(po: str) -> None:
    sf = mk(po).open_message()
    sf.record(b"env-end")
    sf.write(b"Subject: partial\n")
    rel = sf.keep_debug(".DATA-EOF")
    ino = os.stat(os.path.join(po, rel)).st_ino
    assert rel == f"public/{ino}.DATA-EOF"
    assert list(spool_files(po)) == [rel]


def _run_child(code: str, po: str) -> subprocess.CompletedProcess[str]:
    src = textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", src, po],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_write_failure_file_too_large_leaves_nothing(po: str) -> None:
    """A real write error (RLIMIT_FSIZE -> EFBIG) in a child: 451, no file anywhere."""
    r = _run_child(
        """
        import resource, signal, sys
        from zmailer_smtpd.spool import Spool, SpoolError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100000, resource.RLIM_INFINITY))
        sf = Spool(sys.argv[1], {}, hostname="h").open_message()
        sf.record(b"env-end")
        try:
            for _ in range(10):
                sf.write(b"x" * 65536)
            sf.flush_point()
        except SpoolError as e:
            print(e.reply[0], e.reply[1])
        """,
        po,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["451", "4.3.0"]
    assert spool_files(po) == {}


def test_full_filesystem_leaves_nothing(tmp_path: Path) -> None:
    """A real full file system (a small tmpfs, possible inside the test namespace)."""
    # tools/test runs us under "unshare --net --mount": only lo exists, and the
    # mount below stays private to that namespace.
    if {name for _, name in socket.if_nameindex()} != {"lo"}:
        pytest.skip("not in the test namespace (run through tools/test)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        po = make_postoffice(mnt / "po")
        sp = Spool(po, {}, hostname="h", min_availspace_kib=0)
        sf = sp.open_message()
        sf.record(b"env-end")
        with pytest.raises(SpoolError) as ei:
            for _ in range(100):
                sf.write(b"y" * 65536)
            sf.commit(0)
        assert ei.value.reply[:2] == (451, "4.3.0")
        assert spool_files(po) == {}
        assert not sp.free_space_ok(0)  # 1000 kB floor on a 256 kB file system
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_min_availspace(po: str) -> None:
    roomy = mk(po, min_availspace_kib=1)
    assert roomy.min_availspace_kib == 1000  # values below 1000 become 1000 (§10.3)
    assert roomy.available == -1  # nothing measured yet
    assert roomy.free_space_ok(0)
    assert roomy.available > 0
    assert roomy.free_space_ok(1000)
    assert not roomy.free_space_ok(roomy.available + 10**15)
    st = os.statvfs(po)
    free_kib = st.f_bavail * (st.f_frsize or st.f_bsize) // 1024
    tight = mk(po, min_availspace_kib=free_kib + 10**9)
    assert not tight.free_space_ok(0)
    sf = tight.open_message()
    assert not sf.free_space_ok()
    sf.abort()


def test_unmeasurable_space_keeps_last_value(tmp_path: Path) -> None:
    po = make_postoffice(tmp_path / "po")
    sp = mk(po)
    shutil.rmtree(os.path.join(po, "public"))
    assert not sp.free_space_ok(0)  # never measured: -1 rejects everything
    os.mkdir(os.path.join(po, "public"))
    assert sp.free_space_ok(0)
    os.rmdir(os.path.join(po, "public"))
    assert sp.free_space_ok(0)  # failed measurement: previous value kept


@pytest.mark.skipif(os.getuid() != 0, reason="needs root for the euid switch")
def test_freezer_rename_regains_root() -> None:
    """§2.3: the session runs with euid = trusted user; only the freezer rename is
    done as root.  The file stays owned by the trusted user, mode 0600."""
    top = tempfile.mkdtemp(prefix="zmspool-")  # pytest's tmp_path is 0700 root-only
    try:
        os.chmod(top, 0o755)
        po = make_postoffice(Path(top) / "po")
        os.chmod(po, 0o2755)
        os.chmod(os.path.join(po, "public"), 0o3777)
        os.chmod(os.path.join(po, "router"), 0o3777)
        os.chmod(os.path.join(po, "freezer"), 0o2750)
        r = _run_child(
            """
            import os, sys
            from zmailer_smtpd.spool import Spool
            os.seteuid(65534)
            sf = Spool(sys.argv[1], {}, hostname="h").open_message()
            sf.record(b"env-end")
            rel = sf.freeze("policy-1")
            print(rel, os.geteuid())
            """,
            po,
        )
        assert r.returncode == 0, r.stderr
        rel, euid = r.stdout.split()
        assert euid == "65534"
        st = os.stat(os.path.join(po, rel))
        assert st.st_uid == 65534 and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        shutil.rmtree(top)


def test_spoolutil_masks() -> None:
    from spoolutil import mask_content, mask_spoolid

    assert mask_name("public/mx.example.org:4242z") == "public/<host>:<pid>"
    assert mask_name("public/123.DATA-EOF") == "public/<ino>.DATA-EOF"
    assert mask_name("router4/W/2163014") == "router4/<X>/<ino>"
    assert mask_name("freezer/77policy") == "freezer/<ino>policy"
    assert (
        mask_spoolid(b"250 2.0.0 accepted; S2162999AbmK1HA0BPTLx")
        == b"250 2.0.0 accepted; <spoolid>"
    )
    assert mask_spoolid(b"S5AbmK1HA0 Roger") == b"<spoolid> Roger"
    env = b"rcvdfrom h ([1.2.3.4]:999 x)\nenv-end\nrcvdfrom h ([1.2.3.4]:999 x)\n"
    assert (
        mask_content(env)
        == b"rcvdfrom h ([1.2.3.4]:<rport> x)\nenv-end\nrcvdfrom h ([1.2.3.4]:999 x)\n"
    )


def test_notify_path_truncated_to_107_bytes(po: str) -> None:
    """§4.4: the socket path is cut to 107 bytes (sun_path with its NUL)."""
    short = os.path.join(po, "n")
    pad = 107 - len(short) - 1
    assert pad > 0
    path107 = short + "/" + "s" * pad
    os.mkdir(short)
    assert len(path107.encode()) == 107
    with NotifySocket(path107) as ns:
        sf = mk(po, {"ROUTERNOTIFY": path107 + "IGNORED-TAIL"}).open_message()
        sf.record(b"env-end")
        rel = sf.commit(0)
        assert ns.drain() == [f"NEW router {rel.split('/')[1]}".encode()]
