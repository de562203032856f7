"""The PARAM table: every smtpserver.conf keyword declared once.

The parser (config.py), ``--check-config`` and the manual page's PARAM list all
come from this table; a test fails when the manual and the table disagree.
(protocol.md §2.5; decisions in spec/README.md.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Argument syntaxes understood by config.py.
FLAG = "flag"  # no argument; sets the value given in `sets` (default True)
INT = "int"  # one integer (atoi semantics)
STR = "str"  # one token
REST = "rest"  # rest of line, verbatim, no $-expansion (help, hdr220, ...)


@dataclass(frozen=True)
class Param:
    """One keyword (and its aliases) of smtpserver.conf."""

    name: str  # canonical spelling, lower-case; Settings.get() key
    syntax: str  # FLAG / INT / STR / REST / or a custom name handled in config.py
    scope: str  # "G" global, "g" per group
    default: Any
    doc: str
    aliases: tuple[str, ...] = ()
    sets: Any = True  # for FLAG: the value stored (e.g. "noehlo" -> ehlo False)
    target: str | None = None  # for FLAG pairs: the canonical key they set
    minimum: int | None = None
    implemented: bool = True  # False: accepted with a warning naming file and line
    extra: dict[str, Any] = field(default_factory=dict)


# Filled in by the configuration work (issue 2, part 4).  Keep one entry per
# keyword, in the order of protocol.md §2.5.
PARAMS: tuple[Param, ...] = ()
