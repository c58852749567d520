"""The deployment tests' federation: every process it started is stopped by the finalizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gt_secure.deploy.federation import Federation

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    fed = Federation(tmp_path, REPO)
    try:
        yield fed
    finally:
        fed.close()
