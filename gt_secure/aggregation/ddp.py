"""Distributed DP inside SecAgg+: the grid, the bit width, each organization's noise share, and
the decoding of Flower's sum (Kairouz, Liu & Steinke 2021, arXiv:2102.06387; no rotation).

Organization ``i`` clips its update to L2 norm ``C``, scales it by ``s = 1 / scale``, rounds it
randomly to integers ``k_i`` with ``||k_i||_2 <= Delta2`` (conditional randomized rounding, KLS21
section 4), adds ``N_Z(0, sigma^2)`` per coordinate and sends ``u_i = k_i + noise_i`` reduced
modulo ``T = 2**bits`` into ``[-T/2, T/2)``. The values go through Flower's own quantizer with
``clipping_range = T/2`` and ``quantization_range = T`` (:meth:`DdpParams.secagg_params`), which
maps an integer ``u`` to exactly ``u + T/2`` (no clipping, no rounding), so Flower's masked sum
holds ``S = sum_i (u_i + T/2)``; :func:`decode_sum` recovers ``sum_i u_i`` from Flower's mean and
reduces it modulo ``T`` into ``[-T/2, T/2)``, which equals ``sum_i (k_i + noise_i)`` whenever that
lies in ``[-T/2, T/2)``. Wrapping modulo ``T`` is post-processing of the sum (no privacy cost).

Noise share: ``sigma = z C s / sqrt(h)`` with ``h = min_survivors - max_colluders``, so the noise
the server cannot subtract has variance ``>= (z C s)^2`` whenever at least ``min_survivors``
organizations' vectors reach the sum and at most ``max_colluders`` of them collude.

No-wrap bound (documented and tested): per coordinate, ``|sum_i k_i| <= n (C s + 1)`` always
(``|k_ij| <= |x_ij| s + 1 <= C s + 1``) and the summed noise of at most ``n`` organizations is
``n sigma^2``-subgaussian (CKS20: ``N_Z(0, sigma^2)`` is ``sigma^2``-subgaussian), so every one of
the ``d`` coordinates stays within ``a = sqrt(2 n sigma^2 ln(2 d / p))`` except with probability
``p = 2**-wrap_log2``. :meth:`DdpParams.choose` takes the finest grid with
``n (C s + 1) + a <= T/2 - 1``: the decoded sum then never wraps outside that ``p`` event.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gt_secure.aggregation.quantization import FLOWER_MAX_MODULUS, SecAggParams
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.ddp_mechanism import (
    DistributedGaussianMechanism,
    ReleaseBasis,
    condition_text,
)

__all__ = ["ORG_DELTA", "DdpParams", "decode_sum", "rounding_sensitivity", "wrap_margin"]

ROUNDING_BETA = math.exp(-0.5)  # KLS21's / TFF's conditional rounding bias
ORG_DELTA = 1e-5  # delta of the organization-level epsilon (RDP accountant)


def rounding_sensitivity(scaled_clip: float, dim: int, beta: float = ROUNDING_BETA) -> float:
    """KLS21 Theorem 2 / eq. (15): L2 bound ``Delta2`` kept by conditional randomized rounding of
    a vector of norm ``<= scaled_clip`` in ``dim`` coordinates (bias ``beta``)."""
    root = math.sqrt(dim)
    loose = (scaled_clip + root) ** 2
    tight = scaled_clip**2 + dim / 4 + math.sqrt(2 * math.log(1 / beta)) * (scaled_clip + root / 2)
    return math.sqrt(min(loose, tight))


def wrap_margin(num_orgs: int, dim: int, wrap_log2: float) -> float:
    """``sqrt(2 n ln(2 d / p))``: the tail of ``n`` summed unit-variance noise shares."""
    return math.sqrt(2 * num_orgs * (math.log(2 * dim) + wrap_log2 * math.log(2)))


class DdpParams(BaseModel):
    """Everything a distributed discrete Gaussian round fixes; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clip_norm: float = Field(gt=0, allow_inf_nan=False)
    dim: int = Field(ge=1)
    noise_multiplier: float = Field(gt=0, allow_inf_nan=False)  # sum's std / clip_norm
    organizations: int = Field(ge=1)
    min_survivors: int = Field(ge=1)
    max_colluders: int = Field(ge=0)
    bits: int = Field(ge=2, le=31)
    scale: float = Field(gt=0, allow_inf_nan=False)
    wrap_log2: float = Field(40.0, gt=0)
    aggregation: Literal["secagg+", "ckks"] = "secagg+"  # the ledger's condition names it
    basis: ReleaseBasis | None = None  # set when the dim coordinates are in a public basis

    @classmethod
    def choose(cls, clip_norm: float, dim: int, noise_multiplier: float, organizations: int,
               min_survivors: int, max_colluders: int, bits: int,
               wrap_log2: float = 40.0, basis: ReleaseBasis | None = None) -> DdpParams:
        """The finest grid whose decoded sum of ``organizations`` vectors never wraps (except
        with probability ``2**-wrap_log2``); raises naming ``bits`` when none fits."""
        if not 1 <= min_survivors <= organizations:
            raise InvalidFieldError("min_survivors", min_survivors,
                                    f"in [1, organizations={organizations}]")
        if not 0 <= max_colluders < min_survivors:
            raise InvalidFieldError("max_colluders", max_colluders,
                                    f"in [0, min_survivors={min_survivors})")
        if not 2 <= bits <= 31:
            raise InvalidFieldError("bits", bits, "in [2, 31]")
        honest = min_survivors - max_colluders
        tail = noise_multiplier * clip_norm * wrap_margin(organizations, dim, wrap_log2)
        room = (2.0 ** (bits - 1) - 1 - organizations) * (1 - 1e-12)  # float slack
        inv_scale = room / (organizations * clip_norm + tail / math.sqrt(honest))
        sigma = noise_multiplier * clip_norm * inv_scale / math.sqrt(honest) if room > 0 else 0
        if not sigma >= 0.5:
            raise InvalidFieldError("bits", bits, f"large enough for {organizations} "
                                    f"organizations at noise_multiplier={noise_multiplier} "
                                    "(the grid leaves a noise share below 0.5 integer units)")
        return cls(clip_norm=clip_norm, dim=dim, noise_multiplier=noise_multiplier,
                   organizations=organizations, min_survivors=min_survivors,
                   max_colluders=max_colluders, bits=bits, scale=1.0 / inv_scale,
                   wrap_log2=wrap_log2, basis=basis)

    @classmethod
    def for_epsilon(cls, epsilon: float, clip_norm: float, dim: int, organizations: int,
                    min_survivors: int, max_colluders: int, bits: int,
                    basis: ReleaseBasis | None = None) -> DdpParams:
        """:meth:`choose` with a noise multiplier whose ledger epsilon (KLS21, RDP, delta
        :data:`ORG_DELTA`) is ``<= epsilon``: the continuous Gaussian's multiplier for
        ``epsilon`` (Opacus, to 0.01 in epsilon), raised in 0.1% steps until the discrete
        mechanism's rounding and sensitivity fit."""
        from gt_secure.ledger.accountant import compute_epsilon, noise_multiplier_for

        z = noise_multiplier_for(epsilon, ORG_DELTA, 1.0, 1, "rdp")
        for _ in range(2000):
            params = cls.choose(clip_norm, dim, z, organizations, min_survivors,
                                max_colluders, bits, basis=basis)
            if compute_epsilon([params.mechanism()], ORG_DELTA, "rdp") <= epsilon:
                return params
            z *= 1.001
        raise InvalidFieldError("epsilon", epsilon, f"reachable at {bits} bits")

    @property
    def modulus(self) -> int:
        """``T = 2**bits``: the sum lives in ``[-T/2, T/2)``."""
        return 2**self.bits

    @property
    def sigma(self) -> float:
        """Each organization's noise std in integer units."""
        honest = self.min_survivors - self.max_colluders
        return self.noise_multiplier * self.clip_norm / self.scale / math.sqrt(honest)

    @property
    def sensitivity(self) -> float:
        """``Delta2``: L2 bound of one organization's rounded vector (integer units)."""
        return rounding_sensitivity(self.clip_norm / self.scale, self.dim)

    def no_wrap_bound(self) -> float:
        """Per-coordinate bound on ``|decoded sum|`` in integer units (see module docstring)."""
        n = self.organizations
        return n * (self.clip_norm / self.scale + 1) + self.sigma * wrap_margin(
            n, self.dim, self.wrap_log2)

    def mean_norm_bound(self, num_summands: int) -> float:
        """L2 bound of an honest decoded mean of ``num_summands`` vectors (except w.p. < e^-32):
        clipped signal + rounding (< 1 unit per coordinate and vector) + summed noise."""
        d, n, unit = math.sqrt(self.dim), num_summands, self.scale
        noise = self.sigma * unit * math.sqrt(n) * (d + 8.0)
        return (n * self.clip_norm + n * unit * d + noise) / n * (1 + 1e-5)

    def mechanism(self) -> DistributedGaussianMechanism:
        """The ledger's record of one organization's share (one round)."""
        return DistributedGaussianMechanism(
            clip_norm=self.clip_norm, dim=self.dim, scale=self.scale, sigma=self.sigma,
            sensitivity=self.sensitivity, bits=self.bits, organizations=self.organizations,
            min_survivors=self.min_survivors, max_colluders=self.max_colluders,
            condition=condition_text(self.organizations, self.min_survivors,
                                     self.max_colluders, self.aggregation), basis=self.basis)

    def secagg_params(self, num_shares: int, reconstruction_threshold: int) -> SecAggParams:
        """Flower SecAgg+ arguments that carry ``[-T/2, T/2)`` integers exactly (a threshold
        below ``min_survivors`` lets a round reach UNMASK with fewer: the organizations'
        :func:`~gt_secure.aggregation.ddp_round.survivor_guard` then refuses it)."""
        params = SecAggParams(num_shares=num_shares,
                              reconstruction_threshold=reconstruction_threshold,
                              clipping_range=float(self.modulus // 2),
                              quantization_range=self.modulus, modulus_range=FLOWER_MAX_MODULUS)
        if params.max_clients() < self.organizations:
            most = 32 - math.ceil(math.log2(self.organizations + 1))
            raise InvalidFieldError("bits", self.bits, f"<= {most} for {self.organizations} "
                                    "organizations (n T < 2**32)")
        return params


def decode_sum(flower_mean: np.ndarray, num_summands: int, params: DdpParams) -> np.ndarray:
    """The float sum ``scale * sum_i (k_i + noise_i)`` from the mean Flower's SecAgg+ decoded
    over ``num_summands`` vectors (exact as long as the sum did not wrap)."""
    if not 1 <= num_summands <= params.organizations:
        raise InvalidFieldError("num_summands", num_summands,
                                f"in [1, organizations={params.organizations}]")
    if num_summands < params.min_survivors:
        raise InvalidFieldError("num_summands", num_summands,
                                f">= min_survivors={params.min_survivors} (too little noise)")
    total = np.rint(np.asarray(flower_mean, dtype=np.float64) * num_summands).astype(np.int64)
    half = params.modulus // 2
    centred = np.mod(total + half, params.modulus) - half  # (d,) in [-T/2, T/2)
    return centred.astype(np.float64) * params.scale
