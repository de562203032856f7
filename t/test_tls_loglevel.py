"""tls-loglevel 3 and 4: the dump of the raw TLS records (interfaces.md §4.1).

3.0.1 (smtpserver/smtptls.c, ``bio_dump_cb`` + ``tls_dump``) logs at level 3
every read and write of the socket during the handshake, at level 4 those of
the whole session, each as ``read from|write to <bio> [<buf>] (N bytes => M
(0xM))`` followed by 16-byte hex + ASCII rows.  Here the server is
zmailer_smtpd.tls on a real loopback socket; the client is Python's ssl
module over memory BIOs, so the test knows every byte that crossed the wire
and can compare the dump with it byte for byte.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from typing import Any

import pytest
import trustme
from test_tls_handshake import OneShotServer, read_line

from zmailer_smtpd import config, tls

PASSWORD = b"Sw0rdf1sh-s3cret"
HDR = re.compile(
    r"^(read from|write to) ([0-9A-F]{8}) \[([0-9A-F]{8})\] \((\d+) bytes => (\d+) \(0x([0-9A-F]+)\)\)$"
)
ROW = re.compile(r"^([0-9a-f]{4}) ((?:[0-9a-f]{2}[ |]|   ){16}) (.*)$")
TRUNC = re.compile(r"^([0-9a-f]{4}) - <SPACES/NULS>$")
VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"), pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="Example CA")
    srv = ca.issue_cert("mx.example.net", "127.0.0.1", key_type=trustme.KeyType.RSA)
    srv.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    srv.private_key_pem.write_to_path(str(d / "key.pem"))
    return {"ca": ca, "cert": d / "cert.pem", "key": d / "key.pem"}


def make_server(pki: dict[str, Any], level: int, log: list[str]) -> tls.ServerTLS:
    settings = config.Settings.from_values(
        {"use-tls": True, "tls-cert-file": str(pki["cert"]), "tls-key-file": str(pki["key"]),
         "tls-loglevel": level}
    )
    return tls.ServerTLS(settings, log.append)


class MemClient:
    """A TLS client over memory BIOs that records every byte sent and received."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="mx.example.net")
        self.sent = bytearray()
        self.received = bytearray()
        self.handshake_sent = 0

    def push(self) -> None:
        data = self.out.read()
        if data:
            self.sent += data
            self.sock.sendall(data)

    def pull(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
            return False
        self.received += data
        self.inc.write(data)
        return True

    def handshake(self) -> None:
        """Handshake; the last flight stays queued, to go out with the first data."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.push()
                if not self.pull():
                    raise ConnectionError("EOF during handshake") from None
        self.handshake_sent = len(self.sent) + self.out.pending

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self.push()

    def read_line(self) -> bytes:
        buf = b""
        while not buf.endswith(b"\n"):
            try:
                buf += self.obj.read(1024)
            except ssl.SSLWantReadError:
                if not self.pull():
                    break
            except ssl.SSLZeroReturnError:
                break
        return buf

    def drain(self) -> None:
        """Everything the server still sends (close_notify), up to EOF."""
        while self.pull():
            pass
        self.sock.close()


def run_session(pki: dict[str, Any], level: int, version: ssl.TLSVersion, lines: list[bytes]) -> tuple[list[str], MemClient]:
    """Handshake, the client sends `lines` (coalesced with its last handshake
    flight), the server echoes the last one upper-cased and closes."""
    log: list[str] = []
    server = make_server(pki, level, log)

    def body(conn: socket.socket) -> None:
        t = server.handshake(conn, timeout=20)
        for _ in lines:
            line = read_line(t)
        t.send(line.upper())
        t.close()

    srv = OneShotServer(body)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pki["ca"].configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = version
    client = MemClient(srv.port, ctx)
    client.handshake()
    client.send(b"".join(lines))
    assert client.read_line() == lines[-1].upper()
    client.drain()
    srv.join()
    assert srv.error is None, srv.error
    return log, client


def parse_dumps(log: list[str]) -> list[dict[str, Any]]:
    """Every dump in the log: header facts, the dumped bytes, checked row by row."""
    dumps: list[dict[str, Any]] = []
    for line in log:
        m = HDR.match(line)
        if m:
            verb, bio, off, asked, n, hexn = m.groups()
            assert int(hexn, 16) == int(n)
            dumps.append({"verb": verb, "bio": bio, "off": int(off, 16), "asked": int(asked),
                          "n": int(n), "data": b"", "trunc": None})
            continue
        m = ROW.match(line)
        if m and dumps:
            d = dumps[-1]
            assert int(m.group(1), 16) == len(d["data"]), line
            hexpart = m.group(2)
            assert all(hexpart[i * 3 + 2] == ("|" if i == 7 else " ") for i in range(16)
                       if hexpart[i * 3] != " "), line
            row = bytes.fromhex(hexpart.replace("|", " "))
            text = "".join((chr(b) if 0x20 <= b <= 0x7E else ".") + (" " if j == 7 else "")
                           for j, b in enumerate(row))
            assert m.group(3) == text, line
            d["data"] += row
            continue
        m = TRUNC.match(line)
        if m and dumps:
            dumps[-1]["trunc"] = int(m.group(1), 16)
    return dumps


def check_against(dumps: list[dict[str, Any]], verb: str, stream: bytes) -> int:
    """The dumps of one direction cover `stream` from its start, gap-free, exactly.

    Returns how many bytes of `stream` they cover.
    """
    pos = 0
    for d in (d for d in dumps if d["verb"] == verb):
        assert d["off"] == pos
        chunk = stream[pos : pos + d["n"]]
        assert len(chunk) == d["n"]
        assert chunk.rstrip(b" \0") == d["data"]
        if d["trunc"] is not None:
            assert d["trunc"] == d["n"] and len(d["data"]) < d["n"]
        else:
            assert len(d["data"]) == d["n"]
        pos += d["n"]
    return pos


def split_at_established(log: list[str]) -> tuple[list[str], list[str]]:
    i = log.index("TLS connection established")
    return log[:i], log[i:]


def test_dump_lines_format_of_3_0_1() -> None:
    """tls_dump(): "%04x ", 16 x "%02x%c" ('|' after the 8th), ' ', ASCII with a blank after the 8th."""
    data = bytes.fromhex("16030100f4010000f00303") + b"ABCDEFGHIJKLM \x00 \x00"
    assert tls.dump_lines(data) == [
        "0000 16 03 01 00 f4 01 00 00|f0 03 03 41 42 43 44 45  ........ ...ABCDE",
        "0010 46 47 48 49 4a 4b 4c 4d|                         FGHIJKLM ",
        "001c - <SPACES/NULS>",
    ]
    assert tls.dump_lines(b"\x00\x00") == ["0002 - <SPACES/NULS>"]
    assert tls.dump_lines(b"") == []
    assert tls.dump_lines(b"\x7f~ ") == ["0000 7f 7e                                            .~", "0003 - <SPACES/NULS>"]


@pytest.mark.parametrize("version", VERSIONS)
def test_level_2_has_no_dump(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    log, _ = run_session(pki, 2, version, [b"EHLO client.example\r\n"])
    assert any(line.startswith("TLS: state") for line in log)  # level 2 does log
    assert parse_dumps(log) == []
    assert not any(ROW.match(line) or TRUNC.match(line) for line in log)


@pytest.mark.parametrize("version", VERSIONS)
def test_level_3_dumps_the_handshake_only(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    log, client = run_session(pki, 3, version, [b"EHLO client.example\r\n"])
    before, after = split_at_established(log)
    assert parse_dumps(after) == [] and not any(ROW.match(x) for x in after)
    dumps = parse_dumps(before)
    assert len({d["bio"] for d in dumps}) == 1
    # The first read is the ClientHello's record header, then its body (OpenSSL's reads).
    first = dumps[0]
    assert (first["verb"], first["asked"], first["n"]) == ("read from", 5, 5)
    assert first["data"][:2] == b"\x16\x03"
    assert dumps[1]["verb"] == "read from" and dumps[1]["data"][:1] == b"\x01"  # client_hello
    # Reads: exactly the client's handshake bytes, not its application data
    # (which went out in the same write as its last handshake flight).
    assert check_against(dumps, "read from", bytes(client.sent)) == client.handshake_sent
    assert client.handshake_sent < len(client.sent)
    # Writes: a prefix of what the client received, starting with the ServerHello.
    wrote = check_against(dumps, "write to", bytes(client.received))
    assert 0 < wrote < len(client.received)
    assert client.received[:1] == b"\x16" and client.received[5:6] == b"\x02"


@pytest.mark.parametrize("version", VERSIONS)
def test_level_4_dumps_the_whole_session(pki: dict[str, Any], version: ssl.TLSVersion) -> None:
    log, client = run_session(pki, 4, version, [b"EHLO client.example\r\n"])
    before, after = split_at_established(log)
    assert parse_dumps(before)
    assert "write to" in {d["verb"] for d in parse_dumps(after)}  # the reply, close_notify
    dumps = parse_dumps(log)
    # Every byte both ways, in order, gap-free: the handshake and after it.
    assert check_against(dumps, "read from", bytes(client.sent)) == len(client.sent)
    assert check_against(dumps, "write to", bytes(client.received)) == len(client.received)
    assert client.handshake_sent < len(client.sent)
    # The client's records after its handshake are application data (type 23).
    # (With TLS 1.3 they may arrive with its Finished, so be dumped before
    # "TLS connection established" is logged.)
    late = [d for d in dumps if d["verb"] == "read from" and d["off"] >= client.handshake_sent]
    assert late and all(d["data"][:1] == b"\x17" for d in late if d["asked"] == 5)


@pytest.mark.parametrize("level", [3, 4])
@pytest.mark.parametrize("version", VERSIONS)
def test_password_inside_tls_never_reaches_the_log(pki: dict[str, Any], version: ssl.TLSVersion, level: int) -> None:
    b64 = base64.b64encode(PASSWORD)
    lines = [b"AUTH LOGIN\r\n", base64.b64encode(b"alice") + b"\r\n", b64 + b"\r\n", PASSWORD + b"\r\n"]
    log, client = run_session(pki, level, version, lines)
    text = "\n".join(log)
    for secret in (PASSWORD, b64, b"alice", b"AUTH LOGIN"):
        assert secret.decode() not in text
    dumped = b"".join(d["data"] for d in parse_dumps(log))
    assert dumped
    for secret in (PASSWORD, b64):
        assert secret not in dumped
    hexes = " ".join(f"{b:02x}" for b in PASSWORD[:6])
    assert hexes not in text


def test_record_splitter_reassembles_and_gives_up_on_garbage() -> None:
    sp = tls._RecordSplitter()
    assert sp.push(b"\x16\x03\x01\x00\x03ab") == []
    assert sp.push(b"c\x17\x03\x03\x00\x01") == [(5, b"\x16\x03\x01\x00\x03abc")]
    assert sp.push(b"zEHLO") == [(5, b"\x17\x03\x03\x00\x01z"), (0, b"EHLO")]
    assert sp.push(b"more") == [(0, b"more")]
    big = tls._RecordSplitter()  # a length no TLS engine accepts passes at once
    assert big.push(b"\x16\x03\x01\xff\xff") == [(0, b"\x16\x03\x01\xff\xff")]


@pytest.mark.parametrize("garbage", [b"\x16\x03\x01\xff\xff", b"GET / HTTP/1.0\r\n\r\n"])
def test_level_3_bad_client_fails_at_once_and_is_dumped(pki: dict[str, Any], garbage: bytes) -> None:
    log: list[str] = []
    server = make_server(pki, 3, log)
    srv = OneShotServer(lambda conn: server.handshake(conn, timeout=20))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as c:
        c.sendall(garbage)
        while c.recv(4096):  # until the server gives up and closes
            pass
    srv.join()
    assert isinstance(srv.error, tls.TLSError)
    assert "timed out" not in str(srv.error)
    dumps = parse_dumps(log)
    assert dumps[0]["verb"] == "read from" and dumps[0]["data"] == garbage.rstrip(b" \0")
