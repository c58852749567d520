"""Data-path canaries: isolated rows through the real Opacus DP-SGD, closed-form checks, bugs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.audit.data_path import (
    append_canaries,
    canary_directions,
    canary_tokens,
    check_mechanism,
    embedding_copy,
)
from gt_secure.audit.gradient_canary import plant_bug
from gt_secure.audit.stats import clopper_pearson
from gt_secure.errors import InvalidFieldError
from gt_secure.organization._opacus import PerExampleLoss
from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd, train_dp_sgd

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CFG = DpSgdConfig(noise_multiplier=2.0, max_grad_norm=0.1, batch_size=8, epochs=2, lr=1.0,
                  optimizer="sgd", secure_mode=False, seed=0)


def _data(n: int, vocab: int = 200, seed: int = 0) -> dict[str, torch.Tensor]:
    """Records drawn from token ids [4, vocab) only, so most rows of the table stay untouched."""
    ids = torch.randint(4, vocab, (n, 12), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def test_embedding_copy_unties_and_trains_only_the_input_table(random_model):
    model = embedding_copy(random_model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["model.embed_tokens.weight"]
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert torch.equal(model.lm_head.weight, random_model.lm_head.weight)
    assert random_model.lm_head.weight is random_model.model.embed_tokens.weight  # base intact


def test_canary_tokens_avoid_used_tokens_and_each_other():
    used = torch.arange(0, 3000)
    tokens = canary_tokens(used, 4096, n_canaries=100, length=4, seed=1)
    assert tokens.shape == (100, 4) and len(np.unique(tokens)) == 400
    assert tokens.min() >= 3000
    with pytest.raises(InvalidFieldError, match="n_canaries"):
        canary_tokens(used, 4096, n_canaries=300, length=4, seed=1)


def test_canary_directions_match_each_canary_alone(random_model):
    model = embedding_copy(random_model)
    tokens = canary_tokens(torch.arange(0, 1000), 4096, n_canaries=5, length=4, seed=0)
    batched = canary_directions(model, tokens)  # (5, 4, d)
    weight = model.model.embed_tokens.weight
    for k in range(5):  # reference: canary k's own gradient, computed without the others
        ids = torch.as_tensor(tokens[k : k + 1])
        weight.grad = None
        PerExampleLoss(model)(ids, torch.ones_like(ids), ids).sum().backward()
        own = weight.grad[ids[0]]
        torch.testing.assert_close(batched[k], own / own.norm(), rtol=1e-5, atol=1e-6)
        others = torch.ones(len(weight), dtype=torch.bool)
        others[ids[0]] = False
        assert float(weight.grad[others].abs().max()) == 0.0  # isolated rows
    assert torch.allclose(batched.flatten(1).norm(dim=1), torch.ones(5))


def test_real_dp_sgd_touches_only_the_rows_of_sampled_records(random_model):
    """Noise off: the untouched rows and the "out" canaries' rows do not move; "in" rows do."""
    model = embedding_copy(random_model)
    data = _data(16)
    tokens = canary_tokens(torch.arange(0, 200), 4096, n_canaries=8, length=4, seed=0)
    train = append_canaries(data, tokens[:4], pad_id=0)  # canaries 0-3 in, 4-7 out
    before = model.model.embed_tokens.weight.detach().clone()
    cfg = CFG.model_copy(update={"noise_multiplier": 0.0})
    train_dp_sgd(model, train, cfg)
    moved = (model.model.embed_tokens.weight.detach() - before).abs().sum(dim=1) > 0  # (V,)
    allowed = set(range(4, 200)) | set(tokens[:4].flatten().tolist())  # records + "in"
    assert set(torch.nonzero(moved).flatten().tolist()) <= allowed
    assert not moved[torch.as_tensor(tokens[4:]).flatten()].any()
    assert moved[torch.as_tensor(tokens[:4, :-1]).flatten()].any()  # last token predicts none


def test_check_mechanism_accepts_the_record_and_rejects_more_steps_or_signal():
    rng = np.random.default_rng(0)
    steps, std, q, z = 48, 0.2, 0.125, 2.0
    floor = torch.ones(4000, dtype=torch.bool)
    member = rng.random(128) < 0.5
    bound = q * math.sqrt(steps) / z

    def run(true_steps: int, mean: float):
        rows = torch.from_numpy(rng.normal(0, std * math.sqrt(true_steps), (4000, 8)))
        scores = rng.normal(0, 1, 128) + mean * member
        return check_mechanism(rows, floor, scores, member, recorded_std=std, sample_rate=q,
                               steps=steps, noise_multiplier=z, alpha=1e-3)

    ok = run(steps, bound)
    assert ok.noise_ratio == pytest.approx(1.0, abs=0.05) and not ok.rejects
    assert ok.signal_bound == pytest.approx(bound)
    assert run(2 * steps, bound).noise_p < 1e-9  # steps x2 on the floor
    assert run(steps, 4 * bound).signal_p < 1e-3  # sampling x4 in the signal


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_check_mechanism_false_rejections_at_nominal_rate(seed):
    """Under the record, each check rejects at about alpha = 0.05 (Clopper-Pearson band)."""
    rng = np.random.default_rng(seed)
    floor, member = torch.ones(50, dtype=torch.bool), np.arange(64) < 32
    noise_hits = signal_hits = 0
    trials = 400
    for _ in range(trials):
        rows = torch.from_numpy(rng.normal(0, 1.0, (50, 4)))
        scores = rng.normal(0, 1, 64) + 0.3 * member  # "in" mean exactly at the bound
        c = check_mechanism(rows, floor, scores, member, recorded_std=1.0, sample_rate=0.3,
                            steps=1, noise_multiplier=1.0, alpha=0.05)
        noise_hits += c.noise_p < 0.05
        signal_hits += c.signal_p < 0.05
    for hits in (noise_hits, signal_hits):
        lo, hi = clopper_pearson(int(hits), trials, 0.999)
        assert lo <= 0.05 + 0.02 and hi >= 0.05 - 0.02, hits


def test_plant_bug_steps_and_sample_rate():
    n = 64  # ceil(64 / 8) = 8 steps per epoch, divisible by 4
    plan = plan_dp_sgd(CFG, n)
    for bug, factor in (("steps_x2", 2), ("steps_x4", 4)):
        run = plan_dp_sgd(plant_bug(CFG, n, bug), n)
        assert (run.steps, run.sample_rate) == (factor * plan.steps, plan.sample_rate)
        assert run.noise_multiplier == plan.noise_multiplier
    run = plan_dp_sgd(plant_bug(CFG, n, "sample_rate_x4"), n)
    assert run.sample_rate == pytest.approx(4 * plan.sample_rate)
    assert (run.steps, run.noise_multiplier) == (plan.steps, plan.noise_multiplier)
    with pytest.raises(InvalidFieldError, match="n_examples"):
        plant_bug(CFG, 40, "sample_rate_x4")  # ceil(40 / 8) = 5
    with pytest.raises(InvalidFieldError, match="bug"):
        plant_bug(CFG, n, "steps_x3")  # type: ignore[arg-type]


def test_cli_data_path_exits_1_on_steps_x2(tmp_path, capsys) -> None:
    """128 records + canaries at B = 32: 12 steps, so the run stays short."""
    from gt_secure.cli.main import main

    rc = main(["audit", "data-path", "--n-examples", "128", "--n", "128", "--bug", "steps_x2",
               "--out", str(tmp_path)])
    report = json.loads((tmp_path / "audit.json").read_text())
    assert rc == 1 and report["results"][0]["verdict"] == "FAIL"
    assert report["results"][0]["attack"] == "data_path_canary"
    assert "noise ratio 2.0" in capsys.readouterr().out
