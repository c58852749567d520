"""The ledger report as a reader sees it: rendered by headless Chromium (installed by .ci/run),
its first screen checked for the banner colours; ``--pdf`` prints it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gt_secure.ledger.report_html import chromium
from tests.cli.conftest import cli
from tests.cli.test_ledger_cli import tamper_line_2
from tests.ledger.conftest import DPSGD, World, release
from tests.ledger.test_unprotected import plain

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Chromium not installed (.ci/run installs it)")
RED, GREEN, ORANGE = (217, 48, 37), (19, 115, 51), (227, 116, 0)  # fail/ok border, stamp


def pixels(png: Path, colour: tuple[int, int, int]) -> int:
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(image - np.array(colour)).max(axis=2) <= 12).sum())


def shot(args: list[str], tmp_path: Path, name: str) -> tuple[int, Path]:
    page = tmp_path / f"{name}.html"
    code = cli("ledger", "report", *args, "--out", str(page)).code
    png = tmp_path / f"{name}.png"
    chromium(page, screenshot=png)
    return code, png


def test_reader_sees_ok_red_or_unverified(populated: World, tmp_path: Path) -> None:
    ledger = ["--ledger", str(populated.ledger.path)]
    keys = ["--trusted-keys", str(populated.key_dir)]
    code, ok = shot([*ledger, *keys], tmp_path, "ok")
    assert code == 0 and pixels(ok, GREEN) > 1000 and pixels(ok, RED) == 0
    code, unverified = shot([*ledger, "--unverified"], tmp_path, "unverified")
    assert code == 0 and pixels(unverified, ORANGE) > 1000 and pixels(unverified, GREEN) == 0
    tamper_line_2(populated.ledger.path)
    code, failed = shot([*ledger, *keys], tmp_path, "failed")
    assert code == 1 and pixels(failed, RED) > 1000 and pixels(failed, GREEN) == 0


def test_report_pdf(populated: World, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    run = cli("ledger", "report", "--ledger", str(populated.ledger.path), "--trusted-keys",
              str(populated.key_dir), "--out", str(tmp_path / "r.html"), "--pdf", str(pdf))
    assert run.code == 0, run.err
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000


def test_reader_sees_an_unprotected_release_in_red(world: World, tmp_path: Path) -> None:
    release(world, "org-a", "r1", [DPSGD])
    plain(world)
    code, png = shot(["--ledger", str(world.ledger.path), "--trusted-keys", str(world.key_dir)],
                     tmp_path, "plain")
    assert code == 0 and pixels(png, GREEN) > 1000  # verified
    assert pixels(png, RED) > 1000  # and, on the first screen, the UNPROTECTED banner
