"""The shadow regime's data: organizations' styles are absent from the public pool, by hash."""

from __future__ import annotations

import hashlib

import pytest

from gt_secure.data.families import (
    FORMATS,
    LOCALES,
    ORG_MIXTURES,
    ORG_STYLES,
    Style,
    family_public_records,
    org_family,
    org_records,
    public_pool,
    public_styles,
    style_records,
)
from gt_secure.errors import InvalidFieldError
from gt_secure.provider.shadow_plan import plan_groups, plan_subsets, subset_texts


def _hashes(texts) -> set[str]:  # type: ignore[no-untyped-def]
    return {hashlib.sha256(t.encode()).hexdigest() for t in texts}


def test_no_organization_style_is_public_and_each_factor_is_covered_elsewhere() -> None:
    public = set(public_styles())
    for org, style in ORG_STYLES.items():
        assert style not in public, org
        same_family = [s for s in public if s.family == style.family]
        # The family's public records never show the organization's format or locale ...
        assert all(s.format != style.format and s.locale != style.locale for s in same_family)
        # ... but other families' public records show both (a novel combination, not novel parts).
        assert any(s.format == style.format for s in public)
        assert any(s.locale == style.locale for s in public)
    assert {s.format for s in public} == set(FORMATS) and {s.locale for s in public} == set(LOCALES)


def test_organization_records_and_public_records_are_disjoint_by_hash() -> None:
    org = set().union(*(_hashes(org_records(o, split, 256)) for o in (*ORG_STYLES, *ORG_MIXTURES)
                        for split in ("train", "validation", "test")))
    public = set().union(*(_hashes(public_pool(s, 512)) for s in public_styles()))
    plans = plan_subsets(20, 0)
    shadow = set().union(*(_hashes(subset_texts(p, 64)) for p in plans))
    assert org and public and not org & public and not org & shadow
    splits = [_hashes(org_records("bank", split, 256)) for split in ("train", "test")]
    assert not splits[0] & splits[1]


def test_public_pool_refuses_an_organization_style() -> None:
    with pytest.raises(InvalidFieldError, match="style"):
        public_pool(ORG_STYLES["hospital"], 8)
    with pytest.raises(InvalidFieldError, match="style.locale"):
        style_records(Style("bank", "prose", "xx"), 1, 0)
    with pytest.raises(InvalidFieldError, match="family"):
        family_public_records("shipping", 4, 0)  # the held-out family has no public records


def test_subset_plans_are_reproducible_and_groups_stay_in_their_split() -> None:
    plans = plan_subsets(40, 3)
    assert plans == plan_subsets(40, 3)
    assert sum(p.family >= 0 for p in plans) == 20  # half dominated by one style
    assert subset_texts(plans[0], 32) == subset_texts(plans[0], 32)
    groups = plan_groups(plans, 10, 3, 3)
    assert groups
    for g in groups:
        assert len({plans[i].family for i in g}) == 3
        assert len({plans[i].validation for i in g}) == 1


def test_mixture_organizations_mix_public_styles_in_their_own_proportions() -> None:
    public = set(public_styles())
    for org, mix in ORG_MIXTURES.items():
        assert set(mix) <= public and abs(sum(mix.values()) - 1) < 1e-9
        assert org_family(org) == next(iter(mix)).family
        texts = org_records(org, "train", 200)
        assert len(texts) == 200 and texts == org_records(org, "train", 200)
        first = next(iter(mix))
        own = sum(t.startswith(first.family[:4].upper()) if first.format == "pipe" else
                  ("CLASS=" in t) == (first.format == "fields") for t in texts)
        assert abs(own - 200 * mix[first]) <= 1, (org, own)
    with pytest.raises(InvalidFieldError, match="org"):
        org_family("nobody")
