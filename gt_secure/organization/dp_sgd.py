"""DP-SGD LoRA fine-tuning of the TinyLM with Opacus (example-level DP).

DP-SGD (Abadi et al. 2016, arXiv:1607.00133): Poisson-sample each example with probability
``q``, clip every per-example gradient to L2 norm ``C``, add N(0, (z C)^2) to their sum, divide
by the expected batch size, take an optimizer step; ``steps`` such steps are one
:class:`DpSgdMechanism` (accounted with RDP, Mironov 2017, or PRV, Gopi et al. 2021, through the
ledger's :func:`compute_epsilon`). Only the LoRA factors (PEFT) are trainable, so per-example
gradients are needed only for ``lora_A``/``lora_B`` linears.

Per-example gradients use Opacus's ``grad_sample_mode="hooks"`` (default: measured fastest here,
about 1.05x a non-private step; see ``bench/dp_overhead.py`` and docs/benchmarks.md);
``"functorch"`` and ``"ew"`` (expanded weights) also match the microbatch reference but are slower.
``"ghost"`` clipping is not offered: it needs a ``criterion(logits, target)`` API and saves memory
only for large layers, while the LoRA factors here are tiny. The sample rate is Opacus's:
``q = 1 / ceil(N / B)`` for ``N`` examples and expected batch size ``B``.
"""

from __future__ import annotations

import copy
import functools
import math
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from opacus import PrivacyEngine
from opacus.grad_sample import AbstractGradSampleModule
from peft import PeftModel
from pydantic import field_validator, model_validator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import (
    DpSgdMechanism,
    noise_multiplier_for,
)
from gt_secure.models.scoring import encode
from gt_secure.organization._opacus import (
    CsprngPrivacyEngine,
    PerExampleLoss,
    plain_privacy_engine,
)
from gt_secure.organization.calibration import NoiseCalibration
from gt_secure.organization.secure_rng import warn_insecure
from gt_secure.update.layout import LoraSpec
from gt_secure.update.lora import attach_lora


class DpSgdConfig(NoiseCalibration):
    """DP-SGD settings: give exactly one of ``noise_multiplier`` and ``target_epsilon``.

    ``batch_size`` is the expected (Poisson) batch size; ``steps``, when set, replaces
    ``epochs * ceil(N / batch_size)``. ``secure_mode`` draws sampling and noise from the OS
    CSPRNG and refuses ``seed``; without it a ``seed`` (or a random one) drives a PRNG.
    """

    max_grad_norm: float = 1.0
    batch_size: int = 16
    epochs: int = 1
    steps: int | None = None
    lr: float = 3e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    grad_sample_mode: Literal["hooks", "functorch", "ew"] = "hooks"
    max_length: int = 128
    seed: int | None = None

    @field_validator("max_grad_norm", "lr")
    @classmethod
    def _check_positive(cls, value: float, info: Any) -> float:
        if not (math.isfinite(value) and value > 0):
            raise InvalidFieldError(info.field_name, value, "finite and > 0")
        return value

    @field_validator("batch_size", "epochs", "steps", "max_length")
    @classmethod
    def _check_count(cls, value: int | None, info: Any) -> int | None:
        if value is not None and value < 1:
            raise InvalidFieldError(info.field_name, value, ">= 1")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> DpSgdConfig:
        if self.secure_mode and self.seed is not None:
            raise InvalidFieldError("seed", self.seed, "None when secure_mode=True (a CSPRNG "
                                    "cannot be seeded; a seeded PRNG makes the noise predictable)")
        return self


def sampling_plan(cfg: DpSgdConfig, n_examples: int) -> tuple[float, int]:
    """``(sample_rate, steps)`` for ``n_examples`` examples, as Opacus's Poisson loader runs."""
    if n_examples < 1:
        raise InvalidFieldError("n_examples", n_examples, ">= 1")
    steps_per_epoch = math.ceil(n_examples / cfg.batch_size)
    return 1.0 / steps_per_epoch, cfg.steps or cfg.epochs * steps_per_epoch


@functools.lru_cache(maxsize=64)
def plan_dp_sgd(cfg: DpSgdConfig, n_examples: int) -> DpSgdMechanism:
    """The mechanism a run on ``n_examples`` will be (a target epsilon is solved for here)."""
    rate, steps = sampling_plan(cfg, n_examples)
    z = cfg.noise_multiplier
    if z is None:
        z = noise_multiplier_for(cfg.target_epsilon or 0.0, cfg.delta, rate, steps,
                                 accountant=cfg.accountant)
    return DpSgdMechanism(sample_rate=rate, noise_multiplier=z, steps=steps,
                          clip_norm=cfg.max_grad_norm)


@dataclass
class PrivateTraining:
    """An Opacus-wrapped LoRA model, its DP optimizer and Poisson loader, and the plan."""

    model: PeftModel
    module: AbstractGradSampleModule  # wraps PerExampleLoss(model): forward -> (B,)
    optimizer: Any  # opacus DPOptimizer (or its CSPRNG subclass)
    loader: DataLoader
    engine: PrivacyEngine
    mechanism: DpSgdMechanism


@dataclass(frozen=True)
class DpSgdResult:
    """The trained model (hooks removed), the mechanism run, its epsilon and step losses."""

    model: PeftModel
    mechanism: DpSgdMechanism
    epsilon: float
    losses: tuple[float, ...]


def make_private_training(model: PeftModel, data: Mapping[str, torch.Tensor],
                          cfg: DpSgdConfig) -> PrivateTraining:
    """Wrap ``model`` with Opacus for DP-SGD on ``data``: input_ids/attention_mask/labels (N, T)."""
    dataset = TensorDataset(data["input_ids"], data["attention_mask"], data["labels"])
    mechanism = plan_dp_sgd(cfg, len(dataset))
    if cfg.secure_mode:
        engine: PrivacyEngine = CsprngPrivacyEngine(accountant=cfg.accountant)
        sample_gen = noise_gen = None
    else:
        warn_insecure("DP-SGD")
        engine = plain_privacy_engine(cfg.accountant)
        seed = cfg.seed if cfg.seed is not None else secrets.randbits(63)
        sample_gen = torch.Generator().manual_seed(seed)
        noise_gen = torch.Generator().manual_seed(seed + 1)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, generator=sample_gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = (torch.optim.Adam(params, lr=cfg.lr) if cfg.optimizer == "adam"
                                  else torch.optim.SGD(params, lr=cfg.lr))
    module, optimizer, dp_loader = engine.make_private(
        module=PerExampleLoss(model), optimizer=opt, data_loader=loader,
        noise_multiplier=mechanism.noise_multiplier, max_grad_norm=cfg.max_grad_norm,
        poisson_sampling=True, grad_sample_mode=cfg.grad_sample_mode, noise_generator=noise_gen)
    if not math.isclose(1.0 / len(dp_loader), mechanism.sample_rate):
        raise InvalidFieldError("sample_rate", 1.0 / len(dp_loader),
                                f"{mechanism.sample_rate} as planned")
    return PrivateTraining(model, module, optimizer, dp_loader, engine, mechanism)


def dp_step(training: PrivateTraining, batch: Sequence[torch.Tensor],
            before_step: Callable[[PrivateTraining], None] | None = None) -> float:
    """One DP-SGD step on ``batch`` = (input_ids, attention_mask, labels), each (B, T).

    Returns the mean per-example loss (NaN for an empty batch, which still adds noise).
    ``before_step(training)``, if given, runs once every ``p.grad_sample`` (B, *p.shape) is set
    and before the clip-noise-step (the white-box audit appends its gradient canaries there).
    """
    ids, mask, labels = batch
    training.optimizer.zero_grad(set_to_none=True)
    if len(ids) == 0:  # Poisson sampling can draw no example: the step still adds noise
        for p in training.optimizer.params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)  # (0, *p.shape)
        if before_step is not None:
            before_step(training)
        training.optimizer.step()
        return math.nan
    width = max(int(mask.sum(dim=1).max()), 2)  # drop trailing padding: (B, width)
    with warnings.catch_warnings():  # frozen embeddings: layer-0 LoRA inputs need no grad
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        losses = training.module(ids[:, :width], mask[:, :width], labels[:, :width])  # (B,)
        loss = losses.sum() / max(len(losses), 1)  # Opacus "mean": grad_sample = d loss_i
        loss.backward()
    if before_step is not None:
        before_step(training)
    training.optimizer.step()
    return float(loss.detach())


def _batches(loader: DataLoader, steps: int) -> Iterator[Sequence[torch.Tensor]]:
    done = 0
    while done < steps:
        for batch in loader:
            if done == steps:
                return
            done += 1
            yield batch


def accounted_steps(engine: PrivacyEngine) -> int:
    """Noisy steps recorded by the engine's accountant hook."""
    return sum(int(count) for _, _, count in engine.accountant.history)


def train_dp_sgd(model: PeftModel, data: Mapping[str, torch.Tensor], cfg: DpSgdConfig,
                 on_step: Callable[[int, float], None] | None = None,
                 before_step: Callable[[PrivateTraining], None] | None = None) -> DpSgdResult:
    """Train the LoRA factors of ``model`` with DP-SGD; return it with the mechanism it ran.

    ``before_step`` is passed to every :func:`dp_step`.
    """
    training = make_private_training(model, data, cfg)
    mechanism = training.mechanism
    model.train()
    losses: list[float] = []
    for step, batch in enumerate(_batches(training.loader, mechanism.steps), start=1):
        losses.append(dp_step(training, batch, before_step))
        if on_step is not None:
            on_step(step, losses[-1])
    counted = accounted_steps(training.engine)
    if counted != mechanism.steps:
        raise InvalidFieldError("steps", counted, f"{mechanism.steps}: the accountant must count "
                                "every planned noisy step, else the recorded epsilon is wrong")
    # no noise: no guarantee (Opacus's PRV accountant overflows on it instead of saying so)
    epsilon = (math.inf if mechanism.noise_multiplier == 0
               else float(training.engine.get_epsilon(cfg.delta)))
    training.module._close()  # remove Opacus hooks and grad_sample attributes
    model.eval()
    return DpSgdResult(model, mechanism, epsilon, tuple(losses))


def train_dp_sgd_texts(model: PeftModel, tokenizer: PreTrainedTokenizerBase,
                       texts: Sequence[str], cfg: DpSgdConfig) -> DpSgdResult:
    """Tokenize ``texts`` (one example each) and run :func:`train_dp_sgd`."""
    if not texts:
        raise InvalidFieldError("texts", [], "non-empty")
    return train_dp_sgd(model, encode(tokenizer, texts, max_length=cfg.max_length), cfg)


def dp_trainer(base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: DpSgdConfig,
               lora: LoraSpec | None = None) -> Callable[[Sequence[str]], nn.Module]:
    """A ``train(texts) -> model`` callable (the audit's ``TrainFn``) on a LoRA copy of ``base``.

    The epsilon it claims for ``texts`` is ``compute_epsilon([plan_dp_sgd(cfg, len(texts))],
    cfg.delta, cfg.accountant)``.
    """

    def train(texts: Sequence[str]) -> nn.Module:
        model = attach_lora(copy.deepcopy(base), lora)
        return train_dp_sgd_texts(model, tokenizer, texts, cfg).model

    return train
