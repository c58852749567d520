"""SecAgg+ quantization bound, checked against Flower 1.42's own quantize/dequantize."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.server.workflow import SecAggPlusWorkflow
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gt_secure.aggregation.quantization import (
    SecAggParams,
    choose_secagg_params,
    secagg_error_bound,
)
from gt_secure.errors import InvalidFieldError


def _decoded_sum(vecs: list[np.ndarray], c: float, t: int) -> np.ndarray:
    """What Flower's server reconstructs before dividing by the weights (no masks: they cancel)."""
    q = np.sum(np.stack(quantize(vecs, c, t)).astype(np.int64), axis=0)
    out: np.ndarray = dequantize([q], c, t)[0] - (len(vecs) - 1) * c
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    length=st.integers(1, 300),
    c=st.floats(1e-3, 1e3),
    log_t=st.integers(4, 30),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_flower_decoded_sum_within_bound(
    n: int, length: int, c: float, log_t: int, seed: int, dtype: type
) -> None:
    # Prepare: values in [-c, c] (c's image in dtype rounded inward), both ends present.
    c_in = dtype(c)
    if float(c_in) > c:
        c_in = np.nextafter(c_in, dtype(0))
    rng = np.random.default_rng(seed)
    vecs = [
        np.clip((rng.uniform(-1, 1, length) * c_in).astype(dtype), -c_in, c_in) for _ in range(n)
    ]
    vecs[0][0], vecs[-1][-1] = -c_in, c_in
    name = "float32" if dtype is np.float32 else "float64"
    # Execute
    err = np.max(np.abs(_decoded_sum(vecs, c, 2**log_t) - np.sum(vecs, 0, dtype=np.float64)))
    # Assert
    assert err <= secagg_error_bound(c, 2**log_t, n, input_dtype=name)  # type: ignore[arg-type]


def test_bound_is_nearly_tight_for_coarse_quantization() -> None:
    # Metric band: with T = 2**8 the stochastic rounding error must reach most of the bound.
    rng = np.random.default_rng(0)
    vecs = [rng.uniform(-1, 1, 20_000).astype(np.float32) for _ in range(3)]
    err = np.max(np.abs(_decoded_sum(vecs, 1.0, 2**8) - np.sum(vecs, 0, dtype=np.float64)))
    bound = secagg_error_bound(1.0, 2**8, 3)
    assert 0.5 * bound < err <= bound


def test_chooser_meets_target_and_fits_flower(caplog: pytest.LogCaptureFixture) -> None:
    params = choose_secagg_params(clip_norm=1.0, num_clients=10, target_error=1e-4)
    assert params.error_bound(10) <= 1e-4
    assert params.max_clients() >= 10
    assert params.num_shares == 10 and params.reconstruction_threshold == 6
    with caplog.at_level(logging.WARNING):
        SecAggPlusWorkflow(**params.workflow_kwargs())  # Flower's own checks accept them
    assert "overflow" not in caplog.text


def test_chooser_uses_max_abs_for_noisy_vectors() -> None:
    params = choose_secagg_params(1.0, 5, 1e-3, max_abs=9.0, num_shares=3)
    assert params.clipping_range == 9.0 and params.reconstruction_threshold == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"clip_norm": 1.0, "num_clients": 10, "target_error": 1e-7}, "target_error"),
        ({"clip_norm": 0.0, "num_clients": 10, "target_error": 1e-3}, "clip_norm"),
        ({"clip_norm": 1.0, "num_clients": 2, "target_error": 1e-3}, "num_clients"),
        ({"clip_norm": 1.0, "num_clients": 9, "target_error": 1e-3, "num_shares": 4}, "num_shares"),
        ({"clip_norm": 1.0, "num_clients": 9, "target_error": 1e-3, "max_abs": 0.5}, "max_abs"),
    ],
)
def test_chooser_errors_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidFieldError) as info:
        choose_secagg_params(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_params_collect_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        SecAggParams(
            num_shares=4,
            reconstruction_threshold=4,
            clipping_range=1.0,
            quantization_range=2**22,
            modulus_range=3 * 2**22,
        )
    text = str(info.value)
    assert "reconstruction_threshold must be in [2, num_shares)" in text
    assert "modulus_range must be a power of 2" in text


def test_bound_argument_checks() -> None:
    with pytest.raises(InvalidFieldError, match="num_clients must be >= 1"):
        secagg_error_bound(1.0, 2**22, 0)
    with pytest.raises(InvalidFieldError, match="input_dtype"):
        secagg_error_bound(1.0, 2**22, 3, input_dtype="float16")  # type: ignore[arg-type]
