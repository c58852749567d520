"""OS-CSPRNG primitives of secure mode: ranges, Gaussian moments, Poisson sampling rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gt_secure.errors import InvalidFieldError
from gt_secure.organization._opacus import CsprngPoissonSampler
from gt_secure.organization.secure_rng import csprng_normal, csprng_uniform


def test_uniforms_lie_in_open_unit_interval_and_differ() -> None:
    u = csprng_uniform(100_000)
    assert u.dtype == np.float64 and 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-6
    assert not np.array_equal(csprng_uniform(8), csprng_uniform(8))


def test_normals_have_the_requested_distribution() -> None:
    x = csprng_normal(100_000, 2.5)  # std estimate s.d. ~ 0.22%
    assert x.std() == pytest.approx(2.5, rel=0.02)
    assert abs(x.mean()) < 5 * 2.5 / np.sqrt(x.size)
    assert stats.kstest(x / 2.5, "norm").pvalue > 1e-6
    assert csprng_normal(5, 0.0).tolist() == [0.0] * 5
    with pytest.raises(InvalidFieldError, match="std must be finite and >= 0"):
        csprng_normal(3, -1.0)


def test_csprng_poisson_sampler_includes_each_example_at_rate_q() -> None:
    sampler = CsprngPoissonSampler(num_samples=200, sample_rate=0.1, steps=500)
    batches = list(sampler)
    sizes = np.array([len(b) for b in batches])
    assert len(batches) == 500
    assert sizes.mean() == pytest.approx(20.0, rel=0.05)  # s.d. of the mean ~ 0.9%
    assert all(len(set(b)) == len(b) and all(0 <= i < 200 for i in b) for b in batches)
