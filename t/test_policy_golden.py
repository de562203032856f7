"""policy.md §12 test vectors as golden cases: source files through the real
builder into a real Berkeley DB, the engine, and a stand-in dialogue
(t/golden/policy/*.in → *.ref; format in t/policy_support.py)."""

from __future__ import annotations

import pytest
from policy_support import GOLDEN, env_update, parse_case, run_case

CASES = sorted(GOLDEN.glob("*.in"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path):
    got = run_case(parse_case(path))
    ref = path.with_suffix(".ref")
    if env_update():
        ref.write_text(got, "utf-8")
    assert got == ref.read_text("utf-8")
