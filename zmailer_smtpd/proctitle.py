"""Process titles of session children (protocol.md §6.3).

Title = ``<`` + rhostname + `` `` + text (the unmatched ``<`` is 3.0.1's).
An administrator's ``ps`` shows which client each child serves and what it is
doing.  The master and interactive sessions keep their titles.  Without the
setproctitle module the calls do nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_set: Callable[[str], None] | None
try:
    from setproctitle import setproctitle as _set
except ImportError:  # pragma: no cover - the package is a dependency
    _set = None

CONNECTED = "(connected)"
IDLE = "smtpserver: idle session child"  # between two sessions (no client, so no "<")


_CONTROL = re.compile("[\x00-\x1f\x7f]")  # shown as '?' so ps output stays one line
_last: str | None = None  # the title this process set last: the same one again costs nothing


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def title_text(rhostname: bytes | str, text: bytes | str) -> str:
    """The title ``<rhostname text`` with control characters (and DEL) as '?'."""
    title = "<" + _text(rhostname) + " " + _text(text)
    if title.isascii() and title.isprintable():  # the usual command line: nothing to replace
        return title
    return _CONTROL.sub("?", title)


def set_title(rhostname: bytes | str | None, text: bytes | str) -> None:
    """Set ``<rhostname text`` (just ``text`` without a client); control bytes become '?'."""
    global _last
    if _set is None:
        return
    title = _text(text) if rhostname is None else title_text(rhostname, text)
    if title != _last:
        _set(title)
        _last = title


def command(rhostname: bytes | str, line: bytes) -> None:
    """Title for an accepted command line: its first 100 bytes."""
    set_title(rhostname, line[:100])


def data_done(rhostname: bytes | str, size: int) -> None:
    set_title(rhostname, f"Got '.'; size={size}")


def bdat(rhostname: bytes | str, chunk: int, last: bool, size: int) -> None:
    set_title(rhostname, f"BDAT {chunk}{' LAST' if last else ''}; size={size}")
