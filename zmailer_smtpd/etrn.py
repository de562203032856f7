"""ETRN / TURNME: local file drop and cluster MAILQv2 (interfaces.md §5).

Why: ETRN asks the scheduler to start delivery towards a domain.  Locally
that is a `T` control file in `$POSTOFFICE/transport/`; in a cluster each
node's scheduler is asked over MAILQv2 with the MD5 challenge login.

Session call sequence (ETRN/TURNME, any state, unless `NoETRN`):

    lines = etrn.etrn(arg, rhostaddr=b"[192.0.2.7]", myhostname=b"mx.example.net",
                      postoffice=zenv POSTOFFICE, cluster=settings etrn-cluster
                      [(node, user, password), ...], multiline=not no-multiline-replies,
                      log=ctx.log)
    send lines (ReplyLine list, last final).  For cluster ETRN the 3.0.1
    daemon flushes each "Attempting ..." line as it goes; pass
    `emit=callback` to get each continuation line as soon as it is known
    (then only the remaining lines are returned).

`arg` is the command argument after blanks, trailing blanks removed.
Deviations from 3.0.1 (T-27, T-29, decision Q12): the file is created under
the given POSTOFFICE, not relative to the cwd; MAILQv2 connect and reads
have timeouts; the ETRN reply is shown as 3.0.1 does, and a `-` answer still
counts as done for that node (the scheduler answered, it only refused).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Callable, Sequence

from zmailer_smtpd import helper
from zmailer_smtpd.router import ReplyLine

MQ2_PORT = 174
MQ2_VERSION = b"version zmailer 2.0"

NEED_ARG = ReplyLine(552, b"5.0.0", b"ETRN needs target domain name parameter.")
NOT_LITERAL = ReplyLine(458, b"5.7.1", b"Sorry, only literal target domains accepted")
LOCAL_OK = [
    ReplyLine(250, b"2.0.0", b"An ETRN request is initiated - lets hope the system"),
    ReplyLine(250, b"2.0.0", b"has resources to honour it. We call the remote,"),
    ReplyLine(250, b"2.0.0", b"if we have anything to send there."),
]
LOCAL_OK_SHORT = ReplyLine(250, b"2.0.0", b"An ETRN request is submitted - something may get sent.")
MKSTEMP_FAIL = ReplyLine(452, b"4.0.0", b"Failed to initiate ETRN request; mkstemp() failure!")
FDOPEN_FAIL = ReplyLine(452, b"4.0.0", b"Failed to initiate ETRN request;  fdopen() failure?")
RENAME_FAIL = ReplyLine(452, b"4.0.0", b"Failed to initiate local ETRN request; Permission denied?")
BAD_FIELD = ReplyLine(501, b"5.5.4", b"Invalid character in argument")
CLUSTER_DONE = ReplyLine(250, b"2.0.0", b"ETRN-cluster operation(s) complete")


def _c(text: bytes) -> ReplyLine:
    return ReplyLine(250, b"2.0.0", text)


def check_arg(arg: bytes) -> ReplyLine | None:
    """The syntax replies of §5.1, or None when `arg` may be used."""
    if not arg:
        return NEED_ARG
    if not (arg[:1].isalnum() and arg[0] < 0x80):
        return NOT_LITERAL
    try:
        helper.check_field(arg)
    except helper.FieldError:
        return BAD_FIELD
    return None


def local_etrn(
    arg: bytes, rhostaddr: bytes, postoffice: str, multiline: bool = True
) -> list[ReplyLine]:
    """Drop `T <arg> <rhostaddr>` into transport/<inode>-etrn (§5.2)."""
    tdir = os.path.join(postoffice, "transport")
    try:
        fd, tmp = tempfile.mkstemp(prefix="..etrn-", dir=tdir)
    except OSError:
        return [MKSTEMP_FAIL]
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"T " + arg + b" " + rhostaddr + b"\n")
            f.flush()
            os.fsync(f.fileno())
            ino = os.fstat(f.fileno()).st_ino
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return [FDOPEN_FAIL]
    try:
        os.rename(tmp, os.path.join(tdir, f"{ino}-etrn"))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return [RENAME_FAIL]
    return list(LOCAL_OK) if multiline else [LOCAL_OK_SHORT]


def mq2_auth_hash(challenge: bytes, password: bytes) -> bytes:
    """Lower-case hex MD5 of the challenge line (no LF) + password (§5.3)."""
    return hashlib.md5(challenge + password).hexdigest().encode()


def _node_addr(node: str) -> tuple[str, int, list[ReplyLine]]:
    host, sep, port = node.partition("/")
    if sep:
        return host, int(port) if port.isdigit() else MQ2_PORT, []
    try:
        return host, socket.getservbyname("mailq", "tcp"), []
    except OSError:
        return host, MQ2_PORT, [_c(b"Cannot find 'mailq' tcp service")]


def _connect(host: str, port: int, timeout: float, out: list[ReplyLine]) -> socket.socket | None:
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except OSError:
        infos = []
    infos.sort(key=lambda i: 0 if i[0] == socket.AF_INET6 else 1)
    for fam, typ, proto, _, sa in infos:
        s = socket.socket(fam, typ, proto)
        s.settimeout(timeout)
        try:
            s.connect(sa)
            return s
        except OSError:
            s.close()
            out.append(_c(b"Connect() failed, will try possible next address"))
    out.append(_c(b"Unable to connect() to scheduler"))
    return None


def mq2_node(
    node: str,
    user: bytes,
    password: bytes,
    arg: bytes,
    rhostaddr: bytes,
    myhostname: bytes,
    timeout: float = 30.0,
) -> tuple[bool, list[ReplyLine]]:
    """One node's MAILQv2 ETRN; (succeeded, continuation lines) (§5.3)."""
    out = [_c(b"Attempting ETRN on cluster node: " + node.encode())]
    host, port, notes = _node_addr(node)
    out += notes
    sock = _connect(host, port, timeout, out)
    if sock is None:
        return False, out
    ch = helper.LineChannel.for_socket(sock)
    try:
        try:
            ver = ch.readline(timeout, maxline=1024)
            if not ver.startswith(MQ2_VERSION) or not ver.endswith(b"\n"):
                return False, out
            challenge = ch.readline(timeout, maxline=1024)
            if not challenge.endswith(b"\n"):
                return False, out
        except helper.HelperError:
            return False, out
        challenge = challenge[:-1]
        try:
            helper.check_field(user)
            ch.write_line(b"AUTH " + user + b" " + mq2_auth_hash(challenge, password) + b"\n", timeout)
        except (helper.HelperError, helper.FieldError):
            out.append(_c(b"MQ2-AUTH write failure occurred"))
            return False, out
        try:
            ok = ch.readline(timeout, maxline=1024)
        except helper.HelperError:
            ok = b""
        if not ok.startswith(b"+") or not ok.endswith(b"\n"):
            out.append(_c(b"MQ2-AUTH failure occurred"))
            return False, out
        try:
            ch.write_line(b"ETRN " + arg + b" " + rhostaddr + b"@" + myhostname + b"\n", timeout)
        except helper.HelperError:
            out.append(_c(b"MQ2-ETRN write failure occurred"))
            return False, out
        try:
            ans = ch.readline(timeout, maxline=1024)
        except helper.HelperError:
            return False, out
        if not ans.endswith(b"\n"):
            return False, out
        ans = ans[:-1]
        if any(b < 0x20 and b != 0x09 for b in ans):
            return False, out
        out.append(_c(ans))
        return True, out
    finally:
        ch.close()


def cluster_etrn(
    arg: bytes,
    rhostaddr: bytes,
    myhostname: bytes,
    postoffice: str,
    cluster: Sequence[tuple[str, bytes, bytes]],
    multiline: bool = True,
    timeout: float = 30.0,
    emit: Callable[[ReplyLine], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ReplyLine]:
    """Every node in order; all good -> done, else a local ETRN too (§5.3)."""
    lines: list[ReplyLine] = []
    all_ok = True
    for node, user, password in cluster[:40]:
        ok, out = mq2_node(node, user, password, arg, rhostaddr, myhostname, timeout)
        if not ok:
            all_ok = False
            if log is not None:
                log(f"ETRN cluster node {node} failed")
        if emit is not None:
            for x in out:
                emit(x)
        else:
            lines += out
    if all_ok:
        return lines + [CLUSTER_DONE]
    return lines + local_etrn(arg, rhostaddr, postoffice, multiline)


def etrn(
    arg: bytes,
    rhostaddr: bytes,
    myhostname: bytes,
    postoffice: str,
    cluster: Sequence[tuple[str, bytes, bytes]] = (),
    multiline: bool = True,
    timeout: float = 30.0,
    emit: Callable[[ReplyLine], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ReplyLine]:
    """The whole ETRN reply for `arg` (§5.1)."""
    bad = check_arg(arg)
    if bad is not None:
        return [bad]
    if cluster:
        return cluster_etrn(
            arg, rhostaddr, myhostname, postoffice, cluster, multiline, timeout, emit, log
        )
    return local_etrn(arg, rhostaddr, postoffice, multiline)
