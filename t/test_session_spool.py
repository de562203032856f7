"""spool.md §14 vectors driven through whole SMTP sessions: the spool file is compared
byte for byte with the spec after masking <ino>, <rport> and <spoolid>.

Deviation asserted (spec/README.md "a refused RCPT leaves no trace in the spool
file"): vector 3's `comment policytest() rejected rcptaddr: <x@bad.example>` is
not written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sessionkit import Harness, ScriptedPolicy, cmds, crlf
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
    mask_spoolid,
)

from zmailer_smtpd.auth import Authenticator
from zmailer_smtpd.config import Settings
from zmailer_smtpd.received import RhostFlags
from zmailer_smtpd.session import PolicyAnswer

pytestmark = pytest.mark.usefixtures("utc")  # conftest.py: dates in UTC


def env(tmp: Path, **zextra: str) -> Harness:
    h = Harness(tmp)
    h.peer_addr = "127.0.0.1"
    h.peer_port = 53494
    h.rhostname = b"localhost"
    h.myhostname = b"localhost"
    h.rhost_flags = RhostFlags("OK", "OK")
    h.ctx_extra["helo_resolves"] = lambda name: False
    h.values["maxsize"] = 10000000
    h.zenv_extra = {
        "ROUTERNOTIFY": os.path.join(h.postoffice, ".router.notify"),
        "ROUTERDIRS": "router1:router2:router3:router4",
        **zextra,
    }
    return h


def only(r) -> tuple[str, bytes]:
    files = r.files()
    assert len(files) == 1, files
    ((rel, data),) = files.items()
    return mask_name(rel), mask_content(data)


def test_vector1_plain_esmtp(tmp_path: Path) -> None:
    h = env(tmp_path)
    with NotifySocket(os.path.join(h.postoffice, ".router.notify")) as ns:
        r = h.run(
            *cmds("EHLO client.example.org", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>", "DATA"),
            crlf("Subject: test", "From: alice@example.org", "", "Hello", "..dot line", "."),
            *cmds("QUIT"),
        )
        grams = ns.drain()
    out = mask_spoolid(r.output)
    assert b'250-localhost expected "EHLO localhost"\r\n250-SIZE 10000000\r\n' in out
    assert out.endswith(crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.net>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 accepted; <spoolid>",
        "221 2.0.0 localhost Out",
    ))
    name, data = only(r)
    assert name == "router/<ino>"
    assert data == V1_FILE
    ino = next(iter(r.files())).split("/")[1]
    assert grams == [b"NEW router " + ino.encode()]
    sid = r.output.split(b"accepted; ")[1].split(b"\r\n")[0]
    assert sid.startswith(b"S" + ino.encode())


# vector 2's envelope, up to DATA
V2_COMMANDS = cmds(
    "EHLO [127.0.0.1]",
    "MAIL FROM:<> SIZE=1234 BODY=8BITMIME RET=hdrs ENVID=QQ+2B123",
    "RCPT TO:<bob@example.net> NOTIFY=success,failure ORCPT=rfc822;Bob+40example.net",
    'RCPT TO:<"carol smith"@example.net>',
    "RCPT TO:<@relay.example:dave@example.net> NOTIFY=NEVER",
    "DATA",
)


def test_vector2_null_sender_dsn_body_edges(tmp_path: Path) -> None:
    h = env(tmp_path)
    r = h.run(
        *V2_COMMANDS,
        V2_RAW_HEAD + V2_RAW_BARE + V2_RAW_END,
    )
    # README decision: in a network session a bare LF or bare CR refuses the message
    assert mask_spoolid(r.output).endswith(crlf(
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Ok; can accomodate 1234 byte message for <bob@example.net>",
        '250 2.1.5 Ok; can accomodate 1234 byte message for <"carol smith"@example.net>',
        "250 2.1.5 Ok; can accomodate 1234 byte message, source route ignored for <dave@example.net>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "550 5.5.2 Bare LF or bare CR in message data; only CR LF line ends are accepted",
    ))
    assert r.files() == {}


def test_vector2_envelope_with_clean_body(tmp_path: Path) -> None:
    """Vector 2's envelope and every CR LF-clean body edge case, byte for byte."""
    h = env(tmp_path)
    r = h.run(
        *V2_COMMANDS,
        V2_RAW_HEAD + V2_RAW_END,
    )
    assert mask_spoolid(r.output).endswith(b"250 2.0.0 accepted; <spoolid>\r\n")
    name, data = only(r)
    assert name == "router/<ino>"
    assert data == V2_STORED_HEAD + b"\n"


def test_vector2_body_edges_in_interactive_mode(tmp_path: Path) -> None:
    """-i accepts LF line ends: the §14.2 body edge cases are stored as 3.0.1 does."""
    h = Harness(tmp_path)
    h.mode, h.network, h.config_text = "interactive", False, b""
    r = h.run(
        *cmds("EHLO x.example", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"),
        b"Subject: s\r\n\r\n.leading dot\r\nbare\nLF line\r\nlone\rCR\r\nend-with-cr\r\r\n\r\n.\r\n",
    )
    assert b"250 2.0.0 accepted; " in r.output
    _name, data = only(r)
    assert data.startswith(b"with ESMTP\nfrom <a@example.org>\n")  # §14.6: no external/rcvdfrom
    assert data.endswith(b"env-end\nSubject: s\n\nleading dot\nbare\nLF line\nlone\rCR\nend-with-cr\r\n\n")


def test_vector3_helo_policy_junk_hashed(tmp_path: Path) -> None:
    po = tmp_path / "po"
    make_postoffice(po, routerdirs=["router1", "router2", "router3", "router4"],
                    hashed=["router", "router1", "router2", "router3", "router4"])
    h = env(tmp_path, ROUTERDIRHASH="1")
    h.policy = ScriptedPolicy(rcpt={b"@bad.example": PolicyAnswer(-1)})
    with NotifySocket(os.path.join(h.postoffice, ".router.notify")) as ns:
        r = h.run(
            *cmds(
                "HELO client.example.org", "MAIL FROM:<@hop.example:alice\\ x@example.org>",
                "RCPT TO:<bob@example.net", "RCPT TO:<x@bad.example>", "RCPT TO:<Bob@Example.NET>", "DATA",
            ),
            crlf("Precedence: junk", "X-Advertisement: buy now", "", "body", "."),
        )
        grams = ns.drain()
    assert mask_spoolid(r.output).split(b"\r\n", 1)[1] == crlf(
        '250 localhost expected "HELO localhost"',
        "250 2.1.0 Sender syntax Ok; , source route ignored",
        "501-5.1.3               ^",
        '501 5.1.3 Path data: Missing ">" at end',
        "550 5.7.1 Hello [127.0.0.1], Policy rejection on the target address: <x@bad.example>",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<Bob@Example.NET>",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 accepted; <spoolid>",
    )
    name, data = only(r)
    assert name == "router4/<X>/<ino>"
    assert data == listing(r"""
external
rcvdfrom localhost ([127.0.0.1]:<rport> "HELO client.example.org" rhost-flags-OK-OK-OK-FAIL)
comment localhost [127.0.0.1]:<rport> "HELO client.example.org" smtp-auth: <none> TLS-CIPHER: <none> TLS-PEER: <none> rhost-flags-OK-OK-OK-FAIL)
with SMTP
from <"alice\ x"@example.org>
todsn NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob@Example.NET INRCPT=rfc822;Bob@Example.NET INFROM=rfc822;"alice\+20x"@example.org
to <Bob@Example.NET>
env-end
Precedence: junk
X-Advertisement: buy now

body
""")
    rel = next(iter(r.files()))
    ino = int(rel.rsplit("/", 1)[1])
    assert rel == f"router4/{chr(65 + ino % 26)}/{ino}"
    assert grams == [f"NEW router4 {chr(65 + ino % 26)}/{ino}".encode()]


def test_vector4_auth_login_bdat(tmp_path: Path) -> None:
    h = env(tmp_path)
    h.values.update({"smtp-auth": True, "auth-login-also-without-tls": True, "rcvd-auth-user": True,
                     "smtp-auth-pipe": str(Path(__file__).parent / "peers" / "authpipe_joe.py"),
                     "sasl-mechanisms": "LOGIN"})
    h.ctx_extra["auth"] = Authenticator(Settings.from_values(h.values), syslog=lambda _p, _m: None)
    r = h.run(
        *cmds("EHLO client.example.org", "AUTH LOGIN", "am9l", "c2VjcmV0",
              "MAIL FROM:<joe@example.org> AUTH=joe+40example.org BODY=8BITMIME",
              "RCPT TO:<bob@example.net> NOTIFY=NEVER"),
        b"BDAT 40\r\nFrom: joe@example.org\r\nSubject: chunked\r",
        b"BDAT 28 LAST\r\n\n\r\n.leading dot kept\r\nbody\r\n",
    )
    out = mask_spoolid(r.output)
    assert b"250-AUTH=LOGIN\r\n250-AUTH LOGIN\r\n" in out
    name, data = only(r)
    size = len(next(iter(r.files().values())))
    assert out.endswith(crlf(
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 Authentication successful.",
        "250 2.1.0 Sender syntax Ok; ",
        "250 2.1.5 Recipient address syntax Ok; rcpt=<bob@example.net>",
        "250 2.0.0 Received 40 bytes",
        f"250 2.0.0 <spoolid> Roger, got 28 bytes in the last chunk, stored {size} bytes into spool",
    ))
    assert data == V4_FILE
    assert not any(b"c2VjcmV0" in ln for ln in r.log)
    assert any(b"**base64-password**" in ln for ln in r.log)


def test_vector5_frozen_message(tmp_path: Path) -> None:
    h = env(tmp_path)
    h.policy = ScriptedPolicy(connect=PolicyAnswer(0, None, freeze=1))
    with NotifySocket(os.path.join(h.postoffice, ".router.notify")) as ns:
        r = h.run(
            *cmds("EHLO client.example.org", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>",
                  "RCPT TO:<spam@frozen.example>", "DATA"),
            crlf("Subject: freeze me", "", "body", "."),
        )
        grams = ns.drain()
    assert mask_spoolid(r.output).endswith(
        b"250 2.7.1 Content-Policy accept-into-freezer-1 msg: accepted into freezer, no explanations; <spoolid>\r\n"
    )
    name, data = only(r)
    assert name == "freezer/<ino>policy-1"
    assert data == V5_FILE
    assert grams == []


def test_vector5_variant_recipient_freeze(tmp_path: Path) -> None:
    h = env(tmp_path)
    h.policy = ScriptedPolicy(rcpt={b"@frozen.example": PolicyAnswer(0, None, freeze=2)})
    r = h.run(
        *cmds("EHLO client.example.org", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>",
              "RCPT TO:<spam@frozen.example>", "DATA"),
        crlf("Subject: freeze me", "", "body", "."),
    )
    assert b"accept-into-freezer-2 msg: " in r.output
    name, data = only(r)
    assert name == "freezer/<ino>policy-2"
    env_part = data.split(b"env-end\n")[0]
    assert b"comment policytest() reported freeze state\n" not in env_part
    assert env_part.endswith(b"to <spam@frozen.example>\ncomment policytest() reported freeze state 1\n")
    assert env_part.count(b"freeze state 1") == 1


def test_vector5_variant_bdat_freezer_name(tmp_path: Path) -> None:
    h = env(tmp_path)
    h.policy = ScriptedPolicy(connect=PolicyAnswer(0, None, freeze=1))
    r = h.run(
        *cmds("EHLO client.example.org", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>"),
        b"BDAT 5 LAST\r\nhello",
    )
    assert only(r)[0] == "freezer/<ino>policy"


def test_14_6_eof_in_data_leaves_nothing(tmp_path: Path) -> None:
    h = env(tmp_path)
    r = h.run(
        *cmds("EHLO client.example.org", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"),
        b"Subject: cut\r\n\r\npartial",
    )
    assert r.files() == {}
    assert any(b"premature EOF on DATA input" in ln for ln in r.log)
    assert any(b"aborted" in ln or b"Session closed w/o QUIT" in ln for ln in r.log)


def test_14_6_eof_in_data_kept_with_style_D(tmp_path: Path) -> None:
    h = env(tmp_path)
    h.config_text = b"PARAM policydb btree /x\n*  veD\n"
    r = h.run(
        *cmds("EHLO client.example.org", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"),
        b"Subject: cut\r\n\r\npartial",
    )
    names = list(r.files())
    assert len(names) == 1 and names[0].startswith("public/") and names[0].endswith(".DATA-EOF")


@pytest.mark.parametrize("extra,accepted", [(0, True), (1, False)])
def test_14_6_maxsize_boundary(tmp_path: Path, extra: int, accepted: bool) -> None:
    h = env(tmp_path)
    h.values["maxsize"] = 100
    line = b"x" * (100 - 3 - 2 + extra) + b"\r\n"  # raw bytes incl. ".\r\n" = 100 + extra
    r = h.run(
        *cmds("EHLO client.example.org", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"),
        line + b".\r\n",
    )
    if accepted:
        assert b"250 2.0.0 accepted; " in r.output
        assert len(r.files()) == 1
    else:
        assert r.output.endswith(
            b"552 5.3.4 Size of this message exceeds the fixed maximum size of  100  chars for received email \r\n"
        )
        assert r.files() == {}


def test_14_6_interactive_bsmtp_with(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.mode, h.network, h.config_text = "interactive", False, b""
    h.options["bsmtp"] = True
    r = h.run(*cmds("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"), crlf("x", "."))
    assert only(r)[1].startswith(b"with BSMTP\nfrom <a@example.org>\n")
