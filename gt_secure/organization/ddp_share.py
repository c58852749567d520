"""An organization's side of distributed DP inside SecAgg+: clip, scale, round, add its noise
share, wrap modulo ``2**bits`` (see :mod:`gt_secure.aggregation.ddp` for the parameters, the
no-wrap bound and the decoding; :mod:`gt_secure.organization.discrete_gaussian` for the noise).

Conditional randomized rounding (KLS21, section 4): each scaled coordinate ``y`` becomes
``floor(y)`` or ``floor(y) + 1`` with ``E = y``; the draw is repeated until the rounded vector's
L2 norm is ``<= Delta2`` (:meth:`DdpParams.sensitivity`), so the mechanism's sensitivity is
``Delta2`` whatever the rounding drew. The rounding and the noise share use the same source of
randomness: the OS CSPRNG in secure mode, else an explicit generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.errors import GtSecureError, InvalidFieldError
from gt_secure.ledger.ddp_mechanism import DistributedGaussianMechanism
from gt_secure.organization.discrete_gaussian import discrete_gaussian, uniform_source
from gt_secure.organization.vector_dp import clip_l2

__all__ = ["DdpShare", "basis_share", "conditional_round", "noise_share"]

MAX_ROUNDING_TRIES = 1000  # each try fails with probability <= beta = e^-0.5


@dataclass(frozen=True)
class DdpShare:
    """What an organization sends (``wire``) and keeps (``clipped``, ``rounded``, ``noise``)."""

    wire: np.ndarray  # (d,) float64 integers in [-T/2, T/2): Flower's SecAgg+ input
    clipped: np.ndarray  # (d,) float64, L2 norm <= clip_norm
    rounded: np.ndarray  # (d,) int64, L2 norm <= Delta2
    noise: np.ndarray  # (d,) int64, this organization's N_Z(0, sigma^2) share
    mechanism: DistributedGaussianMechanism


def conditional_round(scaled: np.ndarray, bound: float,
                      generator: np.random.Generator | None, secure_mode: bool) -> np.ndarray:
    """Unbiased random rounding of ``scaled`` (float64), redrawn until its L2 norm is <= bound."""
    uniform = uniform_source(generator, secure_mode)
    floor = np.floor(scaled)
    frac = scaled - floor
    for _ in range(MAX_ROUNDING_TRIES):
        rounded = (floor + (uniform(scaled.size) < frac)).astype(np.int64)
        if float(np.linalg.norm(rounded.astype(np.float64))) <= bound:
            return rounded
    raise GtSecureError(f"conditional rounding found no vector of norm <= {bound} in "
                        f"{MAX_ROUNDING_TRIES} tries (the input exceeds the clip norm?)")


def noise_share(flat: np.ndarray, params: DdpParams,
                generator: np.random.Generator | None = None, *,
                secure_mode: bool = True) -> DdpShare:
    """Clip ``flat`` to ``params.clip_norm``, round it on the grid, add this organization's
    discrete Gaussian share and wrap it into ``[-T/2, T/2)`` for Flower's SecAgg+."""
    values = np.asarray(flat, dtype=np.float64).reshape(-1)
    if values.size != params.dim:
        raise InvalidFieldError("update.dim", values.size, f"{params.dim} (the round's dim)")
    clipped = clip_l2(values, params.clip_norm)
    rounded = conditional_round(clipped / params.scale, params.sensitivity, generator,
                                secure_mode)
    noise = discrete_gaussian(params.dim, params.sigma, generator, secure_mode=secure_mode)
    half = params.modulus // 2
    wire = np.mod(rounded + noise + half, params.modulus) - half
    return DdpShare(wire.astype(np.float64), clipped, rounded, noise, params.mechanism())


def basis_share(flat: np.ndarray, basis: PublicBasis, params: DdpParams,
                generator: np.random.Generator | None = None, *,
                secure_mode: bool = True) -> DdpShare:
    """Release the ``k`` coordinates of ``flat`` (d,) in the public ``basis``: project, then
    :func:`noise_share` in ``k`` dimensions (clip, grid, noise and wrap all in the ``k``-space).
    ``params`` must name this basis (its ledger record is the claim about the ``k`` numbers)."""
    wanted = basis.sha256()
    if params.basis is None or params.basis.sha256 != wanted:
        raise InvalidFieldError("params.basis.sha256",
                                None if params.basis is None else params.basis.sha256,
                                f"{wanted} (the basis the coordinates are released in)")
    return noise_share(basis.project(flat), params, generator, secure_mode=secure_mode)
