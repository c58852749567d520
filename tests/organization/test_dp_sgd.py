"""DP-SGD on the LoRA TinyLM: per-sample gradients, identity with plain SGD, noise, accounting."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import pytest
import torch

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.organization._opacus import CsprngPrivacyEngine, PerExampleLoss
from gt_secure.organization.dp_sgd import (
    DpSgdConfig,
    accounted_steps,
    dp_step,
    make_private_training,
    plan_dp_sgd,
    train_dp_sgd,
)
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from gt_secure.update.lora import lora_parameters, lora_state
from tests.organization.conftest import lora_tinylm, token_data

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
GradSampleMode = Literal["hooks", "functorch", "ew"]


def _batch(data: dict[str, torch.Tensor], rows: slice) -> list[torch.Tensor]:
    return [data["input_ids"][rows], data["attention_mask"][rows], data["labels"][rows]]


@pytest.mark.parametrize("mode", ["hooks", "functorch", "ew"])
def test_per_sample_grads_match_microbatch_loop(mode: GradSampleMode) -> None:
    # Prepare: 4 examples of different lengths (right padding)
    data = token_data(8, 24, seed=1)
    model = lora_tinylm()
    with torch.no_grad():  # non-zero B so that every LoRA factor has a gradient
        for p in lora_parameters(model).values():
            p.add_(0.05 * torch.randn_like(p))
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=4, secure_mode=False, seed=0,
                      grad_sample_mode=mode)
    training = make_private_training(model, data, cfg)
    ids, mask, labels = _batch(data, slice(0, 4))
    # Execute: Opacus per-sample gradients
    losses = training.module(ids, mask, labels)  # (4,)
    (losses.sum() / len(losses)).backward()
    params: dict[str, Any] = dict(lora_parameters(model))
    opacus = {n: p.grad_sample.clone() for n, p in params.items()}  # (4, *shape) each
    training.module._close()
    # Reference: batch-size-1 loop through the plain (unwrapped) model
    plain = PerExampleLoss(model)
    for i in range(4):
        model.zero_grad(set_to_none=True)
        plain(ids[i : i + 1], mask[i : i + 1], labels[i : i + 1]).sum().backward()
        for name, p in lora_parameters(model).items():
            assert p.grad is not None
            torch.testing.assert_close(opacus[name][i], p.grad, rtol=1e-4, atol=1e-6)


def _one_step(noise: float, clip: float) -> torch.Tensor:
    """LoRA state after one DP step on the first 8 examples (expected batch size 8)."""
    data = token_data(32, 16, seed=2)
    model = lora_tinylm()
    cfg = DpSgdConfig(noise_multiplier=noise, max_grad_norm=clip, batch_size=8, optimizer="sgd",
                      lr=0.5, secure_mode=False, seed=0)
    training = make_private_training(model, data, cfg)
    dp_step(training, _batch(data, slice(0, 8)))
    return torch.from_numpy(lora_state(model))


def _plain_step() -> torch.Tensor:
    data = token_data(32, 16, seed=2)
    model = lora_tinylm()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    PerExampleLoss(model)(*_batch(data, slice(0, 8))).mean().backward()
    opt.step()
    return torch.from_numpy(lora_state(model))


def test_no_noise_no_clip_equals_plain_sgd_and_either_changes_it() -> None:
    plain = _plain_step()
    start = torch.from_numpy(lora_state(lora_tinylm()))
    assert not torch.equal(plain, start)
    torch.testing.assert_close(_one_step(0.0, 1e6), plain, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(_one_step(1.0, 1e6), plain, rtol=1e-3, atol=1e-5)
    assert not torch.allclose(_one_step(0.0, 1e-3), plain, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("secure", [False, True])
def test_noise_std_on_zero_gradients_matches_closed_form(secure: bool) -> None:
    # Zero per-example gradients (loss * 0): p.grad after a step is noise / B, std z * C / B.
    z, clip, batch, k = 1.3, 0.8, 8, 12
    data = token_data(32, 8, seed=3)
    cfg = DpSgdConfig(noise_multiplier=z, max_grad_norm=clip, batch_size=batch, optimizer="sgd",
                      lr=1e-9, secure_mode=secure, seed=None if secure else 5)
    training = make_private_training(lora_tinylm(), data, cfg)
    draws = []
    for _ in range(k):
        training.optimizer.zero_grad(set_to_none=True)
        (training.module(*_batch(data, slice(0, batch))) * 0.0).mean().backward()
        training.optimizer.step()
        draws += [p.grad.detach().reshape(-1) for p in training.optimizer.params]
    noise = torch.cat(draws).double()  # 12 steps * 2048 LoRA values: std estimate s.d. ~0.4%
    assert noise.std().item() == pytest.approx(z * clip / batch, rel=0.03)
    assert abs(noise.mean().item()) < 5 * z * clip / batch / math.sqrt(noise.numel())
    assert accounted_steps(training.engine) == k


def test_training_accounts_every_step_and_matches_ledger_accountant() -> None:
    data = token_data(24, 12, seed=4)
    cfg = DpSgdConfig(noise_multiplier=2.0, batch_size=8, epochs=1, secure_mode=True)
    result = train_dp_sgd(lora_tinylm(), data, cfg)
    mech = result.mechanism
    assert (mech.sample_rate, mech.steps, mech.clip_norm, mech.noise_multiplier) == (
        1 / 3, 3, 1.0, 2.0)
    assert mech == plan_dp_sgd(cfg, 24)
    assert result.epsilon == pytest.approx(compute_epsilon([mech], cfg.delta, "rdp"), rel=1e-9)
    assert len(result.losses) == 3
    assert all(not hasattr(p, "grad_sample") for p in result.model.parameters())


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_no_noise_trains_and_reports_infinite_epsilon(accountant: Any) -> None:
    cfg = DpSgdConfig(noise_multiplier=0.0, batch_size=8, epochs=1, secure_mode=True,
                      accountant=accountant)
    result = train_dp_sgd(lora_tinylm(), token_data(16, 12, seed=5), cfg)
    assert result.epsilon == math.inf == compute_epsilon([result.mechanism], cfg.delta,
                                                         accountant)


def test_target_epsilon_is_solved_before_training() -> None:
    # Demo shape: 512 texts, expected batch 32 -> q = 1/16, 4 epochs = 64 steps.
    cfg = DpSgdConfig(target_epsilon=1.0, batch_size=32, epochs=4)
    mech = plan_dp_sgd(cfg, 512)
    assert (mech.sample_rate, mech.steps) == (1 / 16, 64)
    epsilon = compute_epsilon([mech], cfg.delta, cfg.accountant)
    assert epsilon <= 1.0 and epsilon == pytest.approx(1.0, rel=0.02)


def test_empty_poisson_batch_still_adds_noise_and_is_accounted() -> None:
    data = token_data(16, 8, seed=5)
    model = lora_tinylm()
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=4, secure_mode=True)
    training = make_private_training(model, data, cfg)
    before = lora_state(model)
    assert math.isnan(dp_step(training, _batch(data, slice(0, 0))))
    assert (lora_state(model) != before).any()
    assert accounted_steps(training.engine) == 1


def test_secure_mode_refuses_seed() -> None:
    with pytest.raises(InvalidFieldError, match="seed must be None when secure_mode=True"):
        DpSgdConfig(noise_multiplier=1.0, seed=7)
    engine = CsprngPrivacyEngine(accountant="rdp")
    model = lora_tinylm()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 2)),
                                         batch_size=2)
    with pytest.raises(InvalidFieldError, match="noise_generator must be None in secure mode"):
        engine.make_private(module=PerExampleLoss(model), optimizer=opt, data_loader=loader,
                            noise_multiplier=1.0, max_grad_norm=1.0,
                            noise_generator=torch.Generator().manual_seed(0))


def test_insecure_mode_warns() -> None:
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=4, secure_mode=False, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_private_training(lora_tinylm(), token_data(8, 8), cfg)
    assert any(issubclass(w.category, InsecureRandomnessWarning) for w in caught)


def test_config_collects_problems() -> None:
    with pytest.raises(InvalidFieldError, match="noise_multiplier must be set exactly"):
        DpSgdConfig()
    with pytest.raises(InvalidFieldError, match="batch_size must be >= 1"):
        DpSgdConfig(noise_multiplier=1.0, batch_size=0)
    with pytest.raises(InvalidFieldError, match="delta must be in"):
        DpSgdConfig(noise_multiplier=1.0, delta=0.0)
