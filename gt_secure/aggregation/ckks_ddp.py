"""Distributed DP for the CKKS path (``ddp-ckks``): discrete Gaussian shares on the CKKS grid.

The CKKS encoding (:class:`~gt_secure.aggregation.ckks_masks.MaskedEncoding`) already turns each
organization's vector into integers on the grid ``step`` (``2**-15`` for the packaged spec), and
the key holder recovers their sum exactly (the CKKS error is rounded away). So the organization
adds its share *on that grid*: it clips, rounds randomly onto the grid (KLS21 conditional
rounding) and adds ``N_Z(0, sigma^2)`` integer noise
(:func:`~gt_secure.organization.ddp_share.noise_share`, the same share as ``ddp-secagg``), then
encrypts ``step * share``, which the encoding quantizes back to exactly the same integers. The
decrypted sum is exactly ``step * sum_i (k_i + noise_i)``, the distributed discrete Gaussian
mechanism of Kairouz, Liu & Steinke 2021, accounted by
:class:`~gt_secure.ledger.ddp_mechanism.DistributedGaussianMechanism`.

Why discrete and not continuous Gaussian shares: each organization's vector is rounded onto the
grid *before* the sum, so continuous shares would reach the sum as rounded Gaussians, whose sum
is not a Gaussian and has no exact analysis; discrete Gaussians on the grid sum to a
distribution KLS21 analyse exactly. At this grid the cost is nil: ``sigma`` is ``~2**14.5``
integer units, KLS21's ``tau`` term underflows to 0 and the rounding inflates the sensitivity
by ``~1.6e-5`` relative, so the epsilon equals the continuous Gaussian's with noise multiplier
``noise_multiplier`` (tested against dp-accounting's Gaussian RDP).

Share size: ``sigma = z C / (step sqrt(min_survivors - max_colluders))`` (as in
:class:`~gt_secure.aggregation.ddp.DdpParams`). No wrap: every organization encrypts only
coordinates within ``max_abs`` and the encoding's step keeps ``max_organizations`` of them below
``2**(mask_bits - 1)``; :func:`ckks_ddp_params` refuses a share whose noise tail (probability
``2**-40`` over all coordinates) would pass ``max_abs``.
"""

from __future__ import annotations

import math

from gt_secure.aggregation.ddp import DdpParams, wrap_margin
from gt_secure.errors import InvalidFieldError
from gt_secure.protocols import ProtocolSpec

__all__ = ["ckks_ddp_params"]

WRAP_LOG2 = 40.0


def ckks_ddp_params(spec: ProtocolSpec, dim: int, clip_norm: float | None = None,
                    noise_multiplier: float | None = None) -> DdpParams:
    """The shares of a CKKS spec with ``[dp.organization.distributed]`` for ``dim`` coordinates:
    grid = the CKKS encoding's step, ``bits = ckks.mask_bits``; ``clip_norm`` and
    ``noise_multiplier`` default to the spec's (the run config may raise or lower them, and the
    organizations' policies judge that)."""
    org = spec.dp.organization if spec.dp is not None else None
    if spec.ckks is None or org is None or org.distributed is None:
        raise InvalidFieldError("dp.organization.distributed", None,
                                f"set in CKKS protocol {spec.name!r}")
    d = org.distributed
    clip = org.clip_norm if clip_norm is None else clip_norm
    z = org.noise_multiplier if noise_multiplier is None else noise_multiplier
    if not (math.isfinite(z) and z > 0):
        raise InvalidFieldError("noise_multiplier", z, "finite and > 0 (distributed noise)")
    encoding = spec.ckks.encoding(spec.max_organizations)
    params = DdpParams(clip_norm=clip, dim=dim, noise_multiplier=z,
                       organizations=spec.max_organizations, min_survivors=d.min_survivors,
                       max_colluders=d.max_colluders, bits=spec.ckks.mask_bits,
                       scale=encoding.step, wrap_log2=WRAP_LOG2, aggregation="ckks")
    peak = clip + encoding.step + params.sigma * encoding.step * wrap_margin(1, dim, WRAP_LOG2)
    if peak > encoding.max_abs:
        raise InvalidFieldError("noise_multiplier", z, f"small enough that a share stays within "
                                f"ckks.max_abs={encoding.max_abs} (its tail reaches {peak:.3g})")
    if params.sigma < 0.5:
        raise InvalidFieldError("noise_multiplier", z, "large enough for a share of >= 0.5 grid "
                                f"units (step {encoding.step})")
    return params
