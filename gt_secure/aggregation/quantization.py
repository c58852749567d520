"""Fixed-point parameters for Flower 1.42's SecAgg+ and the error bound of its decoded sum.

How Flower encodes (``flwr.common.secure_aggregation.quantization`` and
``flwr.client.mod.secure_aggregation.secaggplus_mod._collect_masked_vectors``): each client
scales its arrays by ``q_ratio / T`` (``q_ratio = round(weight / max_weight * T)``; exactly 1 when
``weight == max_weight``), clips to ``[-c, c]`` (``c = clipping_range``), maps to
``v = (x + c) * T / (2c)`` (``T = quantization_range``) and rounds stochastically to
``q in {ceil(v) - 1, ceil(v)}``, masks it modulo ``M = modulus_range`` and sends int64 arrays. The
server (``secaggplus_workflow.unmask_stage``) sums modulo ``M``, removes the masks, dequantizes
``S * 2c / T - c``, subtracts ``(n - 1) c`` and divides by ``sum(q_ratio) / T`` (the mean when all
weights equal ``max_weight``).

Error of the decoded sum against the plain float64 sum, for ``n`` float32 vectors with
``|x| <= c`` (no clipping) and no overflow (``n * T < M``):

- stochastic rounding: ``|q - v_hat| < 1`` unit, i.e. ``2c / T`` per client;
- float32 arithmetic: under NumPy 2 (NEP 50) ``np.clip(x, -c, c) + c`` and ``* T / (2c)`` stay
  float32 for float32 input, so ``v_hat`` carries up to ``3.5 u T`` units of rounding
  (``u = 2**-24``), i.e. at most ``c * 2**-21`` per client (this dominates once ``T > 2**24``;
  float64 input makes it ``c * 2**-50``, see ``input_dtype``);
- float64 dequantization: below ``n * c * 2**-48``.

So ``|decoded_sum - sum| < n * (2c / T + c * 2**-21) + n * c * 2**-48``; the workflow's mean is
off by that bound divided by ``n``. Values beyond ``c`` are clipped, which is post-processing of a
DP release (no privacy cost) but breaks the bound: pick ``c`` >= the largest coordinate.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from gt_secure.errors import InvalidFieldError

__all__ = [
    "FLOWER_MAX_MODULUS",
    "InputDtype",
    "SecAggParams",
    "choose_secagg_params",
    "secagg_error_bound",
    "secagg_problems",
]

#: Flower masks with ``numpy.random.RandomState.randint`` modulo at most 2**32.
FLOWER_MAX_MODULUS = 2**32
_INT32_MAX = 2**31 - 1  # Flower's quantize casts ``ceil(v)`` to int32
InputDtype = Literal["float32", "float64"]
_ROUNDING_BITS = {"float32": 21, "float64": 50}  # 3.5 u T units with u = 2**-24 or 2**-53


def secagg_error_bound(
    clipping_range: float,
    quantization_range: int,
    num_clients: int,
    *,
    input_dtype: InputDtype = "float32",
) -> float:
    """Max abs error of Flower's decoded SecAgg+ sum vs the plain sum (see module docstring).

    ``input_dtype`` is the dtype handed to Flower's ``quantize``: float64 input removes the
    float32 term (``c * 2**-21`` becomes ``c * 2**-50`` per client).
    """
    if not clipping_range > 0 or not math.isfinite(clipping_range):
        raise InvalidFieldError("clipping_range", clipping_range, "finite and > 0")
    if quantization_range < 1:
        raise InvalidFieldError("quantization_range", quantization_range, ">= 1")
    if num_clients < 1:
        raise InvalidFieldError("num_clients", num_clients, ">= 1")
    c, n = float(clipping_range), float(num_clients)
    if input_dtype not in _ROUNDING_BITS:
        raise InvalidFieldError("input_dtype", input_dtype, "'float32' or 'float64'")
    rounding = c * 2.0 ** -_ROUNDING_BITS[input_dtype]
    return n * (2.0 * c / quantization_range + rounding) + n * c * 2.0**-48


class SecAggParams(BaseModel):
    """Arguments of ``flwr.server.workflow.SecAggPlusWorkflow`` (see :meth:`workflow_kwargs`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_shares: int
    reconstruction_threshold: int
    clipping_range: float
    quantization_range: int
    modulus_range: int
    max_weight: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> SecAggParams:
        problems = secagg_problems(
            self.num_shares,
            self.reconstruction_threshold,
            self.clipping_range,
            self.quantization_range,
            self.modulus_range,
        )
        if not self.max_weight > 0:
            problems.append(("max_weight", self.max_weight, "> 0"))
        if problems:
            raise ValueError("; ".join(f"{f} must be {c}, got {f}={v!r}" for f, v, c in problems))
        return self

    def error_bound(self, num_clients: int, input_dtype: InputDtype = "float32") -> float:
        """:func:`secagg_error_bound` for these parameters and ``num_clients`` summands."""
        return secagg_error_bound(
            self.clipping_range, self.quantization_range, num_clients, input_dtype=input_dtype
        )

    def max_clients(self) -> int:
        """Most summands before the modular sum can wrap (``n * T < M``)."""
        return (self.modulus_range - 1) // self.quantization_range

    def workflow_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SecAggPlusWorkflow(**params.workflow_kwargs())``."""
        return self.model_dump()


def secagg_problems(
    num_shares: int,
    threshold: int,
    clipping_range: float,
    quantization_range: int,
    modulus_range: int,
) -> list[tuple[str, object, str]]:
    """Every violated constraint, as ``(field, value, constraint)``."""
    out: list[tuple[str, object, str]] = []
    if num_shares < 3:
        out.append(("num_shares", num_shares, ">= 3 (Flower)"))
    if not 2 <= threshold < num_shares:
        out.append(
            ("reconstruction_threshold", threshold, "in [2, num_shares) (Flower: < num_shares)")
        )
    if not clipping_range > 0 or not math.isfinite(clipping_range):
        out.append(("clipping_range", clipping_range, "finite and > 0"))
    if not 1 <= quantization_range <= _INT32_MAX:
        out.append(("quantization_range", quantization_range, "in [1, 2**31 - 1]"))
    is_pow2 = modulus_range > 0 and modulus_range & (modulus_range - 1) == 0
    if not (is_pow2 and quantization_range < modulus_range <= FLOWER_MAX_MODULUS):
        out.append(("modulus_range", modulus_range, "a power of 2 in (quantization_range, 2**32]"))
    return out


def choose_secagg_params(
    clip_norm: float,
    num_clients: int,
    target_error: float,
    *,
    max_abs: float | None = None,
    num_shares: int | None = None,
    input_dtype: InputDtype = "float32",
) -> SecAggParams:
    """Most precise SecAgg+ parameters for ``num_clients`` vectors clipped to L2 ``clip_norm``.

    An L2 clip bounds every coordinate, so ``clipping_range = clip_norm`` never clips; pass
    ``max_abs`` when noise is added after clipping. ``modulus_range = 2**32`` and
    ``quantization_range`` is the largest power of two with ``num_clients * T < 2**32``.
    ``num_shares`` defaults to ``num_clients`` (every pair masks); the threshold is a majority.
    Raises :class:`InvalidFieldError` naming ``target_error`` when the bound cannot reach it.
    """
    if not clip_norm > 0 or not math.isfinite(clip_norm):
        raise InvalidFieldError("clip_norm", clip_norm, "finite and > 0")
    if num_clients < 3:
        raise InvalidFieldError("num_clients", num_clients, ">= 3 (SecAgg+ needs 3 or more)")
    c = float(clip_norm if max_abs is None else max_abs)
    if max_abs is not None and not (math.isfinite(c) and c >= clip_norm):
        raise InvalidFieldError("max_abs", max_abs, f"finite and >= clip_norm={clip_norm}")
    shares = num_clients if num_shares is None else num_shares
    if not 3 <= shares <= num_clients:
        raise InvalidFieldError("num_shares", shares, f"in [3, num_clients={num_clients}]")
    if shares < num_clients and shares % 2 == 0:
        raise InvalidFieldError("num_shares", shares, "odd when < num_clients (Flower)")
    quant = min(2 ** (32 - math.ceil(math.log2(num_clients + 1))), 2**30)
    params = SecAggParams(
        num_shares=shares,
        reconstruction_threshold=shares // 2 + 1,
        clipping_range=c,
        quantization_range=quant,
        modulus_range=FLOWER_MAX_MODULUS,
    )
    bound = params.error_bound(num_clients, input_dtype)
    if not bound <= target_error:
        raise InvalidFieldError(
            "target_error",
            target_error,
            f">= {bound:.3g}, the best SecAgg+ error for num_clients={num_clients} and "
            f"clipping_range={c} and input_dtype={input_dtype!r}",
        )
    return params
