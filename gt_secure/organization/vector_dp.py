"""Organization-level DP on the update vector: clip to L2 norm C, add N(0, (z*C)^2) per coordinate.

The Gaussian mechanism (Dwork & Roth 2014, section 3.5.3; analysed here with RDP, Mironov 2017,
arXiv:1702.07476, through :func:`gt_secure.ledger.accountant.compute_epsilon`): after clipping, the
update of one organization has L2 sensitivity ``C`` under add/remove of that organization, so
adding ``N(0, (z C)^2 I)`` is one :class:`VectorGaussianMechanism` (privacy unit: organization).

Clipping returns a new array (never edits in place), treats 0-d and all-zero arrays explicitly,
and guarantees ``||out||_2 <= C`` after the cast back to float32 (Flower's helper edits in place and
skips 0-d arrays; see STYLE.md section 7.1). Noise comes from an explicit
``numpy.random.Generator`` or, in secure mode, from the OS CSPRNG (:mod:`.secure_rng`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import field_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import (
    VectorGaussianMechanism,
    noise_multiplier_for,
)
from gt_secure.organization.calibration import NoiseCalibration
from gt_secure.organization.secure_rng import csprng_normal, warn_insecure
from gt_secure.update.vector import UpdateVector


class VectorDpConfig(NoiseCalibration):
    """Clip + Gaussian noise on the update vector; set one of noise_multiplier, target_epsilon.

    ``secure_mode`` draws the noise from the OS CSPRNG; without it the caller passes a
    ``numpy.random.Generator`` (no seed here: a config reused across releases would repeat the
    same noise, which then cancels between releases).
    """

    clip_norm: float = 1.0

    @field_validator("clip_norm")
    @classmethod
    def _check_clip(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise InvalidFieldError("clip_norm", value, "finite and > 0")
        return value

    def mechanism(self) -> VectorGaussianMechanism:
        """The mechanism this config runs (a target epsilon is solved for, one release at q=1)."""
        z = self.noise_multiplier
        if z is None:
            z = noise_multiplier_for(self.target_epsilon or 0.0, self.delta, sample_rate=1.0,
                                     steps=1, accountant=self.accountant)
        return VectorGaussianMechanism(noise_multiplier=z, clip_norm=self.clip_norm)


@dataclass(frozen=True)
class VectorDpResult:
    """The noised update and the mechanism that produced it."""

    update: UpdateVector
    mechanism: VectorGaussianMechanism


def clip_l2(values: np.ndarray, clip_norm: float) -> np.ndarray:
    """A new array ``values * min(1, C / ||values||_2)`` in the same dtype, with norm <= C.

    Any shape (0-d included); an all-zero input is returned as zeros.
    """
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise InvalidFieldError("clip_norm", clip_norm, "finite and > 0")
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidFieldError("values.dtype", str(arr.dtype), "a floating-point dtype")
    if not np.all(np.isfinite(arr)):
        raise InvalidFieldError("values", "<non-finite>", "finite (no NaN/Inf)")
    wide = arr.astype(np.float64)
    norm = float(np.linalg.norm(wide.reshape(-1)))
    if norm <= clip_norm:
        return arr.copy()
    out = (wide * (clip_norm / norm)).astype(arr.dtype)
    while float(np.linalg.norm(out.astype(np.float64).reshape(-1))) > clip_norm:
        out = np.nextafter(out, np.zeros_like(out))  # rounding up in the cast: shrink by 1 ulp
    return out


def gaussian_noise(n: int, std: float, generator: np.random.Generator | None,
                   secure_mode: bool) -> np.ndarray:
    """``n`` draws of N(0, std^2): (n,) float64, from ``generator`` or the OS CSPRNG.

    Secure mode refuses a generator (a seeded PRNG is predictable); otherwise one is required
    (never global RNG state) and an :class:`InsecureRandomnessWarning` is emitted.
    """
    if secure_mode:
        if generator is not None:
            raise InvalidFieldError("generator", type(generator).__name__,
                                    "None when secure_mode=True (a seeded PRNG is predictable)")
        return csprng_normal(n, std)
    if not isinstance(generator, np.random.Generator):
        raise InvalidFieldError("generator", type(generator).__name__,
                                "a numpy.random.Generator when secure_mode=False")
    warn_insecure("vector Gaussian noise")
    return generator.normal(0.0, std, size=n) if std > 0 else np.zeros(n)


def privatize_update(update: UpdateVector, cfg: VectorDpConfig,
                     generator: np.random.Generator | None = None) -> VectorDpResult:
    """Clip ``update`` to ``cfg.clip_norm`` and add N(0, (z*C)^2) to every coordinate.

    Secure mode draws from the OS CSPRNG and refuses ``generator``; otherwise ``generator`` is
    required.
    """
    mechanism = cfg.mechanism()
    clipped = clip_l2(update.flat, cfg.clip_norm).astype(np.float64)  # (D,)
    std = mechanism.noise_multiplier * mechanism.clip_norm
    noised = clipped + gaussian_noise(clipped.shape[0], std, generator, cfg.secure_mode)
    return VectorDpResult(update.replace(noised.astype(np.float32)), mechanism)
