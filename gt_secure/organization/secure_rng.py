"""Randomness for privacy mechanisms: explicit seeded generators, or the OS CSPRNG.

Secure mode draws every random bit from the operating system's CSPRNG (``os.urandom``, i.e.
Linux ``getrandom``), never from a seedable PRNG: the noise of a DP mechanism must be
unpredictable to anyone, including whoever chose a seed. A ``torch.Generator`` or
``numpy.random.Generator`` *seeded* from ``os.urandom`` is not enough: its Mersenne-Twister / PCG
state can be recovered from its outputs, after which the noise is known and can be subtracted.

Gaussian noise (:func:`csprng_normal`): 53-bit uniforms from CSPRNG bytes, the Box-Muller
transform in float64, then the floating-point mitigation Opacus uses in its ``secure_mode``
(Holohan & Braghin 2021, arXiv:2107.10138, section 5.1, with n=2): the sum of 4 independent
N(0, std^2) draws divided by 2, which is again N(0, std^2) but hides the lattice of
representable values that the attacks of Mironov 2012 (Laplace) and Jin et al. 2021
(arXiv:2112.05307, Gaussian) exploit. This is the state of the art Opacus ships, not a proof of
exact sampling (a discrete Gaussian would be; Canonne et al. 2020, arXiv:2004.00010).

Opacus's own ``secure_mode`` needs ``torchcsprng``, whose last release (0.2.1, 2021) has no build
for Python 3.11 / torch 2.13, so gt-secure implements the same design with the primitives here.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from gt_secure.errors import InvalidFieldError

_TWO_53 = float(2**53)


class InsecureRandomnessWarning(UserWarning):
    """A privacy mechanism ran with a seedable PRNG instead of the OS CSPRNG."""


def warn_insecure(what: str) -> None:
    """Warn loudly that ``what`` uses a seedable PRNG (fine for experiments, not production)."""
    warnings.warn(
        f"{what} runs with secure_mode=False: its noise and sampling come from a seedable PRNG "
        "whose state can be recovered from outputs, and its floating-point noise is not hardened "
        "(arXiv:2107.10138). Fine for experiments and tests; release with secure_mode=True.",
        InsecureRandomnessWarning,
        stacklevel=3,
    )


def csprng_uniform(n: int) -> np.ndarray:
    """``n`` uniforms in the open interval (0, 1) from the OS CSPRNG: (n,) float64.

    Each is ``(k + 0.5) / 2**53`` for a uniform 53-bit integer ``k``, so 0 and 1 never occur.
    """
    if n < 0:
        raise InvalidFieldError("n", n, ">= 0")
    words = np.frombuffer(os.urandom(8 * n), dtype="<u8")  # (n,)
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / _TWO_53


def _box_muller(n: int) -> np.ndarray:
    """``n`` standard normals from CSPRNG uniforms: (n,) float64."""
    pairs = (n + 1) // 2
    u1, u2 = csprng_uniform(pairs), csprng_uniform(pairs)  # (pairs,) each
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * math.pi * u2
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:n]


def csprng_normal(n: int, std: float) -> np.ndarray:
    """``n`` draws of N(0, std^2) from the OS CSPRNG, hardened as Opacus does: (n,) float64."""
    if not (math.isfinite(std) and std >= 0):
        raise InvalidFieldError("std", std, "finite and >= 0")
    if std == 0.0 or n == 0:
        return np.zeros(n, dtype=np.float64)
    draws = _box_muller(4 * n).reshape(4, n)  # (4, n)
    return std * draws.sum(axis=0) / 2.0
