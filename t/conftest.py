"""Fixtures the session-level test files share (sessionkit.py has the harness itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sessionkit import Harness, utc_tz


@pytest.fixture
def utc() -> None:
    """%T and log dates in UTC, as the vectors are written (``usefixtures("utc")``)."""
    utc_tz()


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    """A fresh session harness in the test's own directory."""
    return Harness(tmp_path)
