"""``gt-secure audit run`` usage errors name the right option; a delivered adapter is audited."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gt_secure.provider.adapter import export_adapter, fresh_lora
from gt_secure.update import UpdateVector
from tests.cli.conftest import cli
from tests.cli.test_exit_codes import one_line

CLAIM = ["--claimed-epsilon", "1", "--delta", "1e-5", "--attack", "loss"]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = fresh_lora("llm")[2]
    flat = np.random.default_rng(1).normal(0, 0.02, layout.size).astype(np.float32)
    return export_adapter(UpdateVector(layout, flat), tmp_path_factory.mktemp("org") / "adapter")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auditor") / "manifest.json"
    assert cli("audit", "canaries", "--n", "8", "--out", str(path)).code == 0
    return path


def test_run_usage_errors_name_the_option(tmp_path: Path, adapter: Path, manifest: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--target", "/nope", "--manifest", str(manifest)], "--target must be an existing"),
        (["--target", str(empty), "--manifest", str(manifest)], "--target must be a saved model"),
        (["--target", str(adapter), "--manifest", str(tmp_path / "m.json")],
         "--manifest must be an existing file"),
        (["--target", str(adapter)], "--manifest must be the canary manifest"),
        (["--target", str(adapter), "--manifest", str(manifest), "--ledger",
          str(tmp_path / "l.jsonl")], "--ledger must be an existing file"),
    ]
    for args, expected in cases:
        run = cli("audit", "run", *args, *CLAIM, "--out", str(tmp_path / "out"))
        assert run.code == 2, (args, run.err)
        assert expected in one_line(run.err)
        assert "--tokenizer" not in run.err
    assert not (tmp_path / "out").exists()
    run = cli("audit", "canaries", "--n", "0", "--out", str(tmp_path / "m0.json"))
    assert run.code == 2 and "--n must be >= 2" in one_line(run.err)


def test_delivered_adapter_is_audited(tmp_path: Path, adapter: Path, manifest: Path) -> None:
    run = cli("audit", "run", "--target", str(adapter), "--manifest", str(manifest), *CLAIM,
              "--out", str(tmp_path / "out"))
    assert run.code in (0, 1), run.err  # a verdict, not a usage error
    for noise in ("Warning", "Loading weights", "DEPRECATED"):  # third-party noise filtered
        assert noise not in run.err, run.err
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert report["results"][0]["attack"] == "loss"
