"""Batched LoRA adapters: equal to the sequential PEFT path; DP-SGD gradients vs references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gt_secure.data.families import org_records
from gt_secure.provider.adapter import _base, fresh_lora
from gt_secure.update import FinetuneConfig, LoraSpec, finetune_lora, lora_state
from gt_secure.update.batched import BatchedDp, StackedAdapters, _example_nll, train_adapters

CFG = FinetuneConfig(steps=4, batch_size=4, lr=3e-3, seed=0, max_length=40)
CPU = torch.device("cpu")


@pytest.mark.parametrize("freeze_a", [True, False])
def test_batched_adapters_equal_sequential_finetunes(freeze_a: bool) -> None:
    spec = LoraSpec(freeze_a=freeze_a)
    texts = [org_records("bank", "train", 24), org_records("law", "train", 16)]
    base, tok = _base("tinylm")
    got = train_adapters(base, tok, texts, [5, 7], CFG, spec, checkpoints=[2], device=CPU)
    for j, (tx, seed) in enumerate(zip(texts, [5, 7], strict=True)):
        model, init, layout, _ = fresh_lora("tinylm", spec)
        snaps: dict[int, np.ndarray] = {}

        def snap(step: int, _loss: float, model=model, init=init, snaps=snaps) -> None:  # type: ignore[no-untyped-def]
            snaps[step] = lora_state(model) - init

        finetune_lora(model, tok, tx, CFG.model_copy(update={"seed": seed}), on_step=snap)
        assert got[4].shape[1] == layout.size == (1024 if freeze_a else 2048)
        for step in (2, 4):
            a, b = got[step][j], snaps[step]
            assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.9999
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("freeze_a", [True, False])
def test_per_example_gradients_match_autograd_one_example_at_a_time(freeze_a: bool) -> None:
    base, tok = _base("tinylm")
    stacked = StackedAdapters(base, LoraSpec(freeze_a=freeze_a), 2)
    with torch.no_grad():  # move off the B=0 init so A's gradient is not zero
        for _, p in stacked.trained():
            p.add_(0.01 * torch.randn_like(p))
    from gt_secure.models.scoring import encode

    batch = encode(tok, org_records("hospital", "train", 6), max_length=32)  # (2 adapters x 3)
    for layer in stacked.layers.values():
        layer.capture = True
    total, count = _example_nll(stacked.model, batch)
    (total / count).sum().backward()
    layer = next(iter(stacked.layers.values()))
    per = layer.per_example_grads(3)
    for layer_ in stacked.layers.values():
        layer_.capture = False
    for i in range(6):  # reference: backward of example i alone, read the summed .grad
        for _, p in stacked.trained():
            p.grad = None
        total, count = _example_nll(stacked.model, {k: v for k, v in batch.items()})
        (total[i] / count[i]).backward()
        k, row = divmod(i, 3)
        torch.testing.assert_close(per["b"][k, row], layer.b.grad[k], rtol=1e-4, atol=1e-7)
        if freeze_a:
            assert "a" not in per
        else:
            torch.testing.assert_close(per["a"][k, row], layer.a.grad[k], rtol=1e-4, atol=1e-7)


def test_dp_step_without_noise_or_clipping_is_the_mean_gradient_step() -> None:
    """q=1, sigma=0, a huge clip norm: DP-SGD reduces to a full-batch step on the mean loss."""
    base, tok = _base("tinylm")
    texts = [org_records("law", "train", 8)]
    dp = BatchedDp(sample_rate=1.0, noise_multiplier=0.0, clip_norm=1e6)
    one = FinetuneConfig(steps=1, batch_size=8, lr=1e-3, max_length=40)
    got = train_adapters(base, tok, texts, [0], one, LoraSpec(freeze_a=True), dp=dp, device=CPU)
    model, init, _, _ = fresh_lora("tinylm", LoraSpec(freeze_a=True))
    from gt_secure.models.scoring import encode
    from gt_secure.organization._opacus import PerExampleLoss

    data = encode(tok, texts[0], max_length=40)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                            weight_decay=0.0)
    PerExampleLoss(model)(**data).mean().backward()
    opt.step()
    np.testing.assert_allclose(got[1][0], lora_state(model) - init, atol=1e-6)


def test_dp_noise_is_drawn_for_every_coordinate_and_adapter() -> None:
    """With no example sampled (q ~ 0) the gradient is pure Gaussian noise: Adam's first step
    moves every coordinate by lr (none is left noiseless), and the adapters' noise differs."""
    base, tok = _base("tinylm")
    texts = [org_records("law", "train", 8)] * 2
    dp = BatchedDp(sample_rate=1e-9, noise_multiplier=1.0, clip_norm=1.0)
    one = FinetuneConfig(steps=1, batch_size=8, lr=1e-3, max_length=40)
    got = train_adapters(base, tok, texts, [0, 1], one, LoraSpec(freeze_a=True), dp=dp,
                         device=CPU)[1]
    np.testing.assert_allclose(np.abs(got), 1e-3, rtol=1e-3)  # Adam's first step: lr * sign
    assert not np.allclose(got[0], got[1])  # each adapter draws its own noise
