"""Discrete Gaussian noise ``N_Z(0, sigma^2)``: ``P(x) ∝ exp(-x^2 / (2 sigma^2))`` on the integers.

Sampler: Canonne, Kamath & Steinke 2020 (arXiv:2004.00010), Algorithm 3 — draw ``Y`` from the
discrete Laplace with scale ``t = floor(sigma) + 1`` and keep it with probability
``exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2))``; kept draws are exactly ``N_Z(0, sigma^2)``. The
discrete Laplace is ``G1 - G2`` for two geometric draws ``G = floor(-t ln U)``
(``P(G >= k) = exp(-k / t)``). Uniforms come from the OS CSPRNG in secure mode
(:func:`~gt_secure.organization.secure_rng.csprng_uniform`) or from an explicit
``numpy.random.Generator``. The acceptance test and the geometric draws use 53-bit floating-point
uniforms (as TFF's distributed discrete Gaussian does), not the paper's exact rational
arithmetic: the output is integers (no floating-point lattice to attack, Mironov 2012) whose
probabilities are the exact ones up to float64 rounding of ``exp`` and ``log``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gt_secure.errors import InvalidFieldError
from gt_secure.organization.secure_rng import csprng_uniform, warn_insecure

__all__ = ["discrete_gaussian", "discrete_gaussian_pmf", "uniform_source"]

Uniform = Callable[[int], np.ndarray]


def uniform_source(generator: np.random.Generator | None, secure_mode: bool) -> Uniform:
    """Uniforms on (0, 1): the OS CSPRNG in secure mode (refusing a generator), else
    ``generator`` (required; warns :class:`InsecureRandomnessWarning`)."""
    if secure_mode:
        if generator is not None:
            raise InvalidFieldError("generator", type(generator).__name__,
                                    "None when secure_mode=True (a seeded PRNG is predictable)")
        return csprng_uniform
    if not isinstance(generator, np.random.Generator):
        raise InvalidFieldError("generator", type(generator).__name__,
                                "a numpy.random.Generator when secure_mode=False")
    warn_insecure("discrete Gaussian noise")
    rng = generator

    def uniform(n: int) -> np.ndarray:  # open interval (0, 1), like csprng_uniform
        return (rng.integers(0, 2**53, size=n, dtype=np.uint64).astype(np.float64) + 0.5) / 2.0**53

    return uniform


def discrete_gaussian(n: int, sigma: float, generator: np.random.Generator | None = None,
                      *, secure_mode: bool = True) -> np.ndarray:
    """``n`` draws of ``N_Z(0, sigma^2)``: (n,) int64 (zeros when ``sigma == 0``)."""
    if n < 0:
        raise InvalidFieldError("n", n, ">= 0")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise InvalidFieldError("sigma", sigma, "finite and >= 0")
    uniform = uniform_source(generator, secure_mode)
    if sigma == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    t = math.floor(sigma) + 1.0
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        want = max(2 * (n - filled), 64)  # acceptance is >= ~0.5 for sigma >= 1/2 (CKS20)
        u = uniform(3 * want).reshape(3, want)  # (3, want): two geometrics, one acceptance
        y = np.floor(-t * np.log(u[0])) - np.floor(-t * np.log(u[1]))
        keep = u[2] < np.exp(-((np.abs(y) - sigma**2 / t) ** 2) / (2.0 * sigma**2))
        kept = y[keep].astype(np.int64)[: n - filled]
        out[filled:filled + kept.size] = kept
        filled += kept.size
    return out


def discrete_gaussian_pmf(values: np.ndarray, sigma: float) -> np.ndarray:
    """Exact probabilities of ``N_Z(0, sigma^2)`` at integer ``values`` (normaliser summed over
    ``|x| <= 40 sigma + 40``, where the remaining mass is below float64 resolution)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise InvalidFieldError("sigma", sigma, "finite and > 0")
    half = int(40 * sigma) + 40
    support = np.arange(-half, half + 1, dtype=np.float64)
    norm = float(np.exp(-(support**2) / (2 * sigma**2)).sum())
    x = np.asarray(values, dtype=np.float64)
    return np.exp(-(x**2) / (2 * sigma**2)) / norm
