"""Small shadow pairs from the shipped models, generated once per test session."""

from __future__ import annotations

import pytest

from gt_secure.provider.shadow import ShadowConfig, ShadowPairs, generate_shadow_pairs

SMALL = ShadowConfig(
    subsets=8,
    subset_size=64,
    steps=8,
    first_checkpoint=4,
    checkpoint_every=2,
    batch_size=16,
    max_length=48,
)


@pytest.fixture(scope="session")
def shadow_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("shadow")


@pytest.fixture(scope="session")
def small_pairs(shadow_cache) -> ShadowPairs:
    return generate_shadow_pairs(SMALL, shadow_cache)
