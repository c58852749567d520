"""Shadow subsets in the paper's regime: the public half of the organizations' task.

K subsets of ``subset_size`` public records (default K=300 x 1,024, as in the paper): half are
dominated by one public style (weight ``dominance``), half are Dirichlet mixtures over every public
style and the shipped public corpora. Groups of three subsets dominated by different families
stand for three organizations (the multi-organization pairs). One subset pair in ten is held out
whole for validation, and a group never mixes held-out and training subsets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import numpy as np

from gt_secure.data.corpora import CORPUS_NAMES, split_corpus
from gt_secure.data.families import FAMILY_LABELS, Style, public_pool, public_styles

POOL_SIZE = 4096  # public records per style the subsets are drawn from
FAMILY_INDEX = {f: i for i, f in enumerate(FAMILY_LABELS)}


@dataclass(frozen=True)
class SubsetPlan:
    index: int
    weights: dict[str, float]  # pool name (style name or corpus) -> weight
    seed: int
    family: int  # FAMILY_INDEX of the dominant style's family, -1 for a mixture

    @property
    def validation(self) -> bool:
        return (self.index // 2) % 10 == 9  # 10% held out: dominated and mixtures alike


def pool_names() -> list[str]:
    return [s.name for s in public_styles()] + list(CORPUS_NAMES)


@cache
def _pool(name: str) -> tuple[str, ...]:
    if name in CORPUS_NAMES:
        return tuple(split_corpus(name, "train"))
    return public_pool(Style(*name.split("/")), POOL_SIZE)


def plan_subsets(k: int, seed: int, dominance: float = 0.8) -> list[SubsetPlan]:
    """K reproducible subset plans: even indices dominated by one style, odd ones mixtures."""
    rng = random.Random(seed)
    styles, names = public_styles(), pool_names()
    plans = []
    for i in range(k):
        draws = np.array([rng.gammavariate(0.5, 1.0) for _ in names])
        weights = draws / draws.sum()
        family = -1
        if i % 2 == 0:
            style = styles[(i // 2) % len(styles)]
            weights = weights * (1 - dominance)
            weights[names.index(style.name)] += dominance
            family = FAMILY_INDEX[style.family]
        plans.append(SubsetPlan(i, dict(zip(names, weights.tolist(), strict=True)),
                                rng.randrange(2**31), family))
    return plans


def subset_texts(plan: SubsetPlan, n: int) -> list[str]:
    """``n`` public records mixed by the plan's weights, reproducible from its seed."""
    rng = random.Random(plan.seed)
    names = list(plan.weights)
    picks = rng.choices(names, weights=[plan.weights[m] for m in names], k=n)
    texts: list[str] = []
    for name in names:
        count = picks.count(name)
        if count:
            texts += rng.sample(_pool(name), count)
    rng.shuffle(texts)
    return texts


def plan_groups(plans: list[SubsetPlan], n_groups: int, size: int, seed: int) -> list[list[int]]:
    """Groups of ``size`` dominated subsets of distinct families, never across the split."""
    rng = random.Random(seed + 1)
    groups: list[list[int]] = []
    for held in (False, True):
        dominated = [p for p in plans if p.family >= 0 and p.validation == held]
        if len({p.family for p in dominated}) < size:
            continue
        want = max(1, round(n_groups * (0.1 if held else 0.9)))
        for _ in range(50 * want):
            if len([g for g in groups if plans[g[0]].validation == held]) >= want:
                break
            pick = rng.sample(dominated, min(size, len(dominated)))
            if len({p.family for p in pick}) == len(pick):
                groups.append(sorted(p.index for p in pick))
    return groups
