"""``zmailer-policy-builder``: policy-builder.sh + ``makedb -A -p`` in one (policy.md §2).

The combined source ``BASE.dat`` is produced exactly as policy-builder.sh does,
compiled with makedb's line rules into key/value bytes (§3), and the database
is replaced atomically: written to ``BASE-new.db``, fsynced, renamed over
``BASE.db``.  A failed build leaves the old database in place, removes the
partial file, and names the input file and line of every error.
"""

from __future__ import annotations

import getopt
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import db as pdb


@dataclass
class SrcLine:
    """One line of the combined source, with where it came from."""

    text: bytes  # without the LF
    origin: str  # input file name
    lineno: int  # line number in that file
    has_lf: bool = True


@dataclass
class CompileResult:
    """makedb's outcome: records in first-seen order, messages, exit status."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    status: int = 0


def _tokens(rest: bytes) -> list[bytes]:
    """Split an attribute part: blanks separate, ``"..."`` quotes (no escapes)."""
    out: list[bytes] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in b" \t":
            i += 1
        if i >= n:
            break
        if rest[i] == 0x22:
            j = rest.find(b'"', i + 1)
            if j < 0:
                out.append(rest[i + 1 :])
                break
            out.append(rest[i + 1 : j])
            i = j + 1
        else:
            j = i
            while j < n and rest[j] not in b" \t":
                j += 1
            out.append(rest[i:j])
            i = j
    return out


def compile_lines(
    lines: Iterable[SrcLine], *, append: bool = True, where: bool = False
) -> CompileResult:
    """Compile source lines as ``makedb [-A] -p`` does (§2.1, §3.4).

    ``where`` prefixes each message with ``FILE:LINE: `` of the original input.
    """
    res = CompileResult()

    def err(sl: SrcLine, n: int, text: str) -> None:
        res.errors.append((f"{sl.origin}:{sl.lineno}: " if where else "") + text)

    for n, sl in enumerate(lines, 1):
        line = sl.text
        if not sl.has_lf:
            err(sl, n, f"input line of len {len(line)} lacking trailing newline, corrupted file ?")
            res.status = 1
        if not line or line[0] in b"# \t":
            continue
        cut = len(line)
        for sep in (b" ", b"\t"):
            p = line.find(sep)
            if 0 <= p < cut:
                cut = p
        rawkey, rest = line[:cut], line[cut:]
        toks = _tokens(rest)
        if not toks or toks[0].startswith(b"#"):
            continue
        try:
            key = pdb.parse_key(rawkey)
        except pdb.KeyError_ as e:
            err(sl, n, f"Error: line {n}: bad policykey, rc = {e.rc}")
            res.status = 1
            continue
        value = b""
        ok = True
        for i in range(0, len(toks), 2):
            name = toks[i]
            if i + 1 >= len(toks):
                err(
                    sl,
                    n,
                    f"Error: Invalid attribute pair on line {n}; aname='{name.decode('latin-1')}', value missing.",
                )
                ok = False
                break
            val = toks[i + 1]
            code = pdb.SOURCE_KEYWORDS.get(name)
            if code is None or len(val) > 250:
                err(
                    sl,
                    n,
                    f'Error: Invalid attribute pair ("{name.decode("latin-1")} {val.decode("latin-1")}")  on line {n}.',
                )
                ok = False
                break
            value += pdb.encode_attr(code, val)
        if not ok:
            res.status = 1
            continue
        if key in res.records:
            if append:
                res.records[key] += value
            else:
                err(sl, n, f"WARNING: Duplicate key at line {n}: {pdb.key_debug(key)}")
        else:
            res.records[key] = value
    return res


def _read_lines(path: str, origin: str) -> list[SrcLine]:
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    out: list[SrcLine] = []
    for i, p in enumerate(parts[:-1], 1):
        out.append(SrcLine(p, origin, i))
    if parts[-1]:
        # policy-builder.sh would glue the next header onto this line; we
        # terminate it instead (never copy a defect).
        out.append(SrcLine(parts[-1], origin, len(parts)))
    return out


def _strip_comment(b: bytes) -> bytes:
    p = b.find(b"#")
    return b if p < 0 else b[:p]


def build_source(dirpath: str, base: str, warn: Callable[[str], None]) -> list[SrcLine]:
    """The lines of ``BASE.dat`` as policy-builder.sh writes them (§2.5)."""
    out: list[SrcLine] = []
    gen = "policy-builder"

    def hdr(*texts: str) -> None:
        for t in texts:
            out.append(SrcLine(t.encode(), gen, 0))

    def p(name: str) -> str:
        return os.path.join(dirpath, name)

    out.extend(_read_lines(p(base + ".src"), base + ".src"))
    hdr("# ----------", "# localnames:")
    if os.path.exists(p("localnames")):
        for sl in _read_lines(p("localnames"), "localnames"):
            fields = _strip_comment(sl.text).split()
            if fields:
                out.append(SrcLine(fields[0] + b" = _localnames", sl.origin, sl.lineno))
    else:
        warn("cat: localnames: No such file or directory")
    for suffix, dashes, label in (
        (".relay.manual", 25, b"_full_rights"),
        (".relay", 18, b"_full_rights"),
        (".mx.manual", 22, b"_relaytarget"),
        (".mx", 15, b"_relaytarget"),
    ):
        name = base + suffix
        if not os.path.exists(p(name)):
            continue
        hdr("# " + "-" * dashes, f"# {name}:")
        for sl in _read_lines(p(name), name):
            t = _strip_comment(sl.text)
            if t.split():
                out.append(SrcLine(t + b" = " + label, sl.origin, sl.lineno))
    spam = [base + ".spam", base + ".spam.manual"]
    if any(os.path.exists(p(n)) for n in spam):
        hdr("# " + "-" * 27, f"# {base}.spam{{,.manual}}:")
        lines: list[tuple[bytes, str, int]] = []
        for name in spam:
            if os.path.exists(p(name)):
                for sl in _read_lines(p(name), name):
                    t = _strip_comment(pdb.lower(sl.text))
                    if t.startswith(b"@"):
                        t = t[1:]
                    lines.append((t, sl.origin, sl.lineno))
        lines.sort(key=lambda x: x[0])
        prev: bytes | None = None
        for t, origin, lineno in lines:
            if t == prev:
                continue
            prev = t
            if t.startswith(b"["):
                out.append(SrcLine(t + b"  rejectnet +", origin, lineno))
            elif t.split():
                out.append(SrcLine(t + b"  = _bulk_mail", origin, lineno))
    return out


def _fsync_dir(dirpath: str) -> None:
    fd = os.open(dirpath, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build(dirpath: str, base: str = "smtp-policy", dbtype: str = "btree",
          err: Callable[[str], None] | None = None) -> int:
    """Build ``DIR/BASE.db`` from ``DIR/BASE.src`` and friends; return exit status."""
    say: Callable[[str], None] = err or (lambda s: print(s, file=sys.stderr))
    if not os.path.exists(os.path.join(dirpath, base + ".src")):
        say(f"No {os.path.join(dirpath, base)}.src input file")
        return 64
    if dbtype.lower() not in pdb.DBTYPES:
        say(f"unknown dbtype: {dbtype}")
        say(f"{base} control database makedb failure rc= 1")
        return 1
    lines = build_source(dirpath, base, say)
    datpath = os.path.join(dirpath, base + ".dat")
    tmpdat = datpath + ".new"
    with open(tmpdat, "wb") as f:
        for sl in lines:
            f.write(sl.text + b"\n")
    os.replace(tmpdat, datpath)
    res = compile_lines(lines, append=True, where=True)
    for m in res.errors:
        say(m)
    if res.status:
        say(f"{base} control database makedb failure rc= {res.status}")
        return res.status
    newpath = os.path.join(dirpath, base + "-new")
    newfile = pdb.db_filename(dbtype, newpath, reading=False)
    final = pdb.db_filename(dbtype, os.path.join(dirpath, base), reading=False)
    try:
        os.unlink(newfile)
    except FileNotFoundError:
        pass
    try:
        pdb.write_db(dbtype, newfile, list(res.records.items()))
        fd = os.open(newfile, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(newfile, final)
        _fsync_dir(dirpath)
    except Exception as e:  # noqa: BLE001 - any failure keeps the old database
        say(f"{base}: cannot write {newfile}: {e}")
        try:
            os.unlink(newfile)
        except FileNotFoundError:
            pass
        say(f"{base} control database makedb failure rc= 1")
        return 1
    return 0


def _zconfig() -> dict[str, str]:
    """MAILVAR/DBTYPE from ``$ZCONFIG`` (KEY=VALUE lines), as the script sources it."""
    path = os.environ.get("ZCONFIG", "/etc/zmailer/zmailer.conf")
    out: dict[str, str] = {}
    try:
        with open(path, encoding="latin-1") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip().strip("'\"")
    except OSError:
        pass
    return out


USAGE = "Usage: zmailer-policy-builder [-n] [-d DIR] [-f BASE] [-t DBTYPE]"


def main(argv: list[str] | None = None) -> int:
    """Console entry point (options of policy-builder.sh, plus -t DBTYPE)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = getopt.getopt(args, "d:f:nt:")
    except getopt.GetoptError as e:
        print(f"zmailer-policy-builder: {e}\n{USAGE}", file=sys.stderr)
        return 64
    if rest:
        print(USAGE, file=sys.stderr)
        return 64
    zc = _zconfig()
    dirpath = os.path.join(zc.get("MAILVAR", "/etc/zmailer"), "db")
    base = "smtp-policy"
    dbtype = zc.get("DBTYPE", "btree")
    for o, v in opts:
        if o == "-d":
            dirpath = v
        elif o == "-f":
            base = v
        elif o == "-t":
            dbtype = v
    return build(dirpath, base, dbtype)


if __name__ == "__main__":
    sys.exit(main())
