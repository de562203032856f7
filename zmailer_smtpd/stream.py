"""Byte-stream I/O of one SMTP session (protocol.md §3.12, §4.3, §4.10).

The session never touches a socket: it reads and writes an ``SmtpStream``
over a *transport* (``recv(n) -> bytes``, ``send(b) -> int``, ``fileno()``,
optionally ``wait_readable(timeout) -> bool``).  ``-i``/``-n`` and the daemon
child use ``FdTransport``/``SocketTransport``; tests use an in-memory one.
TLS replaces the transport and throws away buffered plaintext (RFC 3207).
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

INBUF = 65536  # input buffer size (§3.12)
OUTBUF = 8192  # output buffer size (§3.12)
CAP = 8192  # s_gets storage cap (§4.3)

NUL, TAB, LF, CR = 0, 9, 10, 13
_CLEAN = re.compile(rb"[\t\x20-\x7e]*")  # a line s_gets stores unchanged but for its end


class Transport(Protocol):
    """What the stream needs from the thing under it."""

    def recv(self, n: int) -> bytes: ...

    def send(self, data: bytes) -> int: ...

    def fileno(self) -> int: ...


def poll_fd(fd: int, events: int, timeout: float | None) -> bool:
    """poll() one descriptor; True when it is ready (or in error: let I/O tell)."""
    p = select.poll()
    p.register(fd, events)
    ms = None if timeout is None else max(0, int(timeout * 1000))
    while True:
        try:
            return bool(p.poll(ms))
        except InterruptedError:  # pragma: no cover - PEP 475 retries anyway
            continue


class FdTransport:
    """Two file descriptors (stdin/stdout in ``-i``, fd 0 in ``-n``)."""

    def __init__(self, infd: int, outfd: int) -> None:
        self.infd = infd
        self.outfd = outfd

    def recv(self, n: int) -> bytes:
        try:
            return os.read(self.infd, n)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EIO, errno.EBADF, errno.ENOTCONN):
                return b""
            raise

    def send(self, data: bytes) -> int:
        return os.write(self.outfd, data)

    def fileno(self) -> int:
        return self.infd

    def wait_readable(self, timeout: float | None) -> bool:
        return poll_fd(self.infd, select.POLLIN, timeout)

    def wait_writable(self, timeout: float | None) -> bool:
        return poll_fd(self.outfd, select.POLLOUT, timeout)


class SocketTransport:
    """A connected socket (the daemon child, ``-n`` on a socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._readable = select.poll()  # registered once: a session waits before every read
        self._readable.register(sock.fileno(), select.POLLIN)

    def recv(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except BlockingIOError:
            return b""
        except (ConnectionResetError, ConnectionAbortedError, OSError):
            return b""

    def send(self, data: bytes) -> int:
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def wait_readable(self, timeout: float | None) -> bool:
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return bool(self._readable.poll(ms))

    def readable_now(self) -> bool:
        """Input (or EOF) waiting at once: the pipelining test after every command."""
        return bool(self._readable.poll(0))

    def wait_writable(self, timeout: float | None) -> bool:
        return poll_fd(self.sock.fileno(), select.POLLOUT, timeout)


@dataclass
class Line:
    """One command line as ``s_gets`` left it (§4.3)."""

    text: bytes  # bytes before the first NUL: what later steps see
    n: int  # bytes stored (0 = nothing read: end of session)
    bad: int | None  # offset of the first illegal byte, or None
    last: int | None  # last byte consumed: LF, another byte (truncation), None = EOF
    crlf: bool  # the line ended in CR LF
    stored: bytes  # the stored bytes after end handling (NULs included)

    @property
    def terminated(self) -> bool:
        return self.last == LF


class SmtpStream:
    """Buffered SMTP byte stream with the reader and flush rules of the spec."""

    def __init__(
        self,
        transport: Transport,
        *,
        cmd_timeout: float = 1200.0,
        data_timeout: float = 600.0,
        write_timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        deadline: float | None = None,
    ) -> None:
        self.transport = transport
        self._use(transport)
        self.cmd_timeout = cmd_timeout
        self.data_timeout = data_timeout
        self.write_timeout = write_timeout
        self.clock = clock
        self.deadline = deadline  # absolute clock() value ending the session, or None
        self._in = bytearray()
        self._out = bytearray()
        self.eof = False  # peer closed (a read returned nothing)
        self.timed_out = False
        self.write_failed = False
        self.bytes_read = 0
        self.on_send: Callable[[bytes], None] | None = None  # tests/inspection hook

    def _use(self, transport: Transport) -> None:
        """Look the transport's optional methods up once, not before every read."""
        self._t_pending: Callable[[], int] | None = getattr(transport, "pending", None)
        self._t_wait: Callable[[float | None], bool] | None = getattr(
            transport, "wait_readable", None)
        self._t_now: Callable[[], bool] | None = getattr(transport, "readable_now", None)

    # ---- input -------------------------------------------------------
    def _wait(self, timeout: float | None) -> bool:
        if timeout is not None and self.deadline is not None:
            timeout = max(0.0, min(timeout, self.deadline - self.clock()))
        pend = self._t_pending
        if pend is not None and pend() > 0:  # TLS: decrypted bytes do not make the fd readable
            return True
        w = self._t_wait
        if w is not None:
            return bool(w(timeout))
        return poll_fd(self.transport.fileno(), select.POLLIN, timeout)

    def _fill(self, timeout: float | None) -> bool:
        """Read more input; False on EOF or timeout (flags set)."""
        if self.eof:
            return False
        if not self._wait(timeout):
            if timeout != 0:
                self.timed_out = True
            return False
        room = INBUF - len(self._in)
        try:
            data = self.transport.recv(max(1, room))
        except TimeoutError:
            self.timed_out = True
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.bytes_read += len(data)
        self._in += data
        return True

    def buffered(self) -> int:
        return len(self._in)

    def pending(self) -> int:
        """Bytes of input available *now* (buffered, or readable at once).

        A readable EOF with nothing buffered counts as no input (§10 notes).
        """
        if not self._in and not self.eof:
            now = self._t_now
            if now is None or now():  # nothing waiting: no _fill() needed to find that out
                self._fill(0)
        return len(self._in)

    def s_gets(self) -> Line:
        """Read one command line exactly as protocol.md §4.3 specifies.

        A whole buffered line of printable ASCII (and TAB) is taken in one
        piece; anything else goes byte by byte through :meth:`_s_gets_bytes`.
        """
        buf = self._in
        if not buf and not self._fill(self.cmd_timeout):
            return Line(text=b"", n=0, bad=None, last=None, crlf=False, stored=b"")
        buf = self._in
        i = buf.find(b"\n", 0, CAP - 2)  # n <= CAP - 2: no cap handling applies
        if i >= 0:
            end = i - 1 if i and buf[i - 1] == CR else i
            if _CLEAN.fullmatch(buf, 0, end):
                text = bytes(buf[:end])
                del buf[: i + 1]
                return Line(text=text, n=i + 1, bad=None, last=LF, crlf=end < i,
                            stored=text + b"\0" * (i + 1 - end))
        return self._s_gets_bytes()

    def _s_gets_bytes(self) -> Line:
        stored = bytearray()
        last: int | None = None
        prev: int | None = None
        bad: int | None = None
        pos = 0
        buf = self._in
        while True:
            if pos >= len(buf):
                del buf[:pos]
                pos = 0
                if not self._fill(self.cmd_timeout):
                    last = None
                    break
                buf = self._in
            c = buf[pos]
            pos += 1
            if len(stored) >= CAP:
                last = c
                break
            stored.append(c)
            last = c
            if c == LF:
                break
            if bad is None and (
                prev == CR or c == NUL or c >= 0x80 or (c < 0x20 and c not in (TAB, CR)) or c == 0x7F
            ):
                bad = len(stored) - 1
            prev = c
        del buf[:pos]
        n = len(stored)
        crlf = False
        if last == LF:
            stored[n - 1] = NUL
        if prev == CR:
            crlf = last == LF
            stored[max(0, n - 2)] = NUL
        if n >= CAP - 1 and last is not None and last != LF:
            self._discard_line()
        cut = stored.find(b"\0")
        text = bytes(stored if cut < 0 else stored[:cut])
        return Line(text=text, n=n, bad=bad, last=last, crlf=crlf, stored=bytes(stored))

    def _discard_line(self) -> None:
        while True:
            i = self._in.find(b"\n")
            if i >= 0:
                del self._in[: i + 1]
                return
            self._in.clear()
            if not self._fill(self.cmd_timeout):
                return

    def peek_some(self, timeout: float | None = None) -> bytes:
        """Buffered bytes without consuming them (reading when empty)."""
        if not self._in and not self._fill(self.data_timeout if timeout is None else timeout):
            return b""
        return bytes(self._in)

    def consume(self, n: int) -> None:
        del self._in[:n]

    def discard_input(self) -> int:
        """Throw away buffered plaintext (STARTTLS); returns how much."""
        n = len(self._in)
        self._in.clear()
        return n

    def replace_transport(self, transport: Transport) -> None:
        """Switch to a new transport (TLS); buffered input is discarded first."""
        self.flush()
        self.discard_input()
        self.transport = transport
        self._use(transport)

    # ---- output ------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue output; the buffer is sent when it reaches 8 KiB."""
        if self.write_failed:
            return
        self._out += data
        if len(self._out) >= OUTBUF:
            self.flush()

    def queued(self) -> bytes:
        return bytes(self._out)

    def flush(self) -> None:
        """Send all queued output; a dead peer makes it vanish silently."""
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        if self.write_failed:
            return
        if self.on_send is not None:
            self.on_send(data)
        view = memoryview(data)
        end = self.clock() + self.write_timeout
        while view:
            try:
                n = self.transport.send(view.tobytes())
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.write_failed = True
                return
            if n <= 0:
                ww = getattr(self.transport, "wait_writable", None)
                left = end - self.clock()
                if left <= 0 or ww is None or not ww(left):
                    self.write_failed = True
                    return
                continue
            view = view[n:]
