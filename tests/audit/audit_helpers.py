"""Helpers shared by the audit tests (a uniquely named module, importable from test files)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import norm


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads: the CI box shares its 2 cores with a training job."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gaussian_delta(epsilon: float, sigma: float, sensitivity: float = 1.0) -> float:
    """Exact delta(epsilon) of the Gaussian mechanism (Balle & Wang, ICML 2018, Theorem 8)."""
    a = sensitivity / (2 * sigma)
    b = epsilon * sigma / sensitivity
    return float(norm.cdf(a - b) - np.exp(epsilon + norm.logcdf(-a - b)))


def gaussian_epsilon(sigma: float, delta: float, sensitivity: float = 1.0) -> float:
    """Smallest epsilon with delta(epsilon) <= delta for the Gaussian mechanism."""
    if gaussian_delta(0.0, sigma, sensitivity) <= delta:
        return 0.0
    return float(brentq(lambda e: gaussian_delta(e, sigma, sensitivity) - delta, 0.0, 200.0))
