"""TLS for STARTTLS and implicit TLS (interfaces.md §4), on pyOpenSSL.

pyOpenSSL, not the ssl module, because ``tls-ask-cert`` must ask for a client
certificate and *record* its verification result without failing the
handshake, while ``tls-require-cert`` enforces it (spec/README.md, §9 Q8).

The TLS engine runs over memory BIOs: this module does the socket I/O itself,
so the bytes sniffed by ``outlook-tls-bug`` can be handed back to the
handshake, every wait has a deadline, and the plaintext buffer it exposes
(``pending()``) is exact, which a poll on the descriptor alone is not.
It also lets ``tls-loglevel`` 3 dump the raw records of the handshake and
4 those of the whole session, as 3.0.1's ``bio_dump_cb`` on the socket BIO
did (``dump_lines``; TLSTransport._start_dump): what crosses the socket,
never the plaintext, so no password reaches the log that way.

How the session uses it (the seam; session.py wires it in)::

    # start-up, before privileges are dropped (key files are often 0400 root):
    tls = ServerTLS.from_settings(settings, log)   # None when use-tls is off;
                                                   # TLSConfigError = start-up error
    # EHLO: advertise "STARTTLS" iff tls is not None and not session.tls_active
    # STARTTLS (protocol.md §4.7.17, interfaces.md §4.4, spec/README.md):
    #   tls None -> 502 5.4.0 ; active -> 554 5.4.0 ; argument -> 501 5.1.3
    #   reply "220 Ready to start TLS", flush
    #   stream.discard_input()          # every buffered plaintext byte: RFC 3207
    #   abort the transaction; forget HELO/EHLO (state "before EHLO"),
    #   keep authuser
    #   try: t = tls.handshake(stream.transport)   # object with fileno() or an fd;
    #                                  # t keeps the old transport (its socket owns the fd)
    #   except TLSError: log it, end the session with exit status 2, no reply
    #   stream.replace_transport(t); session.tls_info = t.info; with-flag "S"
    # implicit TLS (listen-ssmtp / BindSmtpS listener, or -t): the same
    #   handshake before the 220 greeting; STARTTLS then answers 554.
    # outlook-tls-bug (local port not 25): data = stream.peek_some(timeout=2);
    #   if data[:1] in (b"\x16", b"\x80"): stream.consume(len(data));
    #   t = tls.handshake(stream.transport, initial=data)  # the sniffed bytes go back
    # MAIL: received.py writes t.info.cipher_info / t.info.peer_subject
    #   (rcvd-tls-mode / rcvd-tls-peer in rcvdfrom; always in the comment line).
"""

from __future__ import annotations

import os
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from .stream import poll_fd

HANDSHAKE_TIMEOUT = 300.0  # seconds per wait (interfaces.md §4.4)
READ_TIMEOUT = 1200.0  # command read inactivity (protocol.md §3.12)
WRITE_TIMEOUT = 300.0  # output progress
_CHUNK = 65536
SESSION_ID_CONTEXT = b"zmailer_smtpd"

LogFn = Callable[[str], None]


class TLSError(Exception):
    """A handshake or TLS I/O failure: the session ends without an SMTP reply."""


class TLSConfigError(TLSError):
    """The TLS context cannot be built: a start-up error naming the file/PARAM."""


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    value = str(value)
    return value or None


def _as_int(value: Any, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class TLSSettings:
    """The ``tls-*`` PARAMs of one listener group (interfaces.md §4.1)."""

    cert_file: str | None = None
    key_file: str | None = None
    dcert_file: str | None = None
    dkey_file: str | None = None
    dh1024: str | None = None
    dh512: str | None = None
    ca_file: str | None = None
    ca_path: str | None = None
    cipher_list: str | None = None
    random_source: str | None = None
    loglevel: int = 0
    ask_cert: bool = False
    require_cert: bool = False
    ccert_vd: int = 1

    @classmethod
    def from_settings(cls, settings: Any) -> TLSSettings:
        s = cls(
            cert_file=_as_str(settings.get("tls-cert-file")),
            key_file=_as_str(settings.get("tls-key-file")),
            dcert_file=_as_str(settings.get("tls-dcert-file")),
            dkey_file=_as_str(settings.get("tls-dkey-file")),
            dh1024=_as_str(settings.get("tls-dh1024")),
            dh512=_as_str(settings.get("tls-dh512")),
            ca_file=_as_str(settings.get("tls-cafile")),
            ca_path=_as_str(settings.get("tls-capath")),
            cipher_list=_as_str(settings.get("tls-cipher-list")),
            random_source=_as_str(settings.get("tls-random-source")),
            loglevel=_as_int(settings.get("tls-loglevel")),
            ask_cert=bool(_as_int(settings.get("tls-ask-cert"))),
            require_cert=bool(_as_int(settings.get("tls-require-cert"))),
            ccert_vd=_as_int(settings.get("tls-ccert-vd"), 1),
        )
        # Setting either of a pair defaults the other to the same file (§4.1).
        s.cert_file = s.cert_file or s.key_file
        s.key_file = s.key_file or s.cert_file
        s.dcert_file = s.dcert_file or s.dkey_file
        s.dkey_file = s.dkey_file or s.dcert_file
        return s


@dataclass
class TLSInfo:
    """What a finished handshake leaves for the log, the spool and Received."""

    protocol: str = ""  # "TLSv1.3"
    cipher: str = ""  # "TLS_AES_256_GCM_SHA384"
    secret_bits: int = 0
    cipher_version: str = ""  # SSL_CIPHER_get_version(): "TLSv1.3"
    peer_subject: str | None = None  # "/C=FI/O=Example/CN=client.example"
    peer_issuer: str | None = None
    peer_cn: str | None = None
    issuer_cn: str | None = None
    peer_fingerprint: str | None = None  # MD5 of the DER, "AB-CD-..."
    verify_ok: bool | None = None  # None: no client certificate
    verify_errors: list[tuple[int, int, str]] = field(default_factory=list)  # (code, depth, text)

    @property
    def cipher_info(self) -> str:
        """The spool/Received text (§4.7); secret bits used for both numbers."""
        if not self.cipher:
            return "<no-cipher-in-use!>"
        bits = self.secret_bits
        return f"{self.cipher} keybits {bits}/{bits} version {self.cipher_version}"

    @property
    def verify_text(self) -> str:
        if self.verify_ok is None:
            return "no client certificate"
        if self.verify_ok:
            return "ok"
        code, depth, text = self.verify_errors[0]
        return f"error {code} at depth {depth}: {text}"


def _verify_error_text(code: int) -> str:
    try:
        from OpenSSL._util import ffi, lib  # private, but the only source of the text

        return str(ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace"))
    except Exception:  # noqa: BLE001 - the code alone still says it
        return f"verify error {code}"


# OpenSSL's short names, as X509_NAME_oneline prints them.
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street",
    "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.5": "serialNumber",
    "2.5.4.12": "title", "2.5.4.43": "initials", "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym", "2.5.4.17": "postalCode",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}


def _oneline(name: x509.Name) -> str:
    """OpenSSL's X509_NAME_oneline form: /C=FI/O=Example/CN=x, \\xHH escapes."""
    out = []
    for attr in name:
        key = _SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string)
        raw = attr.value if isinstance(attr.value, bytes) else attr.value.encode("utf-8")
        text = "".join(chr(b) if 0x20 <= b <= 0x7E else f"\\x{b:02X}" for b in raw)
        out.append(f"/{key}={text}")
    return "".join(out)


def _cn(name: x509.Name) -> str | None:
    for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME):
        return attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
    return None


# -- tls-loglevel 3/4: the dump of the raw records (interfaces.md §4.1) ------

DUMP_WIDTH = 16
_TLS_CONTENT_TYPES = range(0x14, 0x19)  # change_cipher_spec .. heartbeat
_MAX_RECORD = 16384 + 2048  # the largest TLSCiphertext fragment


def dump_lines(data: bytes) -> list[str]:
    """3.0.1's ``tls_dump()`` (OpenSSL's b_dump.c with TRUNCATE), line for line.

    Trailing spaces and NULs are not dumped but summed up in one
    ``<SPACES/NULS>`` line that gives the full length.  There is no cap:
    3.0.1 dumps every byte it is handed.
    """
    full = len(data)
    end = full
    while end > 0 and data[end - 1] in (0x20, 0x00):
        end -= 1
    lines = []
    for row in range(0, end, DUMP_WIDTH):
        chunk = data[row : min(row + DUMP_WIDTH, end)]
        hexpart = "".join(
            f"{b:02x}{'|' if j == 7 else ' '}" if j < len(chunk) else "   "
            for j, b in enumerate(chunk.ljust(DUMP_WIDTH, b"\0"))
        )
        text = "".join(
            (chr(b) if 0x20 <= b <= 0x7E else ".") + (" " if j == 7 else "")
            for j, b in enumerate(chunk)
        )
        lines.append(f"{row:04x} {hexpart} {text}")
    if end < full:
        lines.append(f"{full:04x} - <SPACES/NULS>")
    return lines


class _RecordSplitter:
    """Cuts the byte stream from the client into whole TLS records.

    A record is (header length, record bytes).  A header that no TLS engine
    would accept (unknown type, wrong version, oversized) stops the parsing
    for good and the rest passes as it comes (header length 0), so that a
    bad client fails at once instead of waiting for a record never sent.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.raw = False

    def push(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out: list[tuple[int, bytes]] = []
        while self.buf:
            if self.raw:
                out.append((0, bytes(self.buf)))
                self.buf.clear()
                break
            first = self.buf[0]
            if first in _TLS_CONTENT_TYPES:
                hlen = 5
                if len(self.buf) < hlen:
                    break
                total = hlen + int.from_bytes(self.buf[3:5], "big")
                sane = self.buf[1] == 3 and total <= hlen + _MAX_RECORD
            elif first & 0x80:  # SSLv2-style CLIENT-HELLO: 2-byte header
                hlen = 2
                if len(self.buf) < hlen + 1:
                    break
                total = hlen + (((first & 0x7F) << 8) | self.buf[1])
                sane = self.buf[2] == 1  # MSG-CLIENT-HELLO
            else:
                sane = False
            if not sane:  # let TLS see it now and fail at once, as without a dump
                self.raw = True
                continue
            if len(self.buf) < total:
                break
            out.append((hlen, bytes(self.buf[:total])))
            del self.buf[:total]
        return out

    def take_rest(self) -> bytes:
        """The incomplete record held back (handed to TLS when dumping stops)."""
        rest = bytes(self.buf)
        self.buf.clear()
        return rest

    def need(self) -> int:
        """What the next read would ask for, as OpenSSL without read-ahead does."""
        if len(self.buf) >= 5 and self.buf[0] in _TLS_CONTENT_TYPES:
            return 5 + int.from_bytes(self.buf[3:5], "big") - len(self.buf)
        return 5 - len(self.buf) if len(self.buf) < 5 else 1


class _VerifyRecord:
    """Per-connection verification facts collected by the verify callback."""

    def __init__(self) -> None:
        self.errors: list[tuple[int, int, str]] = []
        self.called = False


class ServerTLS:
    """The server TLS context of one session process; built once, at start-up."""

    def __init__(self, settings: Any, log: LogFn | None = None) -> None:
        self.conf = settings if isinstance(settings, TLSSettings) else TLSSettings.from_settings(settings)
        self.log: LogFn = log if log is not None else (lambda _msg: None)
        self.context = self._build_context()
        self.available = True

    @classmethod
    def from_settings(cls, settings: Any, log: LogFn | None = None) -> ServerTLS | None:
        """None when ``use-tls`` is off; raises TLSConfigError when it cannot work."""
        if not settings.get("use-tls"):
            return None
        return cls(settings, log)

    # -- context ---------------------------------------------------------

    @staticmethod
    def _readable(param: str, path: str) -> None:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as e:
            raise TLSConfigError(f"{param} {path}: {e.strerror or e}") from e

    def _build_context(self) -> SSL.Context:
        c = self.conf
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_options(SSL.OP_ALL | SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3)
        ctx.set_session_id(SESSION_ID_CONTEXT)
        if not c.cert_file and not c.dcert_file:
            raise TLSConfigError("use-tls: neither tls-cert-file nor tls-dcert-file is set")
        for cparam, cert, kparam, key in (
            ("tls-cert-file", c.cert_file, "tls-key-file", c.key_file),
            ("tls-dcert-file", c.dcert_file, "tls-dkey-file", c.dkey_file),
        ):
            if not cert or not key:
                continue
            self._readable(cparam, cert)
            self._readable(kparam, key)
            try:
                ctx.use_certificate_chain_file(cert)
            except SSL.Error as e:
                raise TLSConfigError(f"{cparam} {cert}: no usable PEM certificate ({e})") from e
            try:
                ctx.use_privatekey_file(key)
            except SSL.Error as e:
                raise TLSConfigError(
                    f"{kparam} {key}: no usable unencrypted PEM private key ({e})"
                ) from e
            try:
                ctx.check_privatekey()
            except SSL.Error as e:
                raise TLSConfigError(
                    f"{kparam} {key} does not match {cparam} {cert} ({e})"
                ) from e
            if c.loglevel >= 1:
                self.log(f"TLS: loaded {cparam} {cert} and {kparam} {key}")
        if c.dh1024:
            self._readable("tls-dh1024", c.dh1024)
            try:
                ctx.load_tmp_dh(c.dh1024)
            except SSL.Error as e:
                raise TLSConfigError(f"tls-dh1024 {c.dh1024}: no usable DH parameters ({e})") from e
        if c.dh512:
            self._readable("tls-dh512", c.dh512)
            self.log(f"TLS: tls-dh512 {c.dh512} has no effect (export ciphers are gone)")
        if c.random_source:
            self.log("TLS: tls-random-source has no effect (OpenSSL seeds itself)")
        if c.cipher_list:
            try:
                ctx.set_cipher_list(c.cipher_list.encode("ascii", "replace"))
            except SSL.Error as e:
                raise TLSConfigError(f"tls-cipher-list {c.cipher_list!r}: invalid ({e})") from e
        if c.ca_file:
            self._readable("tls-CAfile", c.ca_file)
        if c.ca_path and not os.path.isdir(c.ca_path):
            raise TLSConfigError(f"tls-CApath {c.ca_path}: not a directory")
        if c.ca_file or c.ca_path:
            try:
                ctx.load_verify_locations(c.ca_file, c.ca_path)
            except SSL.Error as e:
                where = f"tls-CAfile {c.ca_file}" if c.ca_file else f"tls-CApath {c.ca_path}"
                raise TLSConfigError(f"{where}: no usable CA certificates ({e})") from e
        try:
            ctx.set_default_verify_paths()
        except SSL.Error:
            pass
        if c.ask_cert or c.require_cert:
            if not (c.ca_file or c.ca_path):
                raise TLSConfigError("tls-ask-cert/tls-require-cert need tls-CAfile or tls-CApath")
            if c.ca_file:
                try:
                    ctx.load_client_ca(c.ca_file.encode())
                except SSL.Error as e:
                    raise TLSConfigError(f"tls-CAfile {c.ca_file}: no CA names ({e})") from e
            mode = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
            if c.require_cert:
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            ctx.set_verify(mode, self._verify_callback)
        if c.loglevel >= 2:
            ctx.set_info_callback(self._info_callback)
        return ctx

    def _verify_callback(
        self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """Record every error; only tls-require-cert lets one fail the handshake."""
        rec = conn.get_app_data()
        if isinstance(rec, _VerifyRecord):
            rec.called = True
        if not ok or depth > self.conf.ccert_vd:
            if ok:  # chain deeper than tls-ccert-vd allows (Postfix's rule)
                errno = 22  # X509_V_ERR_CERT_CHAIN_TOO_LONG
            text = _verify_error_text(errno)
            if isinstance(rec, _VerifyRecord):
                rec.errors.append((errno, depth, text))
            if self.conf.loglevel >= 1:
                self.log(
                    f"TLS: client certificate verify error {errno} at depth {depth}: {text}: "
                    f"{_oneline(cert.to_cryptography().subject)}"
                )
            return not self.conf.require_cert
        return True

    def _info_callback(self, conn: SSL.Connection, where: int, ret: int) -> None:
        try:
            state = conn.get_state_string().decode("ascii", "replace")
        except Exception:  # noqa: BLE001 - logging must never break a handshake
            return
        self.log(f"TLS: state {where:#x} {state} ret {ret}")

    # -- handshake -------------------------------------------------------

    def handshake(
        self,
        conn: int | _HasFileno,
        *,
        initial: bytes = b"",
        timeout: float = HANDSHAKE_TIMEOUT,
        write_fd: int | None = None,
    ) -> TLSTransport:
        """Run the server side of a handshake on a connected descriptor.

        `conn` is the fd or the old transport (anything with fileno()).
        `initial` are bytes already read from the client that belong to the
        handshake (outlook-tls-bug's sniffed byte).  Writes go to `write_fd`,
        else the transport's ``outfd`` (FdTransport), else the same fd.
        Raises TLSError.
        """
        fd = conn if isinstance(conn, int) else conn.fileno()
        if write_fd is None:  # stream.FdTransport: stdin/stdout of -n / -i
            write_fd = getattr(conn, "outfd", None)
        ssl = SSL.Connection(self.context, None)
        rec = _VerifyRecord()
        ssl.set_app_data(rec)
        ssl.set_accept_state()
        t = TLSTransport(ssl, fd, fd if write_fd is None else write_fd, self.log)
        t.under = None if isinstance(conn, int) else conn  # its socket object owns the fd
        t._start_dump(self.conf.loglevel)
        if initial:
            t._queue_in(initial)
        deadline_each = timeout
        while True:
            try:
                ssl.do_handshake()
                break
            except SSL.WantReadError:
                if t._inq:  # one record at a time: the dump stops where the handshake does
                    t._feed_record(t._inq.popleft())
                    continue
                try:
                    t._flush_out(deadline_each)
                    data = t._read_fd(deadline_each)
                except (TimeoutError, OSError) as e:
                    raise TLSError(f"SSL_accept error: {e}") from e
                if not data:
                    t._note_eof()
                    raise TLSError("SSL_accept error: connection closed during handshake") from None
                t._queue_in(data)
            except SSL.Error as e:
                try:
                    t._flush_out(5.0)  # the fatal alert, if any
                except (TLSError, OSError):
                    pass
                raise TLSError(f"SSL_accept error: {e}") from e
        t._flush_out(deadline_each)
        t._end_handshake_dump()
        t.info = self._facts(ssl, rec)
        t._drain()
        if self.conf.loglevel >= 1:
            self.log("TLS connection established")
            self.log(f"Cipher: {t.info.cipher_info}")
            if t.info.peer_subject is not None:
                self.log(
                    f"TLS: client certificate subject {t.info.peer_subject} issuer "
                    f"{t.info.peer_issuer}: {t.info.verify_text}"
                )
        if self.conf.loglevel >= 3 and t.info.peer_fingerprint:
            self.log(f"TLS: client certificate fingerprint {t.info.peer_fingerprint}")
        return t

    @staticmethod
    def _facts(ssl: SSL.Connection, rec: _VerifyRecord) -> TLSInfo:
        info = TLSInfo(
            protocol=ssl.get_protocol_version_name(),
            cipher=ssl.get_cipher_name() or "",
            secret_bits=ssl.get_cipher_bits() or 0,
            cipher_version=ssl.get_cipher_version() or "",
        )
        cert = ssl.get_peer_certificate(as_cryptography=True)
        if cert is not None:
            info.peer_subject = _oneline(cert.subject)
            info.peer_issuer = _oneline(cert.issuer)
            info.peer_cn = _cn(cert.subject)
            info.issuer_cn = _cn(cert.issuer)
            info.peer_fingerprint = "-".join(f"{b:02X}" for b in cert.fingerprint(hashes.MD5()))
            info.verify_errors = list(rec.errors)
            info.verify_ok = not rec.errors
        return info


class TLSTransport:
    """The stream transport inside TLS: recv(n) / send(b) / fileno() / pending().

    recv() blocks until plaintext arrives (each wait up to `timeout`, then
    TimeoutError), returns b"" at EOF or close_notify.  Everything decrypted
    is kept in an internal buffer whose size pending() reports: a stream
    must consult pending() before polling fileno(), because decrypted bytes
    do not make the descriptor readable.
    """

    def __init__(self, ssl: SSL.Connection, rfd: int, wfd: int, log: LogFn) -> None:
        self.ssl = ssl
        self.rfd = rfd
        self.wfd = wfd
        for fd in {rfd, wfd}:
            os.set_blocking(fd, False)  # every wait is a poll with a deadline
        self.log = log
        self.timeout: float | None = READ_TIMEOUT
        self.write_timeout: float = WRITE_TIMEOUT
        self.info = TLSInfo()
        self.under: Any = None  # the plaintext transport: kept alive, never used again
        self._plain = bytearray()
        self._eof = False
        # tls-loglevel 3/4 dump state (see _start_dump)
        self.dump_level = 0
        self._dumping = False
        self._splitter = _RecordSplitter()
        self._inq: deque[tuple[int, bytes]] = deque()
        self._bio_id = id(ssl) & 0xFFFFFFFF
        self._offset = {"read from": 0, "write to": 0}

    def fileno(self) -> int:
        return self.rfd

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def pending(self) -> int:
        """Decrypted bytes waiting to be recv()ed without touching the socket."""
        return len(self._plain)

    def wait_readable(self, timeout: float | None) -> bool:
        """True when recv() will not block: plaintext is buffered, or EOF.

        A readable socket is not enough (it may hold half a record), so this
        reads and decrypts until a whole record's plaintext is there.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._plain and not self._eof:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                data = self._read_fd(left)
            except TimeoutError:
                return False
            if not data:
                self._note_eof()
                self._eof = True
                break
            self._feed(data)
            self._drain()
        return True

    def wait_writable(self, timeout: float | None) -> bool:
        return poll_fd(self.wfd, select.POLLOUT, timeout)

    def recv(self, n: int) -> bytes:
        while not self._plain and not self._eof:
            data = self._read_fd(self.timeout)
            if not data:
                self._note_eof()
                self._eof = True
                break
            self._feed(data)
            self._drain()
        out = bytes(self._plain[:n])
        del self._plain[:n]
        return out

    def send(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            try:
                n = self.ssl.send(view[:16384].tobytes())
            except SSL.WantReadError:  # renegotiation: never with TLS_SERVER_METHOD defaults
                self._flush_out(self.write_timeout)
                continue
            except SSL.Error as e:
                raise BrokenPipeError(f"TLS write failed: {e}") from e
            view = view[n:]
            self._flush_out(self.write_timeout)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def close(self) -> None:
        """Send close_notify (best effort); the descriptor stays open."""
        try:
            self.ssl.shutdown()
            self._flush_out(5.0)
        except (SSL.Error, OSError, TLSError):
            pass

    # -- tls-loglevel 3/4 dumps -------------------------------------------

    def _start_dump(self, loglevel: int) -> None:
        """Level 3 dumps the handshake, level 4 every record of the session.

        What is dumped are the raw records as they cross the socket, as
        3.0.1's ``bio_dump_cb`` on the socket BIO did: after the handshake
        they are encrypted, so no plaintext (no AUTH password, no message)
        ever reaches the log through the dump.
        """
        self.dump_level = loglevel
        self._dumping = loglevel >= 3

    def _dump_io(self, verb: str, asked: int, data: bytes) -> None:
        """3.0.1's ``read from %08X [%08lX] (%d bytes => %ld (0x%X))`` and the dump.

        The two addresses of 3.0.1 (the BIO, the buffer) mean nothing here:
        the first is a per-connection number, the second the offset of
        these bytes in that direction's byte stream.
        """
        n = len(data)
        off = self._offset[verb]
        self._offset[verb] = off + n
        self.log(f"{verb} {self._bio_id:08X} [{off & 0xFFFFFFFF:08X}] ({asked} bytes => {n} (0x{n:X}))")
        for line in dump_lines(data):
            self.log(line)

    def _note_eof(self) -> None:
        """A read that saw EOF: 3.0.1 logs the read with ``=> 0`` and no dump."""
        if self._dumping:
            self._dump_io("read from", self._splitter.need(), b"")

    def _queue_in(self, data: bytes) -> None:
        """Bytes from the client during the handshake, queued as records."""
        if self._dumping:
            self._inq.extend(self._splitter.push(data))
        else:
            self._inq.append((0, data))

    def _feed_record(self, item: tuple[int, bytes]) -> None:
        """Dump (header, then body, as OpenSSL reads them) and hand to TLS."""
        hlen, data = item
        if self._dumping:
            if hlen:
                self._dump_io("read from", hlen, data[:hlen])
                if len(data) > hlen:
                    self._dump_io("read from", len(data) - hlen, data[hlen:])
            else:
                self._dump_io("read from", _CHUNK, data)
        self.ssl.bio_write(data)

    def _end_handshake_dump(self) -> None:
        """Below level 4 the dump ends with the handshake (3.0.1's do_dump = 0)."""
        if self.dump_level < 4:
            self._dumping = False
        while self._inq:
            self._feed_record(self._inq.popleft())
        if not self._dumping:
            rest = self._splitter.take_rest()
            if rest:
                self.ssl.bio_write(rest)

    def _feed(self, data: bytes) -> None:
        """Bytes read after the handshake: dumped per record at level 4."""
        if not self._dumping:
            self.ssl.bio_write(data)
            return
        for item in self._splitter.push(data):
            self._feed_record(item)

    # -- internals -------------------------------------------------------

    def _drain(self) -> None:
        """Decrypt everything the BIO holds into the plaintext buffer."""
        while True:
            try:
                chunk = self.ssl.recv(_CHUNK)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._eof = True
                break
            except SSL.SysCallError:
                self._eof = True
                break
            except SSL.Error as e:
                self.log(f"TLS read error: {e}")
                self._eof = True
                break
            if not chunk:
                break
            self._plain += chunk
        self._flush_out(self.write_timeout)  # tickets, key updates, alerts

    def _read_fd(self, timeout: float | None) -> bytes:
        """One read from the socket within `timeout` seconds; b"" at EOF."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN | select.POLLPRI)
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not poller.poll(None if wait is None else int(wait * 1000) + 1):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("TLS read timed out")
                continue
            try:
                return os.read(self.rfd, _CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                return b""

    def _flush_out(self, timeout: float | None) -> None:
        """Write every byte the TLS engine has queued for the peer."""
        while True:
            try:
                out = self.ssl.bio_read(_CHUNK)
            except SSL.WantReadError:
                return
            if not out:
                return
            if self._dumping:
                self._dump_io("write to", len(out), out)
            self._write_fd(out, timeout)

    def _write_fd(self, data: bytes, timeout: float | None) -> None:
        view = memoryview(data)
        poller = select.poll()
        poller.register(self.wfd, select.POLLOUT)
        while view:
            try:
                n = os.write(self.wfd, view)
            except (BlockingIOError, InterruptedError):
                wait = None if timeout is None else int(timeout * 1000)
                if not poller.poll(wait):
                    raise TimeoutError("TLS write timed out") from None
                continue
            view = view[n:]
