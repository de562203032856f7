"""Starting helper programs and reading their lines (interfaces.md §0).

Why one module: every helper (router, content filter, scheduler, ident,
whoson) must be started with an argv list -- never a shell -- with the
environment of §0.3, fed only fields free of CR, LF, TAB and NUL, and read
with a timeout and a size cap, so that no helper can hang, bloat or crash
the session.  The session process owns its helpers and kills them when it
ends (seed design, §0.2).

API:

    check_field(b)                    -> b, or raises FieldError
    helper_env(base=None, extra=...)  -> dict: §0.3 cleaned environment
    Helper.start(path, argv, env=..., cwd=..., preexec=...) -> Helper
    LineChannel.for_socket(sock)      -> channel over a connected socket
    ch.write_line(b, timeout)         -> raises HelperError on failure
    ch.readline(timeout, maxline)     -> bytes (LF kept when present)
    ch.read_until_hungry(...)         -> list of lines (LF stripped)
    Helper.close(grace)               -> close stdin, SIGTERM, wait, SIGKILL, reap
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping

HUNGRY = b"#hungry"

# Environment entries detach()/cleanenv() overwrite with SHELL=/bin/sh (§0.3).
_CLEANED_ENV = ("LOGNAME", "USER", "FULLNAME", "PRETTYLOGIN", "IFS")
_FORBIDDEN = (b"\r", b"\n", b"\t", b"\0")


class HelperError(Exception):
    """A helper failed: could not start, died, timed out, or wrote garbage."""


class HelperTimeout(HelperError):
    """No byte arrived within the inactivity timeout (§0.4)."""


class HelperEOF(HelperError):
    """The helper closed its output."""


class HelperGarbage(HelperError):
    """The helper's output broke the protocol (too long, too much, bad bytes)."""


class FieldError(ValueError):
    """A field holds CR, LF, TAB or NUL and must not reach any helper."""


def check_field(value: bytes) -> bytes:
    """Return `value` unchanged, or raise FieldError if it could break framing.

    Why: a CR/LF would let a client inject a second request line; TAB is the
    router's key separator; NUL truncates C strings in the peer.
    """
    for bad in _FORBIDDEN:
        if bad in value:
            raise FieldError(f"forbidden byte {bad!r} in helper field")
    return value


def helper_env(
    base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The daemon environment after detach()'s clean-up, plus `extra` (§0.3).

    3.0.1 overwrites the slots of LOGNAME, USER, FULLNAME, PRETTYLOGIN and IFS
    with `SHELL=/bin/sh`; a dict cannot hold duplicates, so those names are
    dropped and SHELL=/bin/sh is set once if any of them was present.
    """
    src = dict(os.environ if base is None else base)
    env: dict[str, str] = {}
    cleaned = False
    for k, v in src.items():
        if k in _CLEANED_ENV:
            cleaned = True
            continue
        env[k] = v
    if cleaned:
        env["SHELL"] = "/bin/sh"
    if extra:
        env.update(extra)
    return env


def regain_root() -> None:
    """Pre-exec hook: effective root again when the real uid is root (§0.3)."""
    if os.getuid() == 0 and os.geteuid() != 0:
        os.seteuid(0)


def drop_to(uid: int, gid: int) -> Callable[[], None]:
    """Pre-exec hook factory: run the helper fully as uid/gid (no way back)."""

    def _hook() -> None:
        if os.getuid() != 0:
            return
        if os.geteuid() != 0:
            os.seteuid(0)
        os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    return _hook


class LineChannel:
    """Byte-clean line I/O on two non-blocking descriptors (§0.4, T-10).

    Lines are split on LF only; CR, NUL and 8-bit bytes are data.  A partial
    line followed by EOF or timeout is returned as a line; the next read then
    reports the EOF or timeout.
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        os.set_blocking(rfd, False)
        if wfd != rfd:
            os.set_blocking(wfd, False)
        self._buf = bytearray()
        self._eof = False
        self._pending: HelperError | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def for_socket(cls, sock: socket.socket) -> LineChannel:
        """A channel over a connected stream socket (filter socket, MAILQv2)."""
        ch = cls(sock.fileno(), sock.fileno())
        ch._sock = sock
        return ch

    # -- writing -----------------------------------------------------------
    def write_line(self, data: bytes, timeout: float) -> None:
        """Write all of `data` (it must already end with LF) within `timeout`."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HelperTimeout("write timed out")
            try:
                _, w, _ = select.select([], [self.wfd], [], left)
            except (OSError, ValueError) as e:
                raise HelperError(f"write select: {e}") from e
            if not w:
                continue
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                continue
            except OSError as e:
                raise HelperEOF(f"write failed: {e}") from e
            view = view[n:]

    # -- reading -----------------------------------------------------------
    def _fill(self, timeout: float) -> None:
        """Read what is available, waiting at most `timeout` for the first byte."""
        try:
            r, _, _ = select.select([self.rfd], [], [], max(timeout, 0.0))
        except (OSError, ValueError) as e:
            raise HelperError(f"read select: {e}") from e
        if not r:
            raise HelperTimeout("no output within the timeout")
        try:
            chunk = os.read(self.rfd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            raise HelperEOF(f"read failed: {e}") from e
        if not chunk:
            self._eof = True
            return
        self._buf += chunk

    def readline(self, timeout: float, maxline: int = 8192, end: float | None = None) -> bytes:
        """One line including its LF (absent for a partial last line).

        `timeout` is per wait for data (inactivity, §0.4).  A line longer than
        `maxline` raises HelperGarbage after its excess has been discarded up
        to the LF, so memory stays bounded whatever the helper writes.  `end`
        (a time.monotonic() value) bounds the whole line: a helper trickling
        bytes without a LF forever raises HelperTimeout.
        """
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err
        overlong = False
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                if overlong or nl + 1 > maxline + 1:
                    del self._buf[: nl + 1]
                    raise HelperGarbage("overlong line")
                line = bytes(self._buf[: nl + 1])
                del self._buf[: nl + 1]
                return line
            if len(self._buf) > maxline:
                overlong = True
                self._buf.clear()
            if self._eof:
                if overlong:
                    raise HelperGarbage("overlong line")
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    return line
                raise HelperEOF("end of output")
            wait = timeout
            if end is not None:
                wait = min(wait, end - time.monotonic())
                if wait <= 0:
                    self._buf.clear()
                    raise HelperTimeout("line took too long")
            try:
                self._fill(wait)
            except HelperTimeout:
                if overlong:
                    raise HelperGarbage("overlong line") from None
                if self._buf:
                    line = bytes(self._buf)
                    self._buf.clear()
                    self._pending = HelperTimeout("no output within the timeout")
                    return line
                raise

    def read_until_hungry(
        self,
        timeout: float,
        maxline: int = 8192,
        maxlines: int = 1000,
        maxbytes: int = 1 << 20,
        deadline: float | None = None,
    ) -> list[bytes]:
        """Lines (LF stripped) up to a line exactly `#hungry`.

        Bounded: more than `maxlines` lines or `maxbytes` bytes, or a total
        time beyond `deadline` seconds, raise HelperGarbage / HelperTimeout --
        a helper that trickles forever is not allowed to hold the session.
        A partial line cut by EOF/timeout raises at once: the answer is
        incomplete and the helper cannot be resynchronised.
        """
        lines: list[bytes] = []
        total = 0
        end = None if deadline is None else time.monotonic() + deadline
        while True:
            line = self.readline(timeout, maxline, end)
            if not line.endswith(b"\n"):
                # The next read reports why the line was cut (EOF/timeout).
                self.readline(timeout, maxline, end)
                raise HelperEOF("partial line at end of output")
            body = line[:-1]
            if body == HUNGRY:
                return lines
            total += len(line)
            if len(lines) >= maxlines or total > maxbytes:
                raise HelperGarbage("too much output")
            lines.append(body)

    def close(self) -> None:
        """Close both descriptors (or the socket)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
            return
        for fd in {self.rfd, self.wfd}:
            try:
                os.close(fd)
            except OSError:
                pass


class Helper:
    """A started helper process with stdin/stdout(+stderr) pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], chan: LineChannel) -> None:
        self.proc = proc
        self.chan = chan

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def start(
        cls,
        path: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> Helper:
        """Exec `path` with exactly `argv` (argv[0] may differ from path).

        No shell; stderr merged into stdout; every other descriptor closed
        (the SMTP socket must never leak into a helper).  Raises HelperError
        when the program cannot be executed (3.0.1's `#BADEXEC`).
        """
        try:
            proc = subprocess.Popen(
                argv,
                executable=path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                close_fds=True,
                shell=False,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                preexec_fn=preexec,
                bufsize=0,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            raise HelperError(f"cannot start {path}: {e}") from e
        assert proc.stdin is not None and proc.stdout is not None
        chan = LineChannel(proc.stdout.fileno(), proc.stdin.fileno())
        return cls(proc, chan)

    def close(self, grace: float = 1.0, term: bool = True) -> int | None:
        """Close stdin, SIGTERM (if `term`), wait `grace`, SIGKILL, reap.

        Returns the exit status (negative = signal), or None if unknown.
        """
        proc = self.proc
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if term and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass
        return proc.returncode

    def kill(self) -> None:
        """Immediate SIGKILL and reap: the helper cannot be resynchronised."""
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        self.close(grace=5.0, term=False)
