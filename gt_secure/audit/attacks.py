"""Membership-inference attacks on causal language models.

Every attack implements one interface, :meth:`MembershipAttack.score`, returning one float per
sample where **higher means more likely a training member**.

References
----------
- Loss threshold: Yeom et al., "Privacy Risk in Machine Learning", CSF 2018.
- zlib calibration: Carlini et al., "Extracting Training Data from Large Language Models",
  USENIX Security 2021 (ratio of log-perplexity to zlib entropy).
- Min-K% Prob: Shi et al., "Detecting Pretraining Data from Large Language Models", ICLR 2024.
- Reference models, offline: Carlini et al., "Membership Inference Attacks From First
  Principles" (LiRA, offline variant), S&P 2022.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from torch import nn

from gt_secure.audit.tokens import Sample, Tokenizer, encode, sample_bytes, token_logprobs
from gt_secure.errors import InvalidFieldError


class MembershipAttack(ABC):
    """Score samples by how likely they were in ``model``'s training data (higher = member).

    Scoring is batched, runs under ``torch.no_grad`` on the model's own device, and is
    deterministic for a fixed model.
    """

    name: ClassVar[str]

    def __init__(self, tokenizer: Tokenizer | None = None, *, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise InvalidFieldError("batch_size", batch_size, ">= 1")
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def logprobs(self, model: nn.Module, samples: Sequence[Sample]) -> list[np.ndarray]:
        """Per-token next-token log-probabilities of each sample."""
        ids = [encode(s, self.tokenizer) for s in samples]
        return token_logprobs(model, ids, batch_size=self.batch_size)

    def score(self, model: nn.Module, samples: Sequence[Sample]) -> np.ndarray:
        """Membership score of each sample, shape ``(len(samples),)``, float64."""
        if len(samples) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = self._score(model, samples, self.logprobs(model, samples))
        return np.asarray(scores, dtype=np.float64).reshape(len(samples))

    @abstractmethod
    def _score(
        self, model: nn.Module, samples: Sequence[Sample], logprobs: list[np.ndarray]
    ) -> np.ndarray:
        """Turn per-token log-probabilities into membership scores."""


class LossAttack(MembershipAttack):
    """Negative mean token loss (= mean token log-probability)."""

    name = "loss"

    def _score(
        self, model: nn.Module, samples: Sequence[Sample], logprobs: list[np.ndarray]
    ) -> np.ndarray:
        return np.array([lp.mean() for lp in logprobs])


class ZlibAttack(MembershipAttack):
    """Mean token loss divided by the zlib-compressed length in bytes, negated.

    Text that is intrinsically easy (repetitive, low entropy) has low loss everywhere; dividing
    by its zlib entropy calibrates for that.
    """

    name = "zlib"

    def _score(
        self, model: nn.Module, samples: Sequence[Sample], logprobs: list[np.ndarray]
    ) -> np.ndarray:
        entropy = np.array(
            [len(zlib.compress(sample_bytes(s, self.tokenizer))) for s in samples], dtype=float
        )
        loss = np.array([-lp.mean() for lp in logprobs])
        return -loss / entropy


class MinKProbAttack(MembershipAttack):
    """Mean of the lowest ``k`` fraction of token log-probabilities (Min-K% Prob)."""

    name = "min_k"

    def __init__(
        self, tokenizer: Tokenizer | None = None, *, k: float = 0.2, batch_size: int = 16
    ) -> None:
        super().__init__(tokenizer, batch_size=batch_size)
        if not 0.0 < k <= 1.0:
            raise InvalidFieldError("k", k, "in (0, 1]")
        self.k = k

    def _score(
        self, model: nn.Module, samples: Sequence[Sample], logprobs: list[np.ndarray]
    ) -> np.ndarray:
        out = []
        for lp in logprobs:
            count = max(1, int(np.ceil(self.k * lp.size)))
            out.append(np.sort(lp)[:count].mean())
        return np.array(out)


class ReferenceAttack(MembershipAttack):
    """Offline LiRA: calibrate the target's log-likelihood by reference ("out") models.

    The auditor trains the reference models on public data that excludes the audited samples.
    For sample ``x`` with target statistic ``t(x)`` (mean token log-probability) and reference
    statistics ``r_1(x)..r_n(x)``, the score is the one-sided z-score
    ``(t(x) - mean_j r_j(x)) / s(x)``, a monotone transform of LiRA's offline likelihood test.
    ``s(x)`` is the per-sample standard deviation when there are at least
    ``per_sample_std_min`` references (floored at ``std_floor``) and the global one otherwise;
    with one reference it is 1, i.e. the difference attack of Carlini et al. 2021.
    """

    name = "reference"

    def __init__(
        self,
        reference_models: Sequence[nn.Module],
        tokenizer: Tokenizer | None = None,
        *,
        per_sample_std_min: int = 4,
        std_floor: float = 1e-3,
        batch_size: int = 16,
    ) -> None:
        super().__init__(tokenizer, batch_size=batch_size)
        if len(reference_models) == 0:
            raise InvalidFieldError("reference_models", [], "a non-empty sequence of models")
        if std_floor <= 0:
            raise InvalidFieldError("std_floor", std_floor, "> 0")
        self.reference_models = list(reference_models)
        self.per_sample_std_min = per_sample_std_min
        self.std_floor = std_floor

    def _score(
        self, model: nn.Module, samples: Sequence[Sample], logprobs: list[np.ndarray]
    ) -> np.ndarray:
        target = np.array([lp.mean() for lp in logprobs])
        refs = np.stack(
            [[lp.mean() for lp in self.logprobs(ref, samples)] for ref in self.reference_models],
            axis=1,
        )
        mean = refs.mean(axis=1)
        n_refs = refs.shape[1]
        if n_refs >= self.per_sample_std_min:
            std = np.maximum(refs.std(axis=1, ddof=1), self.std_floor)
        elif n_refs >= 2:
            std = np.full_like(mean, max(float((refs - mean[:, None]).std(ddof=1)), self.std_floor))
        else:
            std = np.ones_like(mean)
        return (target - mean) / std


ATTACKS: dict[str, type[MembershipAttack]] = {
    cls.name: cls for cls in (LossAttack, ZlibAttack, MinKProbAttack)
}


def make_attack(name: str, tokenizer: Tokenizer | None = None) -> MembershipAttack:
    """Build a reference-free attack by name (one of :data:`ATTACKS`)."""
    if name not in ATTACKS:
        raise InvalidFieldError("attack", name, f"one of {sorted(ATTACKS)}")
    return ATTACKS[name](tokenizer)
