"""The spool file: create, records, commit to the router, freezer, abort, spool id.

spool.md §2-§5, §10.3, §11, §12, with the decisions of spec/README.md:

* one commit point: flush, fsync, close, rename, fsync of the target directory,
  then the router datagram; the session sends its 250 only after commit();
* a failure at any step (write, fsync, close, rename, directory fsync) removes
  the file and raises SpoolError whose reply is 451 4.3.0; nothing
  half-written ever appears in a router directory;
* INPUTDIRS / ROUTERDIRS selection without 3.0.1's off-by-one (see
  select_segment());
* the hash switch is decided per message from the variable of the kind of
  directory chosen (INPUTDIRHASH / ROUTERDIRHASH), not once per process.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# -- replies (code, enhanced code, text) ------------------------------------

REPLY_NO_STORAGE = (452, "4.3.0", "Requested action not taken: insufficient storage")
REPLY_LOCAL_ERROR = (451, "4.3.0", "Requested action aborted: local error in processing")

PUBLICDIR = "public"
ROUTERDIR = "router"
FREEZERDIR = "freezer"

_SUFFIXES = ("",) + tuple("abcdefghijklmnopqrstuvwxyz")  # 27 candidates (§3.2)
_KEYWORD = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # printable, no blank, no ":"
_BUFSIZE = 65536
_SUN_PATH_MAX = 107  # sun_path is 108 bytes with its NUL (§4.4)


class SpoolError(Exception):
    """Any spool failure; ``reply`` is what the session should answer."""

    def __init__(self, message: str, reply: tuple[int, str, str] = REPLY_LOCAL_ERROR) -> None:
        super().__init__(message)
        self.reply = reply


class SpoolRecordError(SpoolError, ValueError):
    """A record was refused (CR, LF or NUL inside, bad keyword); the file is kept."""


# -- spool id (§12) ---------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdefghijklmnopqrstuvwxyz4567890-="


def spoolid_from(ino: int, mtime_ns: int) -> str:
    """The id the router computes from inode and mtime; same for both sides."""
    a = _ALPHABET
    t = time.gmtime(mtime_ns // 1_000_000_000)
    ns = mtime_ns % 1_000_000_000
    y = t.tm_year
    s = [f"S{ino}", a[(y >> 12) & 63], a[(y >> 6) & 63], a[y & 63]]
    s += [a[t.tm_mon - 1], a[t.tm_mday - 1], a[t.tm_hour], a[t.tm_min], a[t.tm_sec]]
    if ns:
        s += [a[(ns >> k) & 63] for k in (24, 18, 12, 6, 0)]
    return "".join(s)


def spoolid(st: os.stat_result) -> str:
    """Spool id of a stat result taken after the last byte was flushed (T-8)."""
    return spoolid_from(st.st_ino, st.st_mtime_ns)


# -- ZENV access ------------------------------------------------------------


def zget(zenv: Any, name: str) -> str | None:
    """Look up a ZENV variable on whatever object zenv.py provides (or a dict)."""
    if zenv is None:
        return None
    if isinstance(zenv, Mapping):
        v = zenv.get(name)
    else:
        getter = getattr(zenv, "get", None)
        if getter is None:
            return None
        v = getter(name)
    if v is None:
        return None
    if isinstance(v, bytes):
        return os.fsdecode(v)
    return str(v)


# -- directory selection (§4.3) ---------------------------------------------


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def select_segment(postoffice: str, dirlist: str, priority: int) -> str | None:
    """Pick the directory for ``priority`` from a ``:``-separated list.

    Priority P means the P-th segment (1-based), capped at the last one; a
    segment that is not an existing directory is skipped, keeping the last
    usable one before it.  3.0.1 examines min(P, n-1) leading segments plus the
    last only when P > n, so P == n never reaches the last segment (bulk with
    a one-entry INPUTDIRS stays out of it); README: that off-by-one is not copied.
    Empty segments are never usable (3.0.1 would pick $POSTOFFICE itself).
    """
    if priority <= 0:
        return None
    segs = dirlist.split(":")
    chosen: str | None = None
    for seg in segs[: min(priority, len(segs))]:
        if seg and _is_dir(os.path.join(postoffice, seg)):
            chosen = seg
    return chosen


def choose_dir(
    postoffice: str, priority: int, inputdirs: str | None, routerdirs: str | None
) -> tuple[str, bool]:
    """(directory relative to POSTOFFICE, is_input_dir) for a message."""
    if priority <= 0:
        return ROUTERDIR, False
    if inputdirs is not None:
        d = select_segment(postoffice, inputdirs, priority)
        if d is not None:
            return d, True
    if routerdirs is not None:
        d = select_segment(postoffice, routerdirs, priority)
        if d is not None:
            return d, False
    return ROUTERDIR, False


def hash_prefix(ino: int) -> str:
    """The A..Z sub-directory of a hashed router/input directory."""
    return chr(ord("A") + ino % 26) + "/"


def send_notify(path: str, payload: bytes) -> bool:
    """One non-blocking datagram to the router socket; every error ignored (§4.4)."""
    raw = os.fsencode(path)[:_SUN_PATH_MAX]
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        s.setblocking(False)
        s.sendto(payload, raw)
        return True
    except OSError:
        return False
    finally:
        s.close()


def fsync_dir(path: str) -> None:
    """Make a rename durable (README decision; 3.0.1 never does this)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _effective_root() -> Iterator[None]:
    """Regain euid 0 for the freezer rename when running as the trusted user (§2.3)."""
    saved = os.geteuid()
    switch = os.getuid() == 0 and saved != 0
    if switch:
        os.seteuid(0)
    try:
        yield
    finally:
        if switch:
            os.seteuid(saved)


# -- the spool --------------------------------------------------------------


class Spool:
    """Per-process spool writer: knows POSTOFFICE, ZENV, host name and the space floor."""

    def __init__(
        self,
        postoffice: str,
        zenv: Any,
        *,
        hostname: str,
        pid_fn: Callable[[], int] = os.getpid,
        min_availspace_kib: int = 5000,
    ) -> None:
        self.postoffice = postoffice
        self.zenv = zenv
        self.host19 = (hostname or "unknown").encode("utf-8", "surrogateescape")[:19]
        self.pid_fn = pid_fn
        self.min_availspace_kib = max(1000, min_availspace_kib)
        self._available: int = -1  # §10.3: -1 until the first measurement

    # files

    def open_message(self) -> SpoolFile:
        """Create public/<host19>:<pid>[a-z] exclusively, 0600, close-on-exec (§3.2)."""
        base = os.path.join(os.fsencode(self.postoffice), PUBLICDIR.encode())
        stem = self.host19 + b":" + str(self.pid_fn()).encode()
        last: OSError | None = None
        for suffix in _SUFFIXES:
            path = os.path.join(base, stem + suffix.encode())
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
            except OSError as e:
                last = e
                continue
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)  # whatever the umask
            return SpoolFile(self, fd, os.fsdecode(path))
        raise SpoolError(f"cannot create spool file: {last}", REPLY_NO_STORAGE)

    # space (§10.3)

    def measure(self, fd: int | None = None) -> int:
        """Free bytes above the floor; keeps the last value when measuring fails."""
        try:
            sv = (
                os.fstatvfs(fd)
                if fd is not None
                else os.statvfs(os.path.join(self.postoffice, PUBLICDIR))
            )
        except OSError:
            return self._available
        frsize = sv.f_frsize or sv.f_bsize
        avail_kib = sv.f_bavail * frsize // 1024
        self._available = min((avail_kib - self.min_availspace_kib) * 1024, 2**63 - 1)
        return self._available

    @property
    def available(self) -> int:
        """The last measurement (what RCPT compares SIZE against, §10.2)."""
        return self._available

    def free_space_ok(self, need_bytes: int = 0, fd: int | None = None) -> bool:
        """Measure now; True when ``need_bytes`` fit above the floor.

        After DATA/BDAT the check is free_space_ok(0) ("available < 0" fails);
        a never-successful measurement leaves -1, which fails every check.
        """
        return need_bytes <= self.measure(fd)

    # directories and hashing

    def hash_enabled(self, is_input: bool) -> bool:
        """INPUTDIRHASH for input directories, ROUTERDIRHASH otherwise (value starts with 1)."""
        v = zget(self.zenv, "INPUTDIRHASH" if is_input else "ROUTERDIRHASH")
        return v is not None and v.startswith("1")

    def target_for(self, priority: int, ino: int) -> tuple[str, str, bool]:
        """(directory, hash prefix, is_input) for a message of this priority and inode."""
        d, is_input = choose_dir(
            self.postoffice, priority, zget(self.zenv, "INPUTDIRS"), zget(self.zenv, "ROUTERDIRS")
        )
        h = hash_prefix(ino) if self.hash_enabled(is_input) else ""
        return d, h, is_input


class SpoolFile:
    """One message being composed in public/; ends by commit, freeze, keep_debug or abort."""

    def __init__(self, spool: Spool, fd: int, path: str) -> None:
        self.spool = spool
        self.fd: int | None = fd
        self.path = path  # absolute public/ path; what the content filter gets (§3.5)
        self.buf = bytearray()
        self.done = False  # closed: committed, frozen, kept or aborted
        self.final_path: str | None = None
        self.ino: int | None = None
        self.spoolid: str | None = None
        self.size = 0

    # context manager: an exception before the end aborts the file

    def __enter__(self) -> SpoolFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.abort()

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def _fail(self, what: str, e: BaseException | None = None) -> SpoolError:
        self.abort()
        return SpoolError(f"spool {what} failed: {e}" if e else f"spool {what} failed")

    def _check_open(self) -> int:
        if self.done or self.fd is None:
            raise SpoolError("spool file already closed")
        return self.fd

    def _flush(self) -> None:
        self._write_all(self.buf)
        self.buf.clear()

    def _write_all(self, data: bytes | bytearray) -> None:
        fd = self._check_open()
        err: OSError | None = None
        with memoryview(data) as view:
            done = 0
            try:
                while done < len(view):
                    done += os.write(fd, view[done:])
            except OSError as e:
                err = e
        if err is not None:
            raise self._fail("write", err) from err

    # writing

    def record(self, keyword: bytes, value: bytes | None = None) -> None:
        """Append ``keyword SP value LF`` (§5.2); refuse what would split the line."""
        if not _KEYWORD.fullmatch(keyword):
            raise SpoolRecordError(f"bad envelope keyword {keyword!r}")
        line = keyword
        if value is not None:
            if b"\r" in value or b"\n" in value or b"\0" in value:
                raise SpoolRecordError(f"CR, LF or NUL in {keyword!r} record")
            line = keyword + b" " + value
        self.write(line + b"\n")

    def write(self, data: bytes) -> None:
        """Append message bytes; buffered, flushed at flush_point/commit."""
        self._check_open()
        if not self.buf and len(data) >= _BUFSIZE:
            self._write_all(data)  # a whole body chunk: straight to the file, not via buf
            return
        self.buf += data
        if len(self.buf) >= _BUFSIZE:
            self._flush()

    def truncate(self) -> None:
        """Start over for a new MAIL on the same file (§3.2: same name, same inode)."""
        fd = self._check_open()
        self.buf.clear()
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as e:
            raise self._fail("truncate", e) from e

    def flush_point(self) -> tuple[str, int]:
        """Flush and fstat: (spool id, file size) as of the last byte (§3.3, §12)."""
        self._flush()
        fd = self._check_open()
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise self._fail("fstat", e) from e
        self.ino = st.st_ino
        self.spoolid = spoolid(st)
        self.size = st.st_size
        return self.spoolid, self.size

    def free_space_ok(self, need_bytes: int = 0) -> bool:
        """Free-space check measured on this file's file system (§10.3)."""
        return self.spool.free_space_ok(need_bytes, self.fd)

    def _close_synced(self) -> int:
        """Flush, fstat, fsync, close; returns the inode.  Any failure aborts."""
        self.flush_point()
        fd = self._check_open()
        try:
            os.fsync(fd)
        except OSError as e:
            raise self._fail("fsync", e) from e
        self.fd = None
        try:
            os.close(fd)
        except OSError as e:
            raise self._fail("close", e) from e
        assert self.ino is not None
        return self.ino

    def _rename_into(self, reldir: str, relname: str) -> str:
        """rename public -> POSTOFFICE/reldir/relname, fsync its directory; undo on failure."""
        po = self.spool.postoffice
        target = os.path.join(po, reldir, relname)
        try:
            os.rename(self.path, target)
        except OSError as e:
            raise self._fail("rename", e) from e
        try:
            fsync_dir(os.path.dirname(target))
        except OSError as e:
            # Not durable: take it back (best effort) so the client's retry is the only copy.
            with contextlib.suppress(OSError):
                os.unlink(target)
            self.path = target
            raise self._fail("directory fsync", e) from e
        self.done = True
        self.final_path = os.path.join(reldir, relname)
        return self.final_path

    def commit(self, priority: int) -> str:
        """Hand the file to the router (§4.1-§4.4); returns e.g. ``router4/W/2163014``."""
        ino = self._close_synced()
        d, h, is_input = self.spool.target_for(priority, ino)
        rel = self._rename_into(d, f"{h}{ino}")
        notify = zget(self.spool.zenv, "INPUTNOTIFY" if is_input else "ROUTERNOTIFY")
        if notify:
            send_notify(notify, f"NEW {d} {h}{ino}".encode())
        return rel

    def freeze(self, suffix: str) -> str:
        """Park the file as freezer/<ino><suffix> (§4.5, §11); no notification."""
        ino = self._close_synced()
        try:
            with _effective_root():
                return self._rename_into(FREEZERDIR, f"{ino}{suffix}")
        except SpoolError as e:
            e.reply = (
                REPLY_LOCAL_ERROR[0],
                REPLY_LOCAL_ERROR[1],
                f"Message file disposition failed; {self.spoolid}",
            )
            raise

    def keep_debug(self, suffix: str) -> str:
        """Style flag D: keep a broken transfer as public/<ino><suffix> (§4.6)."""
        ino = self._close_synced()
        return self._rename_into(PUBLICDIR, f"{ino}{suffix}")

    def abort(self) -> None:
        """Close and unlink the composing file; idempotent, never raises (§3.4)."""
        if self.done:
            return
        self.done = True
        self.buf.clear()
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
