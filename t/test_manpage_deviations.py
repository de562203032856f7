"""Every deviation listed in CHANGES has its counterpart in the manual's DEVIATIONS.

A DEVIATIONS entry is tied to its CHANGES bullet by a troff comment
``.\\" CHANGES: <tag>``, the tag being the bullet's first five words
(``manpage.changes_tag``).  Rewording a bullet's start therefore needs the
tag in the page updated too: the test names both sides.
"""

from __future__ import annotations

import re
from pathlib import Path

from zmailer_smtpd import manpage

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "man" / "smtpserver.8zm"


def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _changes() -> str:
    return (ROOT / "CHANGES").read_text(encoding="utf-8")


def _deviations_section(page: str) -> str:
    m = re.search(r"(?ms)^\.SH DEVIATIONS\n(.*?)(?=^\.SH )", page)
    assert m is not None
    return m.group(1)


def test_changes_lists_deviations() -> None:
    assert len(manpage.changes_deviations(_changes())) >= 1


def test_every_changes_deviation_is_in_the_manual() -> None:
    tags = set(manpage.deviation_tags(_deviations_section(_page())))
    missing = [(manpage.changes_tag(b), b[:70]) for b in manpage.changes_deviations(_changes())
               if manpage.changes_tag(b) not in tags]
    assert not missing, ("CHANGES deviations without a DEVIATIONS entry in man/smtpserver.8zm"
                         " (add one with the line  .\\\" CHANGES: <tag>):\n"
                         + "\n".join(f"  {t!r}: {b}..." for t, b in missing))


def test_every_tag_in_the_manual_names_a_changes_bullet() -> None:
    bullets = {manpage.changes_tag(b) for b in manpage.changes_deviations(_changes())}
    stale = [t for t in manpage.deviation_tags(_page()) if t not in bullets]
    assert not stale, f"tags in the manual with no CHANGES bullet (reworded?): {stale}"


def test_tags_are_unique_and_inside_deviations() -> None:
    page = _page()
    all_tags = manpage.deviation_tags(page)
    assert len(all_tags) == len(set(all_tags))
    assert sorted(all_tags) == sorted(manpage.deviation_tags(_deviations_section(page)))


def test_each_tag_precedes_an_entry() -> None:
    lines = _page().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('.\\" CHANGES: '):
            assert lines[i + 1] == ".TP", (line, lines[i + 1])
            assert lines[i + 2].strip() and not lines[i + 2].startswith("."), line


def test_tag_rule() -> None:
    assert manpage.changes_tag("SMTP smuggling closed: in network sessions the end") \
        == "smtp smuggling closed in network"
    assert manpage.changes_tag("ETRN: the scheduler's trigger file is made") \
        == "etrn the scheduler s trigger"


def test_changes_parser_takes_only_deviation_bullets() -> None:
    text = ("zmailer_smtpd 0.2.0\n===\n\nNew:\n- a feature, not a deviation\n\n"
            "Deviations from ZMailer 3.0.1:\n- First one: spans\n  two lines.\n"
            "- Second one.\n\nzmailer_smtpd 0.1.0\n===\n"
            "Deviations from ZMailer 3.0.1 (each also in the manual):\n- Third.\n")
    assert manpage.changes_deviations(text) == ["First one: spans two lines.", "Second one.",
                                                "Third."]
