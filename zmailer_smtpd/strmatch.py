"""The glob of HELO/EHLO pattern lines (lib/strmatch.c; protocol.md §2.6).

``*`` any run of bytes (also empty), ``?`` one byte, ``[...]`` one byte of a set
with ``a-z`` ranges, ``[!...]`` one byte not in the set, ``\\x`` the literal byte
``x``; everything else is literal and the whole subject must match.  Python's
``fnmatch`` has no backslash escape and treats ``[^`` as negation, hence our
own.  Matching is on bytes and case-sensitive (config.py lower-cases both
sides).  The matcher backtracks only to the last ``*``, so no pattern can make
it take exponential time.
"""

from __future__ import annotations

from functools import lru_cache

# Compiled elements: STAR; ANY; (LIT, byte); (SET, frozenset of bytes, negated).
_STAR = 0
_ANY = 1
_LIT = 2
_SET = 3
_NEVER = 4  # a malformed element (trailing backslash, unterminated set): matches nothing

Element = tuple[int, int, frozenset[int], bool]


def _set_members(body: bytes) -> frozenset[int]:
    """Members of a set body (between '[' or '[!' and ']'), ranges expanded as in C."""
    members: set[int] = set()
    i = 0
    while i < len(body):
        c = body[i]
        members.add(c)
        if i + 2 < len(body) and body[i + 1] == ord("-"):
            members.update(range(c + 1, min(body[i + 2], 127) + 1))  # C caps at 127
            i += 3
        else:
            i += 1
    return frozenset(members)


@lru_cache(maxsize=256)
def compile_pattern(pattern: bytes) -> tuple[Element, ...]:
    """Turn a pattern into elements that each match one byte, or a star."""
    out: list[Element] = []
    empty: frozenset[int] = frozenset()
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == ord("*"):
            if not out or out[-1][0] != _STAR:
                out.append((_STAR, 0, empty, False))
            i += 1
        elif c == ord("?"):
            out.append((_ANY, 0, empty, False))
            i += 1
        elif c == ord("\\"):
            if i + 1 >= n:
                out.append((_NEVER, 0, empty, False))
                break
            out.append((_LIT, pattern[i + 1], empty, False))
            i += 2
        elif c == ord("["):
            j = i + 1
            negated = j < n and pattern[j] == ord("!")
            if negated:
                j += 1
            end = pattern.find(b"]", j)
            if end < 0:
                out.append((_NEVER, 0, empty, False))
                break
            out.append((_SET, 0, _set_members(pattern[j:end]), negated))
            i = end + 1
        else:
            out.append((_LIT, c, empty, False))
            i += 1
    return tuple(out)


def _one(el: Element, b: int) -> bool:
    kind, lit, members, negated = el
    if kind == _ANY:
        return True
    if kind == _LIT:
        return b == lit
    if kind == _SET:
        return (b in members) != negated
    return False


def strmatch(pattern: bytes, subject: bytes) -> bool:
    """Whether the whole of `subject` matches the glob `pattern`."""
    els = compile_pattern(pattern)
    p = s = 0
    star_p = -1
    star_s = 0
    np_, ns = len(els), len(subject)
    while s < ns:
        if p < np_ and els[p][0] == _STAR:
            star_p = p
            star_s = s
            p += 1
        elif p < np_ and _one(els[p], subject[s]):
            p += 1
            s += 1
        elif star_p >= 0:
            star_s += 1
            s = star_s
            p = star_p + 1
        else:
            return False
    while p < np_ and els[p][0] == _STAR:
        p += 1
    return p == np_
