"""The organization's DP-SGD (Opacus) as the pipeline under audit: trainers and the hook factory.

Every trainer here calls :func:`gt_secure.organization.dp_sgd.train_dp_sgd_texts`: Poisson
sampling, per-example clipping to ``max_grad_norm``, Gaussian noise ``N(0, (z C)^2)``, Opacus's
accountant hook, and the claim from the ledger's :func:`~gt_secure.ledger.compute_epsilon`.

Audited parameters (``target``): ``"full"`` (default) trains every weight of the TinyLM except the
RMSNorm gains (Opacus has no per-example gradient for ``LlamaRMSNorm``); ``"lora"`` trains the
organization's LoRA adapter. Measured (docs/benchmarks.md, "## Audit"): with the noise off, the
LoRA r=2 adapter of the 0.46M TinyLM memorises too little for a strong audit, the full fine-tune
separates the canaries almost perfectly. The DP guarantee does not depend on which parameters
train, so the full fine-tune audits the same mechanism with the strongest memorisation.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gt_secure.audit.finetune import TrainFn
from gt_secure.audit.hooks import DPTrainingHook
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import DpSgdMechanism, compute_epsilon
from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd, train_dp_sgd_texts
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from gt_secure.update.layout import LoraSpec
from gt_secure.update.lora import attach_lora

Target = Literal["full", "lora"]
# Nominal audit run: ~64 examples at B=16 (q=1/4 or 1/3), 6 epochs; epsilon 1 at delta 1e-5.
AUDIT_DP_SGD = DpSgdConfig(target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0, batch_size=16,
                           epochs=6, lr=1e-2, max_length=64, secure_mode=False, seed=0)


def trainable_copy(base: PreTrainedModel, target: Target = "full",
                   lora: LoraSpec | None = None) -> nn.Module:
    """A copy of ``base`` with the audited parameters trainable (see the module docstring)."""
    if target == "lora":
        return attach_lora(copy.deepcopy(base), lora)
    if target != "full":
        raise InvalidFieldError("target", target, "'full' or 'lora'")
    model = copy.deepcopy(base)
    for name, param in model.named_parameters():
        param.requires_grad = "norm" not in name
    return model


def with_noise(cfg: DpSgdConfig, noise_multiplier: float,
               max_grad_norm: float | None = None) -> DpSgdConfig:
    """``cfg`` with an explicit noise multiplier (and clip norm), target epsilon cleared."""
    update: dict[str, Any] = {"noise_multiplier": noise_multiplier, "target_epsilon": None}
    if max_grad_norm is not None:
        update["max_grad_norm"] = max_grad_norm
    return DpSgdConfig.model_validate({**cfg.model_dump(), **update})


def dp_sgd_trainer(base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: DpSgdConfig,
                   *, target: Target = "full", lora: LoraSpec | None = None) -> TrainFn:
    """``train(texts) -> model``: DP-SGD (Opacus, ``cfg``) on a fresh copy of ``base``.

    A seeded (``secure_mode=False``) config makes the audit reproducible; its
    ``InsecureRandomnessWarning`` is silenced here (the audit tests the mechanism, not the RNG),
    as is Opacus's RDP-order warning for a (planted) zero noise multiplier.
    """

    def train(texts: Sequence[str]) -> nn.Module:
        model: Any = trainable_copy(base, target, lora)  # train_dp_sgd needs only an HF LM
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRandomnessWarning)
            warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
            return train_dp_sgd_texts(model, tokenizer, texts, cfg).model

    return train


def claimed_epsilon(cfg: DpSgdConfig, n_examples: int) -> tuple[DpSgdMechanism, float]:
    """The mechanism a run of ``cfg`` on ``n_examples`` records, and its ledger epsilon."""
    mechanism = plan_dp_sgd(cfg, n_examples)
    return mechanism, compute_epsilon([mechanism], cfg.delta, cfg.accountant)


def dp_sgd_hook(base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, n_examples: int,
                cfg: DpSgdConfig = AUDIT_DP_SGD, *, target: Target = "full",
                lora: LoraSpec | None = None,
                trainer: Callable[[DpSgdConfig], TrainFn] | None = None) -> DPTrainingHook:
    """A :class:`DPTrainingHook` for the organization's DP-SGD on ``n_examples`` texts.

    The nominal noise multiplier is ``cfg``'s (solved from its target epsilon if needed); the
    claim is the ledger accountant's epsilon of that run. ``make_train(z)`` keeps everything but
    the noise, and its ``train`` refuses data whose size would change the sample rate or steps
    (the claim would then not describe the run). ``trainer`` replaces :func:`dp_sgd_trainer`
    (e.g. to plant a bug).
    """
    nominal, epsilon = claimed_epsilon(cfg, n_examples)
    build = trainer or (lambda c: dp_sgd_trainer(base, tokenizer, c, target=target, lora=lora))

    def make_train(noise_multiplier: float) -> TrainFn:
        run_cfg = with_noise(cfg, noise_multiplier)
        train = build(run_cfg)

        def checked(texts: Sequence[str]) -> nn.Module:
            ran = plan_dp_sgd(run_cfg, len(texts))
            if (ran.sample_rate, ran.steps) != (nominal.sample_rate, nominal.steps):
                raise InvalidFieldError("len(texts)", len(texts), f"a size that keeps "
                                        f"sample_rate={nominal.sample_rate:.4g} and "
                                        f"steps={nominal.steps} (the claim's plan)")
            return train(texts)

        return checked

    return DPTrainingHook(make_train=make_train, noise_multiplier=nominal.noise_multiplier,
                          claimed_epsilon=epsilon, delta=cfg.delta)
