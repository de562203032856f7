"""Golden cases for the RFC 821 scanner (t/golden/rfc821/, format in its README)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zmailer_smtpd import rfc821

GOLDEN = Path(__file__).parent / "golden" / "rfc821"

_ESC = re.compile(rb"\\(x[0-9A-Fa-f]{2}|[\\trn])")


def unescape(text: str) -> bytes:
    """Decode the golden files' escapes (\\\\ \\t \\r \\n \\xHH) to bytes."""
    raw = text.encode("latin-1")

    def one(m: re.Match[bytes]) -> bytes:
        e = m.group(1)
        if e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        return {b"\\": b"\\", b"t": b"\t", b"r": b"\r", b"n": b"\n"}[e]

    return _ESC.sub(one, raw)


@dataclass
class Case:
    where: str
    fields: dict[str, str] = field(default_factory=dict)


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(GOLDEN.glob("*.cases")):
        cur: Case | None = None
        for lineno, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur is not None:
                    cases.append(cur)
                cur = None
                continue
            key, sep, value = line.partition(":")
            assert sep, f"{path.name}:{lineno}: no key"
            if cur is None:
                cur = Case(f"{path.name}:{lineno}")
            assert key not in cur.fields, f"{path.name}:{lineno}: {key} twice"
            cur.fields[key] = value.strip()
        if cur is not None:
            cases.append(cur)
    return cases


def load_caret_lines() -> list[tuple[str, str, str]]:
    out = []
    for lineno, line in enumerate((GOLDEN / "caret.lines").read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        spec, sep, expected = line.partition(" | ")
        assert sep
        out.append((f"caret.lines:{lineno}", spec, expected))
    return out


CASES = load_cases()


def _start(spec: str, line: bytes) -> int:
    if spec == "<":
        return line.index(b"<")
    if spec.startswith("after="):
        needle = unescape(spec[len("after=") :])
        return line.index(needle) + len(needle)
    return int(spec)


def _opt_int(v: str) -> int | None:
    return None if v == "-" else int(v)


@pytest.mark.parametrize("case", CASES, ids=[c.where for c in CASES])
def test_golden(case: Case) -> None:
    f = case.fields
    line = unescape(f["in"])
    buf = bytearray(line)
    words = f["call"].split()
    func, start = words[0], _start(words[1], line)
    strict = len(words) > 2 and words[2] == "strict"
    st = rfc821.ScanState()
    if func == "helo":
        ok = rfc821.helo_check(st, buf, start)
        assert ok is {"true": True, "false": False}[f["end"]]
    else:
        if func in ("path", "path2", "mailbox", "domain", "adl"):
            end = getattr(rfc821, func)(st, buf, start, strict)
        else:
            end = getattr(rfc821, func)(st, buf, start)
        want = f["end"]
        if want == "fail":
            assert end == start
        elif want == "all":
            assert end == len(buf)
        else:
            assert end == int(want)
    text = f["text"]
    assert st.error_text == (None if text == "-" else unescape(text))
    assert st.error_pos == _opt_int(f["pos"])
    if "buf" in f:
        assert bytes(buf) == unescape(f["buf"])
    if "caret" in f:
        code, esc = f["caret"].split()
        esc_b = b"" if esc == "-" else esc.encode()
        assert rfc821.caret_line(int(code), esc_b, st.error_pos, True) == unescape(f["line"])
    if "data" in f:
        assert rfc821.path_data(st) == unescape(f["data"])


CARETS = load_caret_lines()


@pytest.mark.parametrize("where,spec,expected", CARETS, ids=[c[0] for c in CARETS])
def test_caret_golden(where: str, spec: str, expected: str) -> None:
    code, esc, pos, mode = spec.split()
    line = rfc821.caret_line(
        int(code), b"" if esc == "-" else esc.encode(), _opt_int(pos), mode == "esc"
    )
    assert line == expected.encode()


def test_golden_files_present() -> None:
    # Guard against an empty parametrisation passing silently.
    assert len(CASES) > 100
    assert len(CARETS) > 15
