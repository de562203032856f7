"""spool.md §14 test vectors, rebuilt through the spool API (records + DataReceiver /
BdatReceiver) and compared byte for byte with the spec after masking <ino>, <rport>
and <spoolid>."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from spoolutil import (
    V1_FILE,
    V2_RAW_BARE,
    V2_RAW_END,
    V2_RAW_HEAD,
    V2_STORED_HEAD,
    V4_FILE,
    V5_FILE,
    NotifySocket,
    listing,
    make_postoffice,
    mask_content,
    mask_name,
    spool_files,
)

from zmailer_smtpd.bodyxfer import BdatReceiver, DataReceiver
from zmailer_smtpd.received import (
    RhostFlags,
    TraceInfo,
    auth_comment_value,
    rcvdfrom_value,
    rfc821_to_822_quote,
    summary_comment_value,
    todsn_value,
    with_value,
)
from zmailer_smtpd.spool import Spool, SpoolFile, spoolid

RPORT = 53494


def trace(helo: bytes, authuser: bytes | None = None) -> TraceInfo:
    return TraceInfo(
        rhostname=b"localhost",
        rhostaddr=b"[127.0.0.1]",
        rport=RPORT,
        heloline=helo,
        flags=RhostFlags("OK", "OK", "OK", "FAIL"),
        authuser=authuser,
    )


@pytest.fixture
def po(tmp_path: Path) -> str:
    return make_postoffice(tmp_path / "po")


def zenv_for(po: str, **extra: str) -> dict[str, str]:
    z = {
        "POSTOFFICE": po,
        "ROUTERNOTIFY": os.path.join(po, ".router.notify"),
        "ROUTERDIRS": "router1:router2:router3:router4",
    }
    z.update(extra)
    return z


def trace_records(sf: SpoolFile, t: TraceInfo, **rcvd: bool) -> None:
    sf.record(b"external")
    if t.authuser is not None:
        sf.record(b"comment", auth_comment_value(t.authuser))
    sf.record(b"rcvdfrom", rcvdfrom_value(t, **rcvd))
    sf.record(b"comment", summary_comment_value(t))


def only_file(po: str) -> tuple[str, bytes]:
    files = spool_files(po)
    assert len(files) == 1, files
    ((rel, data),) = files.items()
    st = os.stat(os.path.join(po, rel))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    return rel, data


def test_vector1_plain_esmtp_dot_stuffing(po: str) -> None:
    spool = Spool(po, zenv_for(po), hostname="localhost")
    with NotifySocket(os.path.join(po, ".router.notify")) as ns:
        sf = spool.open_message()
        trace_records(sf, trace(b"EHLO client.example.org"))
        sf.record(b"with", with_value(ehlo=True))
        sf.record(b"from", b"<alice@example.org>")
        sf.record(b"todsn", todsn_value(b"bob@example.net", b"alice@example.org"))
        sf.record(b"to", b"<bob@example.net>")
        sf.record(b"env-end")
        dr = DataReceiver(sf.write, lf_ok=False, maxsize=10000000)
        raw = b"Subject: test\r\nFrom: alice@example.org\r\n\r\nHello\r\n..dot line\r\n.\r\n"
        assert dr.feed(raw) == b""
        assert not dr.bare_eol and not dr.too_big and dr.size == len(raw)
        sid, size = sf.flush_point()
        rel = sf.commit(dr.priority)
        ino = int(rel.split("/")[-1])
        assert rel == f"router/{ino}"
        assert ns.drain() == [f"NEW router {ino}".encode()]
    st = os.stat(os.path.join(po, rel))
    assert sid == spoolid(st) and size == st.st_size
    rel2, data = only_file(po)
    assert rel2 == rel
    assert mask_content(data) == V1_FILE


V2_RAW = V2_RAW_HEAD + V2_RAW_BARE + V2_RAW_END
V2_FILE = V2_STORED_HEAD + b"bare\nLF line\nlone\rCR\nend-with-cr\r\n\n"


def v2_envelope(sf: SpoolFile) -> None:
    trace_records(sf, trace(b"EHLO [127.0.0.1]"))
    sf.record(b"bodytype", b"8BITMIME")
    sf.record(b"with", with_value(ehlo=True))
    sf.record(b"channel", b"error")
    sf.record(b"envid", b"QQ+2B123")
    sf.record(b"notaryret", b"hdrs")
    sf.record(
        b"todsn",
        todsn_value(
            b"bob@example.net",
            b"",
            notify_param=b"NOTIFY=success,failure",
            orcpt_param=b"ORCPT=rfc822;Bob+40example.net",
        ),
    )
    sf.record(b"to", b"<bob@example.net>")
    sf.record(b"todsn", todsn_value(b'"carol smith"@example.net', b""))
    sf.record(b"to", b'<"carol smith"@example.net>')
    sf.record(b"todsn", todsn_value(b"dave@example.net", b"", notify_param=b"NOTIFY=NEVER"))
    sf.record(b"to", b"<dave@example.net>")
    sf.record(b"env-end")


def test_vector2_c_bytes_in_lf_mode(po: str) -> None:
    """Vector 2's body has a bare LF and a lone CR.  3.0.1 stored it as listed;
    we reproduce those bytes only where LF line ends are accepted (-i mode)."""
    spool = Spool(po, zenv_for(po), hostname="localhost")
    with NotifySocket(os.path.join(po, ".router.notify")) as ns:
        sf = spool.open_message()
        v2_envelope(sf)
        dr = DataReceiver(sf.write, lf_ok=True, maxsize=10000000)
        assert dr.feed(V2_RAW) == b""
        assert dr.priority == 1
        assert dr.header_8bit
        sf.flush_point()
        rel = sf.commit(dr.priority)  # bulk, but no router1..4 exists -> router
        assert mask_name(rel) == "router/<ino>"
        assert ns.drain() == [f"NEW {rel.replace('/', ' ', 1)}".encode()]
    _, data = only_file(po)
    assert mask_content(data) == V2_FILE


def test_vector2_network_session_refuses_bare_line_ends(po: str) -> None:
    """README: in a network session the same bytes are read to the real end and
    refused (550 5.5.2); nothing reaches the router."""
    spool = Spool(po, zenv_for(po), hostname="localhost")
    sf = spool.open_message()
    v2_envelope(sf)
    dr = DataReceiver(sf.write, lf_ok=False, maxsize=10000000)
    assert dr.feed(V2_RAW + b"QUIT\r\n") == b"QUIT\r\n"
    assert dr.bare_eol and dr.size == len(V2_RAW)
    sf.abort()
    assert spool_files(po) == {}


def test_vector3_helo_policy_comment_junk_hashed(tmp_path: Path) -> None:
    dirs = ["router1", "router2", "router3", "router4"]
    po = make_postoffice(tmp_path / "po", routerdirs=dirs, hashed=["router", *dirs])
    spool = Spool(po, zenv_for(po, ROUTERDIRHASH="1"), hostname="localhost")
    sender = rfc821_to_822_quote(b"alice\\ x@example.org")  # source route already removed
    with NotifySocket(os.path.join(po, ".router.notify")) as ns:
        sf = spool.open_message()
        trace_records(sf, trace(b"HELO client.example.org"))
        sf.record(b"with", with_value(ehlo=False))
        sf.record(b"from", b"<" + sender + b">")
        sf.record(b"comment", b"policytest() rejected rcptaddr: <x@bad.example>")
        sf.record(b"todsn", todsn_value(b"Bob@Example.NET", sender))
        sf.record(b"to", b"<Bob@Example.NET>")
        sf.record(b"env-end")
        dr = DataReceiver(sf.write, lf_ok=False)
        raw = b"Precedence: junk\r\nX-Advertisement: buy now\r\n\r\nbody\r\n.\r\n"
        for k in range(0, len(raw), 7):
            left = dr.feed(raw[k : k + 7])
        assert left == b""
        assert dr.priority == 9 and dr.x_advertisement
        sf.flush_point()
        rel = sf.commit(dr.priority)
        ino = int(rel.rsplit("/", 1)[1])
        letter = chr(65 + ino % 26)
        assert rel == f"router4/{letter}/{ino}"
        assert ns.drain() == [f"NEW router4 {letter}/{ino}".encode()]
    rel2, data = only_file(po)
    assert rel2 == rel
    assert mask_content(data) == listing(r"""
external
rcvdfrom localhost ([127.0.0.1]:<rport> "HELO client.example.org" rhost-flags-OK-OK-OK-FAIL)
comment localhost [127.0.0.1]:<rport> "HELO client.example.org" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)
with SMTP
from <"alice\ x"@example.org>
comment policytest() rejected rcptaddr: <x@bad.example>
todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob@Example.NET INRCPT=rfc822;Bob@Example.NET INFROM=rfc822;"alice\+20x"@example.org
to <Bob@Example.NET>
env-end
Precedence: junk
X-Advertisement: buy now

body
""")


def test_vector4_auth_bdat(po: str) -> None:
    spool = Spool(po, zenv_for(po), hostname="localhost")
    with NotifySocket(os.path.join(po, ".router.notify")) as ns:
        sf = spool.open_message()
        trace_records(sf, trace(b"EHLO client.example.org", authuser=b"joe"), rcvd_auth_user=True)
        sf.record(b"bodytype", b"8BITMIME")
        sf.record(b"with", with_value(ehlo=True, auth=True))
        sf.record(b"from", b"<joe@example.org>")
        sf.record(
            b"todsn",
            todsn_value(b"bob@example.net", b"joe@example.org", notify_param=b"NOTIFY=NEVER"),
        )
        sf.record(b"to", b"<bob@example.net>")
        sf.record(b"env-end")
        br = BdatReceiver(sf.write)
        c1 = b"From: joe@example.org\r\nSubject: chunked\r"
        c2 = b"\n\r\n.leading dot kept\r\nbody\r\n"
        assert (len(c1), len(c2)) == (40, 28)
        br.start_chunk(40)
        assert br.feed(c1 + b"BDAT 28 LAST\r\n") == b"BDAT 28 LAST\r\n"
        sf.flush_point()
        br.start_chunk(28, last=True)
        assert br.feed(c2) == b""
        assert br.done and br.total == 68
        _, filesize = sf.flush_point()
        assert filesize == 537  # spool.md: 537 with the TLS fields and a 5-digit port
        rel = sf.commit(0)
        assert ns.drain() == [f"NEW router {rel.split('/')[1]}".encode()]
    _, data = only_file(po)
    assert mask_content(data) == V4_FILE


def test_vector5_frozen(po: str) -> None:
    spool = Spool(po, zenv_for(po), hostname="localhost")
    with NotifySocket(os.path.join(po, ".router.notify")) as ns:
        sf = spool.open_message()
        trace_records(sf, trace(b"EHLO client.example.org"))
        sf.record(b"with", with_value(ehlo=True))
        sf.record(b"from", b"<alice@example.org>")
        sf.record(b"comment", b"policytest() reported freeze state")
        for rcpt in (b"bob@example.net", b"spam@frozen.example"):
            sf.record(b"todsn", todsn_value(rcpt, b"alice@example.org"))
            sf.record(b"to", b"<" + rcpt + b">")
            sf.record(b"comment", b"policytest() reported freeze state 1")
        sf.record(b"env-end")
        dr = DataReceiver(sf.write, lf_ok=False)
        assert dr.feed(b"Subject: freeze me\r\n\r\nbody\r\n.\r\n") == b""
        sid, _ = sf.flush_point()
        rel = sf.freeze("policy-1")
        assert mask_name(rel) == "freezer/<ino>policy-1"
        assert ns.drain() == []  # never a datagram for the freezer
    st = os.stat(os.path.join(po, rel))
    assert spoolid(st) == sid
    _, data = only_file(po)
    assert mask_content(data) == V5_FILE


def test_vector5_bdat_freezer_suffix(po: str) -> None:
    spool = Spool(po, zenv_for(po), hostname="localhost")
    sf = spool.open_message()
    sf.record(b"env-end")
    br = BdatReceiver(sf.write)
    br.start_chunk(6, last=True)
    assert br.feed(b"x\r\n\r\ny") == b""
    sf.flush_point()
    assert mask_name(sf.freeze("policy")) == "freezer/<ino>policy"


def test_interactive_mode_records(po: str) -> None:
    """§14.6: -i mode, EHLO: the file starts with ``with ESMTP`` (``with BSMTP`` with -B)."""
    spool = Spool(po, {}, hostname="localhost")
    for kw, expect in (
        (dict(ehlo=True), b"with ESMTP\n"),
        (dict(ehlo=True, bsmtp=True), b"with BSMTP\n"),
    ):
        sf = spool.open_message()
        sf.record(b"with", with_value(**kw))
        sf.record(b"from", b"<u@h>")
        sf.record(b"env-end")
        dr = DataReceiver(sf.write, lf_ok=True)
        assert dr.feed(b"Subject: x\n\nbody\n.\n") == b""
        sf.flush_point()
        rel = sf.commit(dr.priority)
        data = Path(po, rel).read_bytes()
        assert data.startswith(expect)
        assert data.endswith(b"env-end\nSubject: x\n\nbody\n")
