"""A small shadow set from the shipped models, generated once per test session."""

from __future__ import annotations

import pytest

from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.shadow import ShadowConfig, ShadowSet, generate_shadow_set

SMALL = ShadowConfig(
    subsets=20,  # 20 is the least with held-out subsets (one pair in ten)
    subset_size=48,
    steps=4,
    checkpoints=(2, 4),
    batch_size=8,
    max_length=40,
    groups=3,
    epsilons=(8.0,),
)


@pytest.fixture(scope="session")
def shadow_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("shadow")


@pytest.fixture(scope="session")
def small_set(shadow_cache) -> ShadowSet:
    return generate_shadow_set(SMALL, shadow_cache)


@pytest.fixture(scope="session")
def small_pairs(small_set: ShadowSet) -> ShadowPairs:
    return small_set.pairs()
