"""Trace and DSN record values (spool.md §5.3, §5.4, §7)."""

from __future__ import annotations

import pytest

from zmailer_smtpd.received import (
    RhostFlags,
    TraceInfo,
    auth_comment_value,
    msa_comment_header,
    q,
    rcvdfrom_value,
    rfc821_to_822_quote,
    rhostaddr_text,
    summary_comment_value,
    todsn_value,
    with_value,
    xtext,
)


def test_q() -> None:
    assert q(b"EHLO client.example.org") == b'"EHLO client.example.org"'
    assert q(b"a\tb") == b'"a\\011b"'
    assert q("é".encode()) == b'"\\303\\251"'
    assert q(b'x"y\\z(w)') == b'"x\\"y\\\\z\\(w\\)"'
    assert q(b"\x7f\x00~ ") == b'"\\177\\000~ "'
    assert q(b"") == b'""'


def test_xtext() -> None:
    assert xtext(b"bob@example.net") == b"bob@example.net"
    assert xtext(b'"carol smith"@x') == b'"carol+20smith"@x'
    assert xtext(b"a+b=c") == b"a+2Bb+3Dc"
    assert xtext(b"\x01\x7f") == b"+01+7F"


def test_821_to_822_quote() -> None:
    assert rfc821_to_822_quote(b"alice\\ x@example.org") == b'"alice\\ x"@example.org'
    assert rfc821_to_822_quote(b"a\\@b@example.org") == b'"a\\@b"@example.org'
    assert rfc821_to_822_quote(b'"q\\ x"@example.org') == b'"q\\ x"@example.org'
    assert rfc821_to_822_quote(b"plain@example.org") == b"plain@example.org"
    assert rfc821_to_822_quote(b"local\\ only") == b'"local\\ only"'


def test_rhostaddr_text() -> None:
    assert rhostaddr_text("192.0.2.7") == b"[192.0.2.7]"
    assert rhostaddr_text("2001:db8::1") == b"[IPv6:2001:db8::1]"
    assert rhostaddr_text("::ffff:192.0.2.7") == b"[IPv6:::ffff:192.0.2.7]"
    assert rhostaddr_text("::192.0.2.7") == b"[IPv6:::192.0.2.7]"
    assert rhostaddr_text("::1") == b"[IPv6:::1]"
    assert rhostaddr_text("::") == b"[IPv6:::]"
    assert rhostaddr_text(None) == b"" and rhostaddr_text("") == b""


def base(**kw: object) -> TraceInfo:
    t = TraceInfo(
        rhostname=b"host",
        rhostaddr=b"[192.0.2.7]",
        rport=4321,
        heloline=b"EHLO helo",
        flags=RhostFlags("OK", "OK", "OK", "OK"),
    )
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def test_rcvdfrom_default() -> None:
    assert rcvdfrom_value(base()) == b'host ([192.0.2.7]:4321 "EHLO helo" rhost-flags-OK-OK-OK-OK)'


def test_rcvdfrom_all_five_in_order() -> None:
    t = base(
        ident=b"user",
        whoson=b"data",
        authuser=b"joe",
        cipherinfo=b"ECDHE-RSA-AES256-GCM-SHA384 keybits 256/256 version TLSv1.2",
        peersubject=b"/C=FI/O=Example/CN=client.example",
    )
    v = rcvdfrom_value(
        t,
        rcvd_ident=True,
        rcvd_whoson=True,
        rcvd_auth_user=True,
        rcvd_tls_mode=True,
        rcvd_tls_peer=True,
    )
    assert v == (
        b'host ([192.0.2.7]:4321 "EHLO helo" ident: "user" whoson: "data" smtp-auth: "joe"'
        b' TLS-CIPHER: "ECDHE-RSA-AES256-GCM-SHA384 keybits 256/256 version TLSv1.2"'
        b' TLS-PEER-CN1: "/C=FI/O=Example/CN=client.example" rhost-flags-OK-OK-OK-OK)'
    )


def test_rcvdfrom_none_fields() -> None:
    v = rcvdfrom_value(base(), rcvd_auth_user=True, rcvd_tls_mode=True, rcvd_tls_peer=True)
    assert v == (
        b'host ([192.0.2.7]:4321 "EHLO helo" smtp-auth: <none> TLS-CIPHER: <none>'
        b" TLS-PEER-CN1: <none> rhost-flags-OK-OK-OK-OK)"
    )


def test_interactive_test_mode_omits_address() -> None:
    t = TraceInfo(rhostname=b"stdin", heloline=b"", flags=RhostFlags())
    assert rcvdfrom_value(t) == b'stdin ("" rhost-flags-??-FAIL-??-FAIL)'
    assert summary_comment_value(t) == (
        b'stdin "" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-??-FAIL-??-FAIL)'
    )


def test_truncations() -> None:
    t = base(rhostname=b"h" * 300, heloline=b"EHLO " + b"x" * 300)
    v = rcvdfrom_value(t)
    assert v.startswith(b"h" * 200 + b" ([")
    assert b'"EHLO ' + b"x" * 194 + b'" ' in v
    assert summary_comment_value(t).startswith(b"h" * 300 + b" ")


def test_summary_comment() -> None:
    t = base(authuser=b'j"o', cipherinfo=b"C", peersubject=None)
    assert summary_comment_value(t) == (
        b'host [192.0.2.7]:4321 "EHLO helo" smtp-auth: "j\\"o" TLS-CIPHER: "C" TLS-PEER: <none>'
        b" rhost-flags-OK-OK-OK-OK)"
    )
    assert summary_comment_value(t, tls_fields=False) == (
        b'host [192.0.2.7]:4321 "EHLO helo" smtp-auth: "j\\"o" rhost-flags-OK-OK-OK-OK)'
    )
    assert b' whoson: "NOT-CHECKED"' in summary_comment_value(t, whoson=True)


def test_auth_and_msa_lines() -> None:
    assert auth_comment_value(b"joe") == b'smtp-auth: "joe"'
    assert msa_comment_header(b"mx.example", b"joe") == (
        b"X-Comment: RFC 2476 MSA function at mx.example logged sender identity as: joe\n"
    )


def test_rhost_flags_accumulate() -> None:
    f = RhostFlags("OK", "OK")
    assert f.text() == b"rhost-flags-OK-OK-??-FAIL"
    f.add_helo(False, False)
    assert f.text() == b"rhost-flags-OK-OK-FAIL-FAIL"
    f.add_helo(True, True)
    f.add_helo(False, False)
    assert f.text() == b"rhost-flags-OK-OK-OK-OK"


@pytest.mark.parametrize(
    "kw,expect",
    [
        (dict(ehlo=False), b"SMTP"),
        (dict(ehlo=True), b"ESMTP"),
        (dict(ehlo=True, auth=True), b"ESMTPA"),
        (dict(ehlo=True, tls=True), b"ESMTPS"),
        (dict(ehlo=True, tls=True, auth=True), b"ESMTPSA"),
        (dict(ehlo=True, submit=True, tls=True, auth=True), b"SUBMITSA"),
        (dict(ehlo=True, submit=True), b"SUBMIT"),
        (dict(ehlo=True, lmtp=True, auth=True), b"LMTPA"),
        (dict(ehlo=True, bsmtp=True, tls=True), b"BSMTP"),
        (dict(ehlo=False, tls=True, auth=True), b"SMTP"),
    ],
)
def test_with(kw: dict[str, bool], expect: bytes) -> None:
    assert with_value(**kw) == expect


def test_todsn_variants() -> None:
    a, f = b"bob@example.net", b"alice@example.org"
    tail = b" ORCPT=rfc822;bob@example.net INRCPT=rfc822;bob@example.net INFROM=rfc822;alice@example.org"
    assert todsn_value(a, f) == b"NOTIFY=FAILURE,DELAY" + tail
    assert (
        todsn_value(a, f, force_never=True, notify_param=b"NOTIFY=SUCCESS")
        == b"NOTIFY=NEVER" + tail
    )
    assert todsn_value(a, f, notify_param=b"NOTIFY=success") == b"NOTIFY=success" + tail
    assert (
        todsn_value(a, f, notify_param=b"NOTIFY=success", by_epoch=1700000000, by_flags="TN")
        == b"NOTIFY=success,DELAY,TRACE BY=1700000000;NT" + tail
    )
    assert (
        todsn_value(a, f, notify_param=b"NOTIFY=delay", by_epoch=5, by_flags="N")
        == b"NOTIFY=delay BY=5;N" + tail
    )
    assert (
        todsn_value(a, f, by_epoch=9, by_flags="RT") == b"NOTIFY=FAILURE,DELAY,TRACE BY=9;RT" + tail
    )
    assert todsn_value(a, b"").endswith(b" INFROM=rfc822;")
    assert todsn_value(a, f, notify_param=b"NOTIFY=") == b"NOTIFY=" + tail
