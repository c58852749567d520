"""SecAgg+ parameters for one round of the Flower app, and the error bound of its decoded mean.

Flower's SecAgg+ (Bell et al., CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead"; ``SecAggPlusWorkflow`` + ``secaggplus_mod``) clips every entry to ``[-c, c]``,
quantizes it, masks it and lets the server unmask only the sum; with every organization's
weight equal to ``max_weight`` the workflow returns the mean of the survivors. The quantization
itself and its error bound live in :mod:`gt_secure.aggregation.quantization`; this module picks
the parameters for a round and states the bound on the *mean*.

Choice of ``c``: an update clipped to L2 norm ``C`` has every entry in ``[-C, C]``; Gaussian noise
of std ``sigma*C`` exceeds ``8*sigma*C`` in one entry with probability ~1.2e-15, so
``c = C * (1 + 8*sigma)`` never clips an honest update in practice. The app hands Flower float64
values (see ``gt_secure.app.messages``), so the float32 term of the bound vanishes.
"""

from __future__ import annotations

import math

from gt_secure.aggregation.quantization import InputDtype, SecAggParams, choose_secagg_params

NOISE_TAIL = 8.0
INPUT_DTYPE: InputDtype = "float64"


def max_abs(clip_norm: float, noise_multiplier: float) -> float:
    """Largest entry an honest update has in practice: ``C * (1 + 8 * sigma)``."""
    return clip_norm * (1.0 + NOISE_TAIL * noise_multiplier)


def round_params(clip_norm: float, noise_multiplier: float, num_orgs: int,
                 pinned: SecAggParams | None = None) -> SecAggParams:
    """``pinned`` (a protocol's ``[secagg]``) or the most precise parameters for ``num_orgs``.

    The computed parameters mask every pair (``num_shares = num_orgs``) with a majority
    threshold, so ``num_orgs - (num_orgs // 2 + 1)`` organizations may drop out after the key
    exchange.
    """
    if pinned is not None:
        return pinned
    bound = max_abs(clip_norm, noise_multiplier)
    return choose_secagg_params(clip_norm, num_orgs, math.inf,
                                max_abs=bound if bound > clip_norm else None,
                                input_dtype=INPUT_DTYPE)


def mean_error_bound(params: SecAggParams, num_summands: int) -> float:
    """Bound on ``|decoded mean - exact mean|`` for every entry, ``num_summands`` updates."""
    return params.error_bound(num_summands, INPUT_DTYPE) / num_summands


def mean_l2_error_bound(params: SecAggParams, num_summands: int, dim: int) -> float:
    """Bound on the L2 distance between the decoded and the exact mean of ``dim`` entries."""
    return mean_error_bound(params, num_summands) * math.sqrt(dim)
