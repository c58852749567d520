"""SecAgg+ quantization parameters and the error bound of the decoded mean.

Flower's SecAgg+ (Bell et al., CCS 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead"; ``flwr.server.workflow.SecAggPlusWorkflow`` + ``flwr.client.mod.secaggplus_mod``)
clips every entry to ``[-c, c]``, maps it to ``[0, T]`` with stochastic rounding, masks it modulo
``M`` and lets the server unmask only the sum. With every organization's weight set to 1
(``num_examples = max_weight = 1``) the workflow returns the plain mean of the survivors.

Choice of ``c``: an update clipped to L2 norm ``C`` has every entry in ``[-C, C]``; Gaussian noise
of std ``sigma*C`` exceeds ``8*sigma*C`` in one entry with probability ~1.2e-15, so
``c = C * (1 + 8*sigma)`` never clips an honest update in practice. Precision: each entry of each
update is rounded to a multiple of ``delta = 2c / T`` (unbiased), so every entry of the decoded
mean differs from the exact float64 mean by less than ``delta`` (the values are handed to the
quantizer as float64, see ``gt_secure.app.messages``). Overflow: the integer sum of ``n``
updates is at most ``n*T`` plus the weight factor, so ``n*T < M`` must hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gt_secure.errors import InvalidFieldError

DEFAULT_QUANTIZATION_RANGE = 2**22
DEFAULT_MODULUS_RANGE = 2**32
NOISE_TAIL = 8.0


@dataclass(frozen=True)
class SecAggParams:
    """Parameters handed to ``SecAggPlusWorkflow``."""

    clipping_range: float
    quantization_range: int
    modulus_range: int
    num_shares: float
    reconstruction_threshold: float

    @property
    def step(self) -> float:
        """Quantization step ``delta = 2c / T``."""
        return 2 * self.clipping_range / self.quantization_range

    def mean_error_bound(self) -> float:
        """Bound on ``|decoded mean - exact mean|`` for every entry (less than one step)."""
        return self.step

    def l2_error_bound(self, dim: int) -> float:
        """Bound on the L2 distance between decoded and exact mean of ``dim`` entries."""
        return self.step * math.sqrt(dim)

    def check_capacity(self, num_orgs: int) -> None:
        """Raise when the masked integer sum of ``num_orgs`` updates could overflow."""
        if (num_orgs + 1) * self.quantization_range >= self.modulus_range:
            limit = self.modulus_range // self.quantization_range - 1
            raise InvalidFieldError("num_orgs", num_orgs, f"< {limit} for these ranges")


def secagg_params(
    clip_norm: float,
    noise_multiplier: float = 0.0,
    reconstruction_threshold: float = 0.67,
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE,
    modulus_range: int = DEFAULT_MODULUS_RANGE,
) -> SecAggParams:
    """Quantization and secret-sharing parameters for updates clipped to ``clip_norm``.

    Every organization shares its keys with all others (``num_shares = 1.0``, a fraction of the
    sampled organizations); ``reconstruction_threshold`` is the fraction of shares needed to
    unmask, so ``round((1 - threshold) * n)`` organizations may drop out after sharing keys.
    """
    if clip_norm <= 0:
        raise InvalidFieldError("clip_norm", clip_norm, "> 0")
    if noise_multiplier < 0:
        raise InvalidFieldError("noise_multiplier", noise_multiplier, ">= 0")
    if not 0 < reconstruction_threshold <= 1:
        raise InvalidFieldError("reconstruction_threshold", reconstruction_threshold, "in (0, 1]")
    if modulus_range <= quantization_range or modulus_range & (modulus_range - 1):
        raise InvalidFieldError("modulus_range", modulus_range,
                                "a power of 2 larger than quantization_range")
    clipping_range = clip_norm * (1.0 + NOISE_TAIL * noise_multiplier)
    return SecAggParams(clipping_range, quantization_range, modulus_range, 1.0,
                        reconstruction_threshold)
