"""Directory choice for a committed message (spool.md §4.3, README decision).

3.0.1 examines min(P, n-1) leading segments of INPUTDIRS/ROUTERDIRS plus the
last one only when P > n.  README: "follows the code, without its off-by-one",
so priority P selects the P-th segment, capped at the last.  The cases that
differ from 3.0.1 are exactly those with P == n (number of segments):

* INPUTDIRS=input (n=1), bulk (P=1): we pick ``input``; 3.0.1 skipped it
  (and used ROUTERDIRS, e.g. ``router1``) — spool.md §4.3 / §14.6;
* ROUTERDIRS=router1:router2:router3:router4 (n=4), P=4: we pick ``router4``;
  3.0.1 picked ``router3``.

Every other case gives 3.0.1's answer; test_same_as_c_except_p_equals_n proves
it against a literal transcription of the C loop.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from spoolutil import make_postoffice

from zmailer_smtpd.spool import Spool, choose_dir, hash_prefix, select_segment

RD = "router1:router2:router3:router4"


def c301_select(po: str, dirlist: str, prio: int) -> str | None:
    """libc/mail.c's loop, transcribed (with its off-by-one) for comparison only."""
    i = prio
    rd = dirlist
    ord_: str | None = None
    s: int | None = None
    while True:
        old = i
        i -= 1
        if not old:
            break
        s = rd.find(":")
        if s < 0:
            s = None
            break
        if os.path.isdir(os.path.join(po, rd[:s])):
            ord_ = rd[:s]
        rd = rd[s + 1 :]
    if s is None and i > 0 and rd and os.path.isdir(os.path.join(po, rd)):
        ord_ = rd
    return ord_


@pytest.fixture
def po4(tmp_path: Path) -> str:
    return make_postoffice(tmp_path / "po", routerdirs=["router1", "router2", "router3", "router4"])


def test_priority_zero_never_consults_lists(po4: str) -> None:
    os.mkdir(os.path.join(po4, "input"))
    assert choose_dir(po4, 0, "input", RD) == ("router", False)


def test_bulk_and_junk_with_all_routerdirs(po4: str) -> None:
    assert choose_dir(po4, 1, None, RD) == ("router1", False)
    assert choose_dir(po4, 2, None, RD) == ("router2", False)
    assert choose_dir(po4, 3, None, RD) == ("router3", False)
    assert choose_dir(po4, 4, None, RD) == ("router4", False)  # 3.0.1: router3 (off-by-one)
    assert choose_dir(po4, 9, None, RD) == ("router4", False)


def test_no_routerdirs_present(tmp_path: Path) -> None:
    po = make_postoffice(tmp_path / "po")
    assert choose_dir(po, 1, None, RD) == ("router", False)
    assert choose_dir(po, 9, None, RD) == ("router", False)
    assert choose_dir(po, 9, None, None) == ("router", False)


def test_single_inputdir(po4: str) -> None:
    os.mkdir(os.path.join(po4, "input"))
    assert choose_dir(po4, 0, "input", RD) == ("router", False)
    assert choose_dir(po4, 1, "input", RD) == ("input", True)  # 3.0.1: router1 (off-by-one)
    assert choose_dir(po4, 9, "input", RD) == ("input", True)


def test_inputdirs_with_missing_first(po4: str) -> None:
    os.mkdir(os.path.join(po4, "input"))
    assert choose_dir(po4, 1, "nonexist:input", RD) == ("router1", False)  # as 3.0.1
    assert choose_dir(po4, 9, "nonexist:input", RD) == ("input", True)  # as 3.0.1


def test_missing_segments_keep_last_usable(tmp_path: Path) -> None:
    po = make_postoffice(tmp_path / "po", routerdirs=["router1", "router3"])
    assert select_segment(po, RD, 1) == "router1"
    assert select_segment(po, RD, 2) == "router1"
    assert select_segment(po, RD, 3) == "router3"
    assert select_segment(po, RD, 9) == "router3"
    Path(po, "router4").write_text("not a directory")
    assert select_segment(po, RD, 9) == "router3"


def test_empty_segments_are_never_used(tmp_path: Path) -> None:
    po = make_postoffice(tmp_path / "po", routerdirs=["router1", "router3"])
    assert select_segment(po, "", 5) is None  # 3.0.1 would use $POSTOFFICE itself
    assert select_segment(po, ":", 5) is None
    assert select_segment(po, "router1::router3", 2) == "router1"
    assert select_segment(po, "router1::router3", 3) == "router3"
    assert select_segment(po, "router1:", 9) == "router1"


def test_same_as_c_except_p_equals_n(tmp_path: Path) -> None:
    names = ["d1", "d2", "d3", "d4", "d5"]
    po = make_postoffice(tmp_path / "po")
    differing = []
    for n in range(1, 6):
        segs = names[:n]
        spec = ":".join(segs)
        for present in itertools.product((False, True), repeat=n):
            for d, p in zip(segs, present, strict=True):
                path = os.path.join(po, d)
                if p and not os.path.isdir(path):
                    os.mkdir(path)
                elif not p and os.path.isdir(path):
                    os.rmdir(path)
            for prio in range(1, 11):
                ours = select_segment(po, spec, prio)
                c = c301_select(po, spec, prio)
                if prio != n:
                    assert ours == c, (spec, present, prio)
                else:
                    # Fixed: P == n reaches the last segment, as 3.0.1 does for P == n + 1.
                    assert ours == c301_select(po, spec, prio + 1)
                    if ours != c:
                        differing.append((n, present, prio))
    # The only differences: P == n and the last segment exists.
    assert differing and all(pr == n and pres[-1] for n, pres, pr in differing)


def test_hash_letter() -> None:
    assert hash_prefix(2163014) == "W/"
    assert hash_prefix(26) == "A/" and hash_prefix(25) == "Z/"


def test_hash_switch_per_kind_of_directory(po4: str) -> None:
    """Decided per message from the variable of the chosen kind of directory
    (3.0.1 caches the first message's answer for the whole process, §16 Q5:
    a later message could then be refused for a missing A..Z directory)."""
    os.mkdir(os.path.join(po4, "input"))
    z = {"INPUTDIRS": "input", "INPUTDIRHASH": "1", "ROUTERDIRS": RD}
    sp = Spool(po4, z, hostname="h")
    assert sp.target_for(9, 2163014) == ("input", "W/", True)
    assert sp.target_for(0, 2163014) == ("router", "", False)
    z2 = {"ROUTERDIRHASH": "1yes", "INPUTDIRHASH": "0", "INPUTDIRS": "input"}
    sp2 = Spool(po4, z2, hostname="h")
    assert sp2.target_for(0, 27) == ("router", "B/", False)
    assert sp2.target_for(9, 27) == ("input", "", True)
    for off in ("", "0", "yes", " 1"):
        assert Spool(po4, {"ROUTERDIRHASH": off}, hostname="h").target_for(0, 27)[1] == ""
