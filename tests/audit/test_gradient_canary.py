"""Gradient canaries go through Opacus's clip-sum-noise step exactly like one more example."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gt_secure.audit.gradient_canary import (
    CanaryInserter,
    canary_values,
    make_gradient_canaries,
    plant_bug,
    run_gradient_canary_audit,
)
from gt_secure.cli.main import main
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.dp_sgd import DpSgdConfig, dp_step, make_private_training
from tests.organization.conftest import lora_tinylm, token_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _step_change(clip: float, rows: slice, with_canaries: bool) -> tuple[np.ndarray, ...]:
    """Change of every canary coordinate after one noiseless SGD step (lr 1, expected B 8)."""
    data = token_data(32, 16, seed=2)
    model = lora_tinylm()
    cfg = DpSgdConfig(noise_multiplier=0.0, max_grad_norm=clip, batch_size=8, optimizer="sgd",
                      lr=1.0, secure_mode=False, seed=0)
    training = make_private_training(model, data, cfg)
    canaries = make_gradient_canaries(model, 16, seed=3, grad_norm=10.0)
    inserter = CanaryInserter(model, canaries, sample_rate=1.0, seed=0)
    before = canary_values(model, canaries)
    batch = [data["input_ids"][rows], data["attention_mask"][rows], data["labels"][rows]]
    dp_step(training, batch, inserter if with_canaries else None)
    return before - canary_values(model, canaries), np.array(canaries.is_member), \
        inserter.inclusions


@pytest.mark.parametrize("clip", [1.0, 1e6])
@pytest.mark.parametrize("rows", [slice(0, 8), slice(0, 0)], ids=["batch", "empty"])
def test_canary_is_clipped_summed_and_scaled_like_an_example(clip: float, rows: slice) -> None:
    with_c, member, inclusions = _step_change(clip, rows, True)
    without, _, _ = _step_change(clip, rows, False)
    expected = np.where(member, min(10.0, clip) / 8, 0.0)  # lr * min(G, C) / expected batch
    np.testing.assert_allclose(with_c - without, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(inclusions, member.astype(int))


def test_canaries_are_distinct_coordinates_with_fair_coins() -> None:
    model = lora_tinylm()
    canaries = make_gradient_canaries(model, 512, seed=1, match="lora_A")
    assert all("lora_A" in name for name in canaries.params)
    assert len(set(zip(canaries.params, canaries.coords, strict=True))) == 512
    assert abs(sum(canaries.is_member) - 256) < 4 * math.sqrt(128)
    assert make_gradient_canaries(model, 512, seed=1, match="lora_A") == canaries
    with pytest.raises(InvalidFieldError, match="n_canaries"):
        make_gradient_canaries(model, 10_000, seed=1)
    with pytest.raises(InvalidFieldError, match="match"):
        make_gradient_canaries(model, 8, seed=1, match="no_such_tensor")


def test_planted_bugs_keep_the_noise_std_or_zero_it() -> None:
    cfg = DpSgdConfig(noise_multiplier=2.0, batch_size=8, optimizer="sgd", secure_mode=False,
                      seed=0)
    off = plant_bug(cfg, 32, "clipping_off")
    assert off.noise_multiplier * off.max_grad_norm == pytest.approx(2.0)
    assert off.max_grad_norm == 1e6
    assert plant_bug(cfg, 32, "noise_off").noise_multiplier == 0.0
    assert plant_bug(cfg, 32, None).noise_multiplier == 2.0


def test_audit_refuses_adam() -> None:
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=8, secure_mode=False, seed=0)
    with pytest.raises(InvalidFieldError, match="optimizer"):
        run_gradient_canary_audit(lora_tinylm(), token_data(16, 8), cfg)


def test_gdp_bound_refused_for_a_subsampled_run() -> None:
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=8, optimizer="sgd", secure_mode=False,
                      seed=0)
    with pytest.raises(InvalidFieldError, match="bound"):
        run_gradient_canary_audit(lora_tinylm(), token_data(16, 8), cfg, bound="gdp")


def test_audit_runs_end_to_end_on_a_random_model() -> None:
    torch.manual_seed(0)
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=8, steps=4, optimizer="sgd",
                      secure_mode=False, seed=0)
    result = run_gradient_canary_audit(lora_tinylm(), token_data(16, 8), cfg, n_canaries=32,
                                       grad_norm=10.0, seed=2)
    assert result.attack == "gradient_canary" and result.n_canaries == 32
    assert result.claimed_epsilon > 0 and result.verdict in ("PASS", "FAIL")
    assert len(result.scores) == 32


def test_cli_gradient_canaries_exits_1_on_clipping_off(tmp_path) -> None:
    rc = main(["audit", "gradient-canaries", "--bug", "clipping_off", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 1 and report["results"][0]["verdict"] == "FAIL"
    assert report["results"][0]["attack"] == "gradient_canary"
