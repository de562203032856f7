"""DATA and BDAT byte transformation into the spool file (spool.md §8, §9).

Pure incremental transformers: the session reads bytes from its stream and
feeds them here; the transformed message bytes go to ``out`` (normally
SpoolFile.write).  No I/O of their own, so every byte boundary can be tested.

README decisions applied to DATA:

* network sessions (``lf_ok=False``): the end of data is ``CR LF . CR LF``
  and nothing else (the CR LF before the dot may be the one that ended the
  DATA command).  A bare LF or bare CR anywhere sets ``bare_eol``; reading
  goes on to the real end, nothing more is written, the session answers
  550 5.5.2.  ``\\n.\\n``, ``\\r.\\r``, ``\\r\\n.\\n``, ``\\n.\\r\\n`` never end the
  data (SMTP smuggling, to which 3.0.1 is open);
* ``-i`` mode (``lf_ok=True``): 3.0.1's machine exactly (§8.2), LF line ends;
* over ``maxsize``: ``too_big`` is set, output stops, reading goes on to
  the real end so the session answers once (552 5.3.4).

Header phase (§8.3) as 3.0.1, except one defect not copied: a header line
longer than 3999 bytes is classified on its first 3999 bytes like 3.0.1
does, but is stored whole (3.0.1 drops the rest of it, LF included, and
glues the next line to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# DATA machine states (§8.2)
BOL, MID, DOT, CR, DOTCR, END = range(6)
STATE_NAMES = ("BOL", "MID", "DOT", "CR", "DOTCR", "END")

HEADER_LINE_LIMIT = 3999  # bytes of a header line examined (3.0.1's line buffer)

_EOL_SEARCH = re.compile(rb"[\r\n]").search
_END_STRICT = re.compile(rb"\r\n\.\r\n")
_END_LENIENT = re.compile(rb"\n\.\r?\n")

PRIO_BY_PRECEDENCE = ((b"junk", 9), (b"bulk", 1), (b"high", 0), (b"normal", 0))

Out = Callable[[bytes], object]


class DataReceiver:
    """DATA content: dot-unstuffing, end detection, CR LF -> LF, header scan, byte count.

    ``feed()`` returns None while more input is needed; at the end it returns
    the bytes that followed the terminating line (pipelined commands), b"" if
    none.  After the end: ``size`` (raw bytes read, terminator included, §8.4),
    ``priority`` (§4.2), ``bare_eol``, ``too_big``, ``out_error``,
    ``x_advertisement``, ``header_8bit``, ``long_header_lines``; after
    ``eof()``: ``premature`` and ``eof_state``.
    """

    def __init__(
        self,
        out: Out | None,
        *,
        lf_ok: bool,
        maxsize: int = 0,
        header_scan: bool = True,
    ) -> None:
        self._out = out
        self.lf_ok = lf_ok
        self.maxsize = maxsize
        self._state = BOL
        self.size = 0
        self.done = False
        self.priority = 0
        self.bare_eol = False
        self.too_big = False
        self.out_error: BaseException | None = None
        self.premature = False
        self.eof_state: str | None = None
        self.x_advertisement = False
        self.header_8bit = False
        self.long_header_lines = 0
        self.bytes_written = 0
        # header phase
        self._in_headers = header_scan
        self._hline = bytearray()
        self._hmode = 0  # 0 buffering, 1 passing the rest of a long line, 2 dropping it
        self._linecnt = 0
        self._ob = bytearray()
        self._pieces: list[bytes] = []  # body bytes passed on as they are, after _ob
        self._tail = b"\r\n"  # the line end of the DATA command

    # -- public -------------------------------------------------------------

    @property
    def suppressed(self) -> bool:
        """True once nothing more will be written (the message cannot be accepted)."""
        return self.bare_eol or self.too_big or self.out_error is not None

    def feed(self, chunk: bytes) -> bytes | None:
        """Consume input; None = need more, bytes = ended, here is what followed."""
        if self.done:
            return chunk
        i = self._skip(chunk, 0) if self.suppressed else self._run(chunk)
        self.size += i
        if self.maxsize > 0 and self.size > self.maxsize:
            self.too_big = True
        self._drain()
        if self.done:
            return bytes(chunk[i:])
        return None

    def eof(self) -> None:
        """The input ended before the terminator (premature end, §8.5)."""
        if self.done:
            return
        self.eof_state = STATE_NAMES[self._state]
        self.premature = True
        self.done = True
        if self._in_headers and self._hmode == 0 and self._hline:
            self._ob += self._hline  # for a debug keep (§4.6): what was received
            self._hline.clear()
        self._drain()

    # -- machine ------------------------------------------------------------

    def _run(self, chunk: bytes) -> int:
        """Run the state machine over chunk; returns the bytes consumed."""
        st = self._state
        n = len(chunk)
        i = 0
        emit = bytearray()  # the byte machine's output since the last fast-path piece
        parts: list[bytes] = []  # output in order: fast-path pieces and flushed emits
        strict = not self.lf_ok
        fast = strict
        while i < n:
            if fast and st == BOL:
                k, piece = self._clean_lines(chunk, i)
                if k != i:
                    if emit:
                        parts.append(bytes(emit))
                        emit.clear()
                    if piece:
                        parts.append(piece)
                if k < 0:
                    i = -k
                    st = END
                    self.done = True
                    break
                if k > i:
                    i = k
                    continue
                fast = False  # not clean: the byte machine takes the rest of this chunk
            if st == MID:
                m = _EOL_SEARCH(chunk, i)
                j = m.start() if m else n
                if j > i:
                    emit += chunk[i:j]
                    i = j
                if i >= n:
                    break
            c = chunk[i]
            i += 1
            if strict:
                st = self._strict(st, c, emit)
            else:
                st = self._lenient(st, c, emit)
            if st == END:
                self.done = True
                break
            if strict and self.bare_eol:
                # Refused anyway: only the real end matters from here on.
                self._state = st
                return self._skip(chunk, i)
        self._state = st
        self._tail = (self._tail + chunk[max(0, i - 4) : i])[-4:]
        if emit:
            parts.append(bytes(emit))
        for piece in parts:
            self._emit(piece)
        return i

    @staticmethod
    def _clean_lines(chunk: bytes, i: int) -> tuple[int, bytes]:
        """Fast path at a line start: take every complete CR LF line of chunk[i:] at once.

        Only when those lines hold no bare CR or LF; then CR LF -> LF and the
        first dot of each line goes.  Returns (the index after what was taken,
        or i if nothing, or minus the index after the terminator if it was
        found; the output bytes).  A few passes over the bytes in C, each
        cheap: deleting every CR (translate) is what CR LF -> LF is once the
        CRs are known to pair with the LFs.
        """
        k = chunk.rfind(b"\r\n", i)
        if k < 0:
            return i, b""
        region = chunk[i : k + 2]  # the chunk itself when all of it (no copy)
        dots = b"." in region  # memchr: most chunks of a large message have none
        if not dots:
            e = -1
        elif region[:3] == b".\r\n":
            e = 0
        else:
            e = region.find(b"\r\n.\r\n")
            if e >= 0:
                e += 2  # the terminating dot
        if e >= 0:
            region = region[:e]
        out = region.translate(None, b"\r")
        pairs = len(region) - len(out)
        if out.count(b"\n") != pairs or (pairs and region.count(b"\r\n") != pairs):
            return i, b""  # the byte machine finds and flags the bare line end
        if not dots:
            pass
        elif out[:1] == b".":
            out = out[1:]
            if b"\n." in out:
                out = out.replace(b"\n.", b"\n")
        elif b"\n." in out:
            out = out.replace(b"\n.", b"\n")
        return (k + 2, out) if e < 0 else (-(i + e + 3), out)

    def _skip(self, chunk: bytes, start: int) -> int:
        """Find the end without transforming (output no longer matters); returns bytes consumed.

        Strict: the end is CR LF . CR LF.  -i: LF . LF or LF . CR LF.  ``_tail``
        holds the last 4 bytes consumed (initially the CR LF of the DATA line),
        so a terminator split across feeds is found; a match cannot lie wholly
        inside it, or the data would have ended already.
        """
        tail = (self._tail + chunk[max(0, start - 4) : start])[-4:]
        hay = tail + chunk[start:]
        m = (_END_LENIENT if self.lf_ok else _END_STRICT).search(hay)
        if m is None:
            self._tail = hay[-4:]
            self._state = MID
            return len(chunk)
        self.done = True
        self._state = END
        return start + m.end() - len(tail)

    def _strict(self, st: int, c: int, emit: bytearray) -> int:
        """Network machine: only CR LF is a line end, only CR LF . CR LF ends the data."""
        if st == BOL or st == MID:
            if c == 0x0D:
                return CR
            if c == 0x0A:
                self.bare_eol = True
                return MID
            if c == 0x2E and st == BOL:
                return DOT
            emit.append(c)
            return MID
        if st == CR:
            if c == 0x0A:
                emit.append(0x0A)
                return BOL
            self.bare_eol = True
            if c == 0x0D:
                return CR
            emit.append(0x0D)
            emit.append(c)
            return MID
        if st == DOT:
            if c == 0x0D:
                return DOTCR
            if c == 0x0A:
                self.bare_eol = True
                return MID
            emit.append(c)  # the first dot is dropped
            return MID
        # DOTCR
        if c == 0x0A:
            return END
        self.bare_eol = True
        if c == 0x0D:
            return CR
        emit.append(0x0D)
        emit.append(c)
        return MID

    @staticmethod
    def _lenient(st: int, c: int, emit: bytearray) -> int:
        """3.0.1's machine (§8.2 table), used in -i mode."""
        if st == BOL:
            if c == 0x2E:
                return DOT
            if c == 0x0D:
                return CR
            emit.append(c)
            return BOL if c == 0x0A else MID
        if st == MID:
            if c == 0x0D:
                return CR
            emit.append(c)
            return BOL if c == 0x0A else MID
        if st == DOT:
            if c == 0x0A:
                return END
            if c == 0x0D:
                return DOTCR
            emit.append(c)
            return MID
        # CR and DOTCR: a CR is held (the dot of DOTCR is dropped)
        if c == 0x0A:
            if st == DOTCR:
                return END
            emit.append(0x0A)
            return BOL
        emit.append(0x0D)
        if c == 0x0D:
            return CR
        emit.append(c)
        return MID

    # -- output ---------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        if not self._in_headers:
            if self._ob:
                self._ob += data
            else:
                self._pieces.append(data)  # the body: no copy
            return
        self._header_bytes(data)

    def _drain(self) -> None:
        if not self._ob and not self._pieces:
            return
        if self.suppressed or self._out is None:
            self._ob.clear()
            self._pieces.clear()
            return
        pieces = self._pieces
        if self._ob:
            pieces.insert(0, bytes(self._ob))
            self._ob.clear()
        self._pieces = []
        for data in pieces:
            try:
                self._out(data)
                self.bytes_written += len(data)
            except Exception as e:  # noqa: BLE001 - any spool failure; reported after the end
                self.out_error = e
                return

    # -- header phase (§8.3) --------------------------------------------------

    def _header_bytes(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n and self._in_headers:
            j = data.find(b"\n", pos)
            end = n if j < 0 else j + 1
            seg = data[pos:end]
            pos = end
            eol = j >= 0
            if self._hmode == 1:
                self._ob += seg
                if eol:
                    self._hmode = 0
                continue
            if self._hmode == 2:
                if eol:
                    self._hmode = 0
                continue
            self._hline += seg
            if len(self._hline) > HEADER_LINE_LIMIT:
                # Classified on the bytes 3.0.1 would have kept, but stored whole.
                self.long_header_lines += 1
                line = bytes(self._hline)
                self._hline.clear()
                keep = self._line(line[:HEADER_LINE_LIMIT])
                if keep:
                    self._ob += line
                if not eol and self._in_headers:
                    self._hmode = 1 if keep else 2
            elif eol:
                line = bytes(self._hline)
                self._hline.clear()
                if self._line(line):
                    self._ob += line
        if pos < n:
            self._ob += data[pos:]

    def _line(self, line: bytes) -> bool:
        """Examine one header line (or a long line's prefix); True = write it."""
        if not line.strip(b" \t\r\n"):
            self._in_headers = False  # the body starts after this line
            return True
        self._linecnt += 1
        first = line[0]
        if first == 0x20 or first == 0x09:
            return True
        if not line.isascii():
            self.header_8bit = True
        low = line[:16].lower()
        if low.startswith(b"precedence:"):
            v = line[11:].lstrip(b" \t")
            if len(v) >= 4:
                lv = v[:6].lower()
                for word, prio in PRIO_BY_PRECEDENCE:
                    if lv.startswith(word):
                        self.priority = prio
                        break
        elif low.startswith(b"x-advertisement:") or low.startswith(b"x-advertisment:"):
            self.x_advertisement = True  # logged only; never freezes (§8.3.6)
        if self._linecnt == 1 and (line.startswith(b"From ") or line.startswith(b">From ")):
            return False
        return True


class BdatReceiver:
    """BDAT chunks (§9.3): exact byte counts, CR LF -> LF with a CR hold across chunks.

    Per chunk: ``start_chunk(size, last=...)``, then ``feed()`` until it returns
    the leftover bytes (not None).  No dot handling, no header scan.  ``total``
    counts every chunk byte received in the transaction.
    """

    def __init__(self, out: Out | None) -> None:
        self._out = out
        self._held_cr = False
        self._remaining = 0
        self._last = False
        self._discard = False
        self.in_chunk = False
        self.chunks = 0
        self.total = 0
        self.chunk_size = 0
        self.out_error: BaseException | None = None
        self.premature = False
        self.done = False  # the LAST chunk was received completely

    def start_chunk(self, size: int, *, last: bool = False, discard: bool = False) -> None:
        """Begin a chunk of ``size`` bytes; ``discard`` reads it without output."""
        if size < 0:
            raise ValueError("negative BDAT size")
        self._remaining = size
        self._last = last
        self._discard = discard
        self.chunk_size = size
        self.chunks += 1
        self.in_chunk = True
        if size == 0:
            self._finish_chunk()

    def feed(self, data: bytes) -> bytes | None:
        """Consume up to the chunk's remaining bytes; the rest is returned at the chunk end."""
        if not self.in_chunk:
            return data
        take = min(self._remaining, len(data))
        seg = data[:take]
        self._remaining -= take
        self.total += take
        self._write(seg)
        if self._remaining:
            return None
        self._finish_chunk()
        return bytes(data[take:])

    def eof(self) -> None:
        """The input ended inside a chunk."""
        self.premature = True
        self.in_chunk = False

    def _finish_chunk(self) -> None:
        self.in_chunk = False
        if self._last:
            self._held_cr = False  # a CR at the very end of the last chunk is lost
            self.done = True

    def _write(self, seg: bytes) -> None:
        if not seg:
            return
        data = (b"\r" + seg) if self._held_cr else seg
        stripped = data.rstrip(b"\r")
        self._held_cr = len(stripped) != len(data)
        if b"\r" in stripped:
            stripped = re.sub(rb"\r+\n", b"\n", stripped)
            stripped = re.sub(rb"\r\r+", b"\r", stripped)
        if not stripped or self._discard or self._out is None or self.out_error is not None:
            return
        try:
            self._out(stripped)
        except Exception as e:  # noqa: BLE001 - reported to the session after the chunk
            self.out_error = e
