"""Public shadow data for the provider: shipped corpora plus seeded generators.

Shadow subsets are drawn from public domains only; organization domains
(:mod:`gt_secure.data.organizations`) never appear here.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

import reasoning_gym
from faker import Faker

from gt_secure.data.corpora import CORPUS_NAMES, split_corpus
from gt_secure.errors import InvalidFieldError


def arithmetic_texts(n: int, seed: int) -> list[str]:
    """Seeded reasoning-gym arithmetic problems with their answers (endless supply)."""
    data = reasoning_gym.create_dataset("basic_arithmetic", size=n, seed=seed)
    return [f"{item['question']} Answer: {item['answer']}." for item in data]


def directory_texts(n: int, seed: int) -> list[str]:
    """Public synthetic directory listings (faker), a different style from organization data."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    start, end = datetime.date(2015, 1, 1), datetime.date(2024, 12, 31)
    return [
        f"{fake.company()} ({fake.bs()}), {fake.street_address()}, {fake.city()}. "
        f"Contact {fake.name()}, {fake.job()}. Founded {fake.date_between(start, end).year}."
        for _ in range(n)
    ]


GENERATED: dict[str, Callable[[int, int], list[str]]] = {
    "arithmetic": arithmetic_texts,
    "directory": directory_texts,
}
SHADOW_DOMAINS = (*CORPUS_NAMES, *GENERATED)


def shadow_subset(domain_weights: dict[str, float], n: int, seed: int) -> list[str]:
    """``n`` public texts mixed from domains by weight, reproducible from ``seed``."""
    for domain, weight in domain_weights.items():
        if domain not in SHADOW_DOMAINS:
            raise InvalidFieldError("domain", domain, f"one of {list(SHADOW_DOMAINS)}")
        if weight < 0:
            raise InvalidFieldError(f"domain_weights[{domain!r}]", weight, ">= 0")
    rng = random.Random(seed)
    domains = list(domain_weights)
    picks = rng.choices(domains, weights=[domain_weights[d] for d in domains], k=n)
    texts: list[str] = []
    for domain in domains:
        count = picks.count(domain)
        if count == 0:
            continue
        if domain in GENERATED:
            texts += GENERATED[domain](count, rng.randrange(2**31))
        else:
            texts += rng.sample(split_corpus(domain, "train"), count)
    rng.shuffle(texts)
    return texts


def random_domain_weights(rng: random.Random, concentration: float = 0.5) -> dict[str, float]:
    """Dirichlet-distributed mixture over shadow domains (diverse shadow subsets)."""
    draws = [rng.gammavariate(concentration, 1.0) for _ in SHADOW_DOMAINS]
    total = sum(draws)
    return {d: w / total for d, w in zip(SHADOW_DOMAINS, draws, strict=True)}
