"""Trade-off curves of DP-SGD's composed Poisson-subsampled Gaussian, from dp-accounting's PLD.

For a fixed sample rate ``q`` and step count ``T``, the curves are indexed by the strength
``s = 1 / z`` (z the noise multiplier; ``s = 0`` is no release). dp-accounting's privacy loss
distribution (add-or-remove-one neighbours, pessimistic discretization: its ``delta(eps)`` is
never below the true one) gives the privacy profile ``delta(eps)``, and the profile gives the
curve (Dong, Roth & Su 2022, Proposition 2.12)::

    f(a) = sup_{eps >= 0} max(0, 1 - delta(eps) - e^eps a, e^-eps (1 - delta(eps) - a)).

The sup runs over a finite grid of epsilons, so the curve used is never above the true one:
a mechanism that is ``f``-DP is also DP for the curve used, and a rejection stays valid. The
curve is symmetric, so the inverse blow-up the one-run recursion needs is
``f^-1(1 - y) = f(1 - y) = sup_eps max(0, e^-eps (y - delta(eps)), 1 - delta(eps) - e^eps (1 -
y))``. For ``q = 1`` the curve is the Gaussian ``G_mu``, ``mu = sqrt(T) / z`` (tested).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from gt_secure.errors import InvalidFieldError

STRENGTH_LATTICE = 512  # curves are built at strengths k / 512, a strength rounded up to one
EPS_STEP = 0.01  # spacing of the epsilon grid of the sup up to 20, then 0.05 up to 64
DELTA_FLOOR = 1e-30  # the grid stops where the profile reaches this (a sup over fewer: smaller f)


@functools.lru_cache(maxsize=512)
def _pld(q: float, steps: int, noise: float) -> object:
    from gt_secure.ledger.accountant import PLD_DISCRETIZATION, _reference_pld_step

    if q == 1.0:  # T Gaussian steps are one Gaussian of std z / sqrt(T)
        from dp_accounting.pld import privacy_loss_distribution as pld

        return pld.from_gaussian_mechanism(standard_deviation=noise / math.sqrt(steps),
                                           value_discretization_interval=PLD_DISCRETIZATION)
    return _reference_pld_step(noise, q).self_compose(steps)


@functools.lru_cache(maxsize=512)
def privacy_profile(q: float, steps: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``(eps, delta(eps))`` on a grid of epsilons from 0 (:data:`EPS_STEP`), both (G,).

    The grid stops at the first epsilon whose delta is below :data:`DELTA_FLOOR`.
    """
    pld = _pld(q, steps, noise)
    eps = np.concatenate([np.arange(0.0, 20.0, EPS_STEP), np.arange(20.0, 64.0, 0.05)])  # (G0,)
    delta = np.asarray(pld.get_delta_for_epsilon(eps), dtype=np.float64)  # type: ignore[attr-defined]
    keep = int(np.argmax(delta < DELTA_FLOOR)) + 1 if (delta < DELTA_FLOOR).any() else len(eps)
    eps, delta = eps[:keep], delta[:keep]
    eps.setflags(write=False)
    delta.setflags(write=False)
    return eps, delta


@functools.lru_cache(maxsize=512)
def _exp_profile(q: float, steps: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eps, delta = privacy_profile(q, steps, noise)
    return np.exp(eps), np.exp(-eps), delta


def tradeoff(q: float, steps: int, noise: float, alpha: np.ndarray) -> np.ndarray:
    """The curve ``f(alpha)`` of T composed Poisson-subsampled Gaussian steps, (A,)."""
    eps, delta = privacy_profile(q, steps, noise)
    a = np.asarray(alpha, dtype=np.float64)[:, None]  # (A, 1)
    e = eps[None, :]  # (1, G)
    d = delta[None, :]
    f = np.maximum(1.0 - d - np.exp(e) * a, np.exp(-e) * (1.0 - d - a))  # (A, G)
    return np.maximum(f.max(axis=1), 0.0)


class SubsampledGaussianFamily:
    """Curves of ``steps`` Poisson-subsampled Gaussian steps at rate ``q``; strength ``1 / z``."""

    method = "fdp_one_run_subsampled_gaussian"

    def __init__(self, q: float, steps: int, max_strength: float = 4.0) -> None:
        if not 0.0 < q <= 1.0:
            raise InvalidFieldError("q", q, "in (0, 1]")
        if steps < 1:
            raise InvalidFieldError("steps", steps, ">= 1")
        if not max_strength > 0:
            raise InvalidFieldError("max_strength", max_strength, "> 0")
        self.q, self.steps, self.max_strength = q, steps, max_strength

    def inverse_blowup(self, strengths: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``f_s'(1 - y)`` for each strength (K,) at its ``y`` (K,), (K,).

        ``s' = ceil(512 s) / 512 >= s``: a weaker curve (``f_s' <= f_s``), so a rejection stays
        valid for ``s``, and dyadic bisection points share their (costly) PLDs.
        """
        out = np.array(y, dtype=np.float64)  # s = 0: f(a) = 1 - a
        up = np.ceil(np.asarray(strengths) * STRENGTH_LATTICE) / STRENGTH_LATTICE  # (K,)
        for s in np.unique(up[up > 0]):
            rows = up == s
            grow, shrink, delta = _exp_profile(self.q, self.steps, 1.0 / float(s))
            yy = out[rows][:, None]  # (R, 1)
            inv = np.maximum(shrink * (yy - delta), 1.0 - delta - grow * (1.0 - yy))  # (R, G)
            out[rows] = np.clip(inv.max(axis=1), 0.0, 1.0)
        return out

    def epsilon(self, strength: float, delta: float) -> float:
        """dp-accounting's PLD epsilon at noise ``1 / strength`` (0 at strength 0)."""
        if strength <= 0:
            return 0.0
        return float(_pld(self.q, self.steps, 1.0 / strength).get_epsilon_for_delta(delta))  # type: ignore[attr-defined]
