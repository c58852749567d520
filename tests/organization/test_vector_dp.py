"""Organization-level DP: clipping invariants, noise statistics, secure randomness."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from gt_secure.organization.vector_dp import (
    VectorDpConfig,
    clip_l2,
    gaussian_noise,
    privatize_update,
)
from gt_secure.update.layout import LoraSpec, TensorSpec, UpdateLayout
from gt_secure.update.vector import UpdateVector

LAYOUT = UpdateLayout(base_model="tinylm", base_model_hash="0" * 64,
                      lora=LoraSpec.model_validate({}),
                      entries=(TensorSpec(name="layers.0.self_attn.q_proj.lora_A", shape=(8, 64)),
                               TensorSpec(name="layers.0.self_attn.q_proj.lora_B", shape=(64, 8))))
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(values=arrays(np.float32, st.integers(0, 64), elements=finite),
       clip=st.floats(1e-3, 1e3))
def test_clip_bounds_norm_and_preserves_direction(values: np.ndarray, clip: float) -> None:
    # Prepare
    original = values.copy()
    # Execute
    out = clip_l2(values, clip)
    # Assert: new array, norm <= C, same direction (out = s * values with 0 < s <= 1)
    assert out is not values and np.array_equal(values, original)
    assert out.dtype == np.float32 and out.shape == values.shape
    assert float(np.linalg.norm(out.astype(np.float64))) <= clip
    norm = float(np.linalg.norm(values.astype(np.float64)))
    if norm <= clip:
        assert np.array_equal(out, values)
    else:
        cosine = float(out.astype(np.float64) @ values.astype(np.float64)) / (
            np.linalg.norm(out.astype(np.float64)) * norm)
        assert cosine == pytest.approx(1.0, abs=1e-6)
        assert float(np.linalg.norm(out.astype(np.float64))) == pytest.approx(clip, rel=1e-5)


def test_clip_handles_zero_dim_and_zero_vectors() -> None:
    # Flower's helper rebinds 0-d arrays and leaves them unclipped (STYLE.md 7.1).
    assert float(clip_l2(np.array(2.0, dtype=np.float32), 1.0)) == pytest.approx(1.0)
    assert float(clip_l2(np.array(-3.0), 1.5)) == pytest.approx(-1.5)
    assert np.array_equal(clip_l2(np.zeros(5, np.float32), 1.0), np.zeros(5, np.float32))


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_clip_rejects_bad_norm(bad: float) -> None:
    with pytest.raises(InvalidFieldError, match="clip_norm must be finite and > 0"):
        clip_l2(np.ones(3), bad)


@pytest.mark.parametrize("secure", [False, True])
def test_noise_std_matches_closed_form(secure: bool) -> None:
    # Zero update, k releases: the added noise has std z * C (closed form).
    z, clip, k = 0.7, 2.0, 40
    cfg = VectorDpConfig(noise_multiplier=z, clip_norm=clip, secure_mode=secure)
    gen = None if secure else np.random.default_rng(1)
    zero = UpdateVector(LAYOUT, np.zeros(LAYOUT.size, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        draws = np.stack([privatize_update(zero, cfg, gen).update.flat for _ in range(k)])
    n = draws.size  # 40 * 1024 samples: relative s.d. of the std estimate ~ 1/sqrt(2n) = 0.35%
    assert draws.std() == pytest.approx(z * clip, rel=0.03)
    assert abs(draws.mean()) < 5 * z * clip / math.sqrt(n)
    assert not np.array_equal(draws[0], draws[1])


def test_noised_update_records_mechanism_and_epsilon() -> None:
    cfg = VectorDpConfig(target_epsilon=2.0, clip_norm=0.5, secure_mode=True)
    update = UpdateVector(LAYOUT, np.full(LAYOUT.size, 3.0, np.float32))
    result = privatize_update(update, cfg)
    assert result.mechanism.clip_norm == 0.5
    assert compute_epsilon([result.mechanism], cfg.delta) <= 2.0
    assert compute_epsilon([result.mechanism], cfg.delta) == pytest.approx(2.0, rel=0.02)
    assert result.update.layout == LAYOUT


def test_secure_mode_refuses_generator() -> None:
    with pytest.raises(InvalidFieldError, match="generator must be None when secure_mode=True"):
        privatize_update(UpdateVector(LAYOUT, np.zeros(LAYOUT.size, np.float32)),
                         VectorDpConfig(noise_multiplier=1.0), np.random.default_rng(0))
    with pytest.raises(InvalidFieldError, match="generator must be None when secure_mode=True"):
        gaussian_noise(4, 1.0, np.random.default_rng(0), secure_mode=True)


def test_insecure_mode_needs_generator_and_warns() -> None:
    with pytest.raises(InvalidFieldError, match="generator must be a numpy.random.Generator"):
        gaussian_noise(4, 1.0, None, secure_mode=False)
    with pytest.raises(InvalidFieldError, match="generator must be a numpy.random.Generator"):
        privatize_update(UpdateVector(LAYOUT, np.zeros(LAYOUT.size, np.float32)),
                         VectorDpConfig(noise_multiplier=1.0, secure_mode=False))
    with pytest.warns(InsecureRandomnessWarning):
        out = gaussian_noise(4, 1.0, np.random.default_rng(0), secure_mode=False)
    assert np.array_equal(out, np.random.default_rng(0).normal(0.0, 1.0, 4))


def test_config_requires_exactly_one_noise_setting() -> None:
    with pytest.raises(InvalidFieldError, match="noise_multiplier must be set exactly"):
        VectorDpConfig()
    with pytest.raises(InvalidFieldError, match="noise_multiplier must be set exactly"):
        VectorDpConfig(noise_multiplier=1.0, target_epsilon=1.0)
