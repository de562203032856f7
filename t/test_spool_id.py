"""The spool id (spool.md §12): alphabet, UTC fields, nanosecond suffix."""

from __future__ import annotations

import calendar
import os
from pathlib import Path

from zmailer_smtpd.spool import spoolid, spoolid_from

T0 = calendar.timegm((2026, 11, 28, 7, 0, 26, 0, 0, 0))


def test_spec_example_prefix() -> None:
    # inode 2162999, mtime 2026-11-28 07:00:26 UTC -> S2162999 Abm K 1 H A 0 + 5 ns chars
    sid = spoolid_from(2162999, T0 * 10**9 + 123456789)
    assert sid.startswith("S2162999AbmK1HA0")
    assert len(sid) == len("S2162999AbmK1HA0") + 5


def test_nanosecond_suffix_exact() -> None:
    a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdefghijklmnopqrstuvwxyz4567890-="
    ns = 123456789
    tail = "".join(a[(ns >> k) & 63] for k in (24, 18, 12, 6, 0))
    assert spoolid_from(2162999, T0 * 10**9 + ns) == "S2162999AbmK1HA0" + tail
    assert tail == "HW8wV"  # 7, 22, 60, 52, 21 worked by hand


def test_spec_example_full_shape() -> None:
    """The spec's example ``S2162999AbmK1HA0BPTLx``: decode its suffix and rebuild it."""
    a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdefghijklmnopqrstuvwxyz4567890-="
    suffix = "BPTLx"
    ns = 0
    for ch in suffix:
        ns = (ns << 6) | a.index(ch)
    assert ns < 10**9
    assert spoolid_from(2162999, T0 * 10**9 + ns) == "S2162999AbmK1HA0BPTLx"


def test_zero_nanoseconds_no_suffix() -> None:
    assert spoolid_from(5, T0 * 10**9) == "S5AbmK1HA0"


def test_fields_are_utc_and_edges() -> None:
    # 2024-01-01 00:00:00: year 2024 = 0 / 31 / 40 -> "Abk"; every other field index 0
    t = calendar.timegm((2024, 1, 1, 0, 0, 0, 0, 0, 0))
    assert spoolid_from(1, t * 10**9) == "S1AbkAAAAA"
    t = calendar.timegm((2026, 12, 31, 23, 59, 59, 0, 0, 0))
    a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123abcdefghijklmnopqrstuvwxyz4567890-="
    assert spoolid_from(7, t * 10**9) == "S7Abm" + a[11] + a[30] + a[23] + a[59] + a[59]


def test_from_stat(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x")
    os.utime(p, ns=(T0 * 10**9 + 1, T0 * 10**9 + 1))
    st = os.stat(p)
    assert spoolid(st) == f"S{st.st_ino}AbmK1HA0AAAAB"
