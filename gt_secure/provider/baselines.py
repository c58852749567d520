"""Input-blind and simple baselines for the translator, in the translator's interface."""

from __future__ import annotations

import numpy as np

from gt_secure.provider.shadow import ShadowPairs
from gt_secure.update import UpdateLayout, UpdateVector


class MeanUpdate:
    """The mean shadow LLM update: ignores its input (the trap the paper's public code fell in)."""

    def __init__(self, pairs: ShadowPairs) -> None:
        self.llm_layout = pairs.llm_layout
        self.tiny_layout = pairs.tiny_layout
        self.mean = pairs.llm.reshape(len(pairs.llm), -1).mean(0)  # (D_llm_tokens,)

    def translate(self, update: UpdateVector) -> UpdateVector:
        update.check_compatible(self.tiny_layout)
        tokens = self.mean.reshape(self.llm_layout.n_layers, self.llm_layout.token_dim)
        return UpdateVector.from_layer_tokens(self.llm_layout, tokens.astype(np.float32))


class RidgeMap:
    """Linear map from the standardised TinyLM update to the LLM update, ridge-regularised.

    Solved in the dual (P x P) since P << D; ``alpha`` is picked by leave-one-subset-out error.
    """

    def __init__(
        self, pairs: ShadowPairs, alphas: tuple[float, ...] = (1e-2, 1e-1, 1, 10, 100, 1e3, 1e4)
    ) -> None:
        self.tiny_layout: UpdateLayout = pairs.tiny_layout
        self.llm_layout: UpdateLayout = pairs.llm_layout
        x = pairs.tiny.reshape(len(pairs.tiny), -1).astype(np.float64)  # (P, Dt)
        y = pairs.llm.reshape(len(pairs.llm), -1).astype(np.float64)  # (P, Dl)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-12
        self.y_mean = y.mean(0)
        self.alpha = self._select_alpha(
            (x - self.x_mean) / self.x_std, y - self.y_mean, pairs.subset, alphas
        )
        self._fit((x - self.x_mean) / self.x_std, y - self.y_mean, self.alpha)

    def _fit(self, xz: np.ndarray, yc: np.ndarray, alpha: float) -> None:
        gram = xz @ xz.T  # (P, P)
        dual = np.linalg.solve(gram + alpha * np.eye(len(gram)), yc)  # (P, Dl)
        self.weights = xz.T @ dual  # (Dt, Dl)

    def _select_alpha(
        self, xz: np.ndarray, yc: np.ndarray, subset: np.ndarray, alphas: tuple[float, ...]
    ) -> float:
        best, best_err = alphas[0], np.inf
        groups = np.unique(subset)
        for alpha in alphas:
            err = 0.0
            for g in groups:
                held = subset == g
                self._fit(xz[~held], yc[~held], alpha)
                err += float(np.sum((xz[held] @ self.weights - yc[held]) ** 2))
            if err < best_err:
                best, best_err = alpha, err
        return best

    def translate(self, update: UpdateVector) -> UpdateVector:
        update.check_compatible(self.tiny_layout)
        xz = (update.layer_tokens().reshape(-1) - self.x_mean) / self.x_std
        y = xz @ self.weights + self.y_mean
        tokens = y.reshape(self.llm_layout.n_layers, self.llm_layout.token_dim)
        return UpdateVector.from_layer_tokens(self.llm_layout, tokens.astype(np.float32))
