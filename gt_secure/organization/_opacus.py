"""Opacus pieces for DP-SGD on a PEFT causal LM: per-example loss, and a CSPRNG privacy engine.

:class:`CsprngPrivacyEngine` is Opacus's ``PrivacyEngine`` with its two random stages replaced,
the design of Opacus's ``secure_mode`` without ``torchcsprng`` (see :mod:`.secure_rng`):
Poisson sampling by :class:`CsprngPoissonSampler` and Gaussian noise by
:class:`CsprngDPOptimizer`. Clipping, scaling and the accountant hook stay Opacus's own
(``DPOptimizer.pre_step``: clip -> add_noise -> scale -> step_hook), so a step cannot be taken
without being accounted.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn
from torch.utils.data import DataLoader

from gt_secure.errors import InvalidFieldError
from gt_secure.organization.secure_rng import csprng_normal, csprng_uniform

OPACUS_INSECURE_WARNING = "Secure RNG turned off"


class PerExampleLoss(nn.Module):
    """Wrap a causal LM so that ``forward`` returns each example's mean token NLL: (B,).

    Hugging Face's ``.loss`` averages over every token of the batch, so one example's gradient
    would depend on the other examples' lengths; DP-SGD needs per-example losses.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits = logits[:, :-1]  # (B, T-1, V)
        targets = labels[:, 1:]  # (B, T-1)
        nll = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
            ignore_index=-100, reduction="none").view(targets.shape)  # (B, T-1)
        counts = (targets != -100).sum(dim=1).clamp(min=1)  # (B,)
        return nll.sum(dim=1) / counts


class CsprngPoissonSampler(UniformWithReplacementSampler):
    """Poisson sampling (each example independently with probability q) from the OS CSPRNG."""

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = csprng_uniform(self.num_samples) < self.sample_rate  # (N,)
            yield np.flatnonzero(mask).tolist()


class CsprngDPOptimizer(DPOptimizer):
    """Opacus ``DPOptimizer`` whose Gaussian noise comes from the OS CSPRNG (hardened)."""

    def add_noise(self) -> None:
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            summed = p.summed_grad  # (*p.shape)
            noise = torch.from_numpy(csprng_normal(summed.numel(), std)).view_as(summed)
            p.grad = (summed + noise.to(summed)).view_as(p)
            _mark_as_processed(p.summed_grad)


class CsprngPrivacyEngine(PrivacyEngine):
    """``PrivacyEngine`` drawing Poisson masks and noise from the OS CSPRNG; refuses seeds."""

    def __init__(self, *, accountant: str) -> None:
        with warnings.catch_warnings():  # Opacus warns "Secure RNG turned off": not true here
            warnings.filterwarnings("ignore", message=OPACUS_INSECURE_WARNING)
            super().__init__(accountant=accountant, secure_mode=False)

    def _prepare_optimizer(self, *, optimizer: torch.optim.Optimizer, noise_multiplier: float,
                           max_grad_norm: Any, expected_batch_size: int,
                           loss_reduction: str = "mean", distributed: bool = False,
                           clipping: str = "flat", noise_generator: Any = None,
                           grad_sample_mode: str = "hooks", **kwargs: Any) -> DPOptimizer:
        if noise_generator is not None:
            raise InvalidFieldError("noise_generator", type(noise_generator).__name__,
                                    "None in secure mode (a seeded PRNG is predictable)")
        if distributed or clipping != "flat" or "ghost" in grad_sample_mode:
            raise InvalidFieldError("grad_sample_mode", grad_sample_mode,
                                    "non-distributed, flat clipping, not ghost, in secure mode")
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        return CsprngDPOptimizer(optimizer=optimizer, noise_multiplier=noise_multiplier,
                                 max_grad_norm=max_grad_norm,
                                 expected_batch_size=expected_batch_size,
                                 loss_reduction=loss_reduction, secure_mode=True, **kwargs)

    def _prepare_data_loader(self, data_loader: DataLoader, *, poisson_sampling: bool,
                             distributed: bool, batch_first: bool = True,
                             rand_on_empty: bool = False) -> DataLoader:
        if not poisson_sampling or distributed:
            raise InvalidFieldError("poisson_sampling", poisson_sampling,
                                    "True (and not distributed) in secure mode")
        # Reuse Opacus's empty-batch-safe collate, swap its sampler for the CSPRNG one.
        reference = DPDataLoader.from_data_loader(data_loader, batch_first=batch_first,
                                                  rand_on_empty=rand_on_empty)
        sampler = CsprngPoissonSampler(num_samples=len(reference.dataset),  # type: ignore[arg-type]
                                       sample_rate=reference.sample_rate)
        return DataLoader(reference.dataset, batch_sampler=sampler,
                          collate_fn=reference.collate_fn)


def plain_privacy_engine(accountant: str) -> PrivacyEngine:
    """Opacus's engine with its PRNG (Opacus's own warning is replaced by ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=OPACUS_INSECURE_WARNING)
        return PrivacyEngine(accountant=accountant, secure_mode=False)
