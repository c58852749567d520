"""Baselines for the translator, in the translator's interface (TinyLM update -> LLM update)."""

from __future__ import annotations

import numpy as np
import torch

from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.translator import ridge_weights, select_alpha
from gt_secure.update import UpdateLayout, UpdateVector


class _Baseline:
    def __init__(self, pairs: ShadowPairs) -> None:
        self.tiny_layout: UpdateLayout = pairs.tiny_layout
        self.llm_layout: UpdateLayout = pairs.llm_layout

    def _out(self, flat: np.ndarray) -> UpdateVector:
        tokens = flat.reshape(self.llm_layout.n_layers, self.llm_layout.token_dim)
        return UpdateVector.from_layer_tokens(self.llm_layout, tokens.astype(np.float32))

    def _in(self, update: UpdateVector) -> np.ndarray:
        update.check_compatible(self.tiny_layout)
        return update.layer_tokens().reshape(-1).astype(np.float64)


class MeanUpdate(_Baseline):
    """The mean shadow LLM update: ignores its input (the trap the paper's public code fell in)."""

    def __init__(self, pairs: ShadowPairs) -> None:
        super().__init__(pairs)
        self.mean = pairs.llm.reshape(len(pairs.llm), -1).mean(0)  # (D_llm,)

    def translate(self, update: UpdateVector) -> UpdateVector:
        self._in(update)
        return self._out(self.mean)


class FamilyMean(_Baseline):
    """Oracle: the mean LLM update of the shadow subsets dominated by the organization's family.

    Told the family by the benchmark (the provider is not), it is the best a translator that only
    recognises the family could do.
    """

    def __init__(self, pairs: ShadowPairs, family: int) -> None:
        super().__init__(pairs)
        mask = (pairs.family == family) & (pairs.orgs == 1)
        if not mask.any():
            mask = pairs.orgs == 1  # a held-out family: no same-family subsets exist
        self.mean = pairs.llm[mask].reshape(int(mask.sum()), -1).mean(0)

    def translate(self, update: UpdateVector) -> UpdateVector:
        self._in(update)
        return self._out(self.mean)


class KnnMap(_Baseline):
    """Mean LLM update of the k shadow pairs whose standardised TinyLM updates are nearest."""

    def __init__(self, pairs: ShadowPairs, k: int = 5) -> None:
        super().__init__(pairs)
        x = pairs.tiny.reshape(len(pairs.tiny), -1).astype(np.float64)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-12
        self.xz = (x - self.x_mean) / self.x_std
        self.y = pairs.llm.reshape(len(pairs.llm), -1)
        self.k = k

    def translate(self, update: UpdateVector) -> UpdateVector:
        xz = (self._in(update) - self.x_mean) / self.x_std
        nearest = np.argsort(((self.xz - xz) ** 2).sum(1))[: self.k]
        return self._out(self.y[nearest].mean(0))


class RidgeMap(_Baseline):
    """Linear map from the standardised TinyLM update to the LLM update, ridge-regularised.

    Solved in the dual (P x P) since P << D; ``alpha`` by 5-fold error over whole subsets.
    """

    def __init__(
        self, pairs: ShadowPairs, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    ) -> None:
        super().__init__(pairs)
        x = pairs.tiny.reshape(len(pairs.tiny), -1).astype(np.float64)  # (P, Dt)
        y = pairs.llm.reshape(len(pairs.llm), -1).astype(np.float64)  # (P, Dl)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-12
        self.y_mean = y.mean(0)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        xz = torch.from_numpy((x - self.x_mean) / self.x_std).to(device)
        yc = torch.from_numpy(y - self.y_mean).to(device)
        self.alpha = select_alpha(xz, yc, torch.from_numpy(pairs.subset).to(device), alphas)
        self.weights = ridge_weights(xz, yc, self.alpha).cpu().numpy()  # (Dt, Dl)

    def translate(self, update: UpdateVector) -> UpdateVector:
        xz = (self._in(update) - self.x_mean) / self.x_std
        return self._out(xz @ self.weights + self.y_mean)
