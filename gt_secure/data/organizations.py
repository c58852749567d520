"""Per-organization "private" domains for the demo: synthetic records generated with faker.

Each record ends with a label that follows from its content (symptom -> department, merchant ->
category, clause -> contract type), so fine-tuning on the domain teaches a task the accuracy
scorer (:mod:`gt_secure.data.tasks`) can measure. These domains are never used as shadow data.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

from faker import Faker

from gt_secure.errors import InvalidFieldError

HOSPITAL = {
    "cardiology": [
        "chest pain",
        "palpitations",
        "shortness of breath on exertion",
        "high blood pressure",
    ],
    "neurology": ["severe headaches", "numbness in the left arm", "dizziness", "a seizure"],
    "orthopedics": [
        "a fractured wrist",
        "knee pain after a fall",
        "lower back pain",
        "a sprained ankle",
    ],
    "dermatology": ["an itchy rash", "a changing mole", "severe acne", "a skin infection"],
}
BANK = {
    "groceries": ["supermarket", "farmers market", "grocery store", "bakery"],
    "travel": ["airline", "hotel", "car rental agency", "railway"],
    "utilities": ["electricity company", "water utility", "internet provider", "gas company"],
    "dining": ["restaurant", "coffee shop", "pizzeria", "sushi bar"],
}
LAW = {
    "employment": [
        "the employee shall devote full working time to the duties of the position",
        "the employer shall pay the salary monthly in arrears",
        "either party may terminate employment with thirty days notice",
    ],
    "lease": [
        "the tenant shall pay rent on the first day of each month",
        "the landlord shall keep the premises in good repair",
        "the tenant shall not sublet the premises without consent",
    ],
    "sale": [
        "the seller shall deliver the goods free of defects",
        "the buyer shall pay the purchase price upon delivery",
        "title to the goods passes to the buyer upon payment",
    ],
    "confidentiality": [
        "the recipient shall not disclose confidential information",
        "confidential information shall be returned upon request",
        "the obligations of secrecy survive for five years",
    ],
}
LABELS: dict[str, dict[str, list[str]]] = {"hospital": HOSPITAL, "bank": BANK, "law": LAW}
ORGANIZATIONS = tuple(LABELS)
_START, _END = datetime.date(2015, 1, 1), datetime.date(2024, 12, 31)
LABEL_PREFIX = {"hospital": "Department:", "bank": "Category:", "law": "Contract type:"}


def _date(fake: Faker) -> str:
    return str(fake.date_between(start_date=_START, end_date=_END))


def _hospital(fake: Faker, rng: random.Random) -> tuple[str, str]:
    label = rng.choice(list(HOSPITAL))
    body = (
        f"Patient {fake.name()}, age {rng.randint(18, 90)}, was admitted on "
        f"{_date(fake)} with {rng.choice(HOSPITAL[label])}. "
        f"Attending physician Dr. {fake.last_name()}. Notes: {fake.sentence(nb_words=8)}"
    )
    return body, label


def _bank(fake: Faker, rng: random.Random) -> tuple[str, str]:
    label = rng.choice(list(BANK))
    body = (
        f"On {_date(fake)} {fake.name()} paid ${rng.randint(3, 900)}.{rng.randint(0, 99):02d} "
        f"to {fake.company()} {rng.choice(BANK[label])} "
        f"from account ending {fake.random_number(4, True)}. "
        f"Memo: {fake.sentence(nb_words=6)}"
    )
    return body, label


def _law(fake: Faker, rng: random.Random) -> tuple[str, str]:
    label = rng.choice(list(LAW))
    body = (
        f"Clause {rng.randint(1, 40)}. Between {fake.company()} and {fake.name()}: "
        f"{rng.choice(LAW[label])}. Governed by the laws of {fake.state()}. "
        f"Signed in {fake.city()} on {_date(fake)}."
    )
    return body, label


_GENERATORS: dict[str, Callable[[Faker, random.Random], tuple[str, str]]] = {
    "hospital": _hospital,
    "bank": _bank,
    "law": _law,
}


def labelled_records(org: str, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (record body, label) pairs of organization ``org``, reproducible from ``seed``."""
    if org not in _GENERATORS:
        raise InvalidFieldError("org", org, f"one of {list(ORGANIZATIONS)}")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return [_GENERATORS[org](fake, rng) for _ in range(n)]


def org_texts(org: str, split: str, n: int | None = None) -> list[str]:
    """Training texts (record + label) of an organization; splits use disjoint seeds."""
    if split not in ("train", "validation", "test"):
        raise InvalidFieldError("split", split, "one of ['train', 'validation', 'test']")
    if org not in ORGANIZATIONS:
        raise InvalidFieldError("org", org, f"one of {list(ORGANIZATIONS)}")
    count = n if n is not None else {"train": 512, "validation": 128, "test": 128}[split]
    records = labelled_records(org, count, seed=record_seed(org, split))
    return [f"{body} {LABEL_PREFIX[org]} {label}." for body, label in records]


def record_seed(org: str, split: str) -> int:
    """The faker seed of an organization's split (disjoint across splits and organizations)."""
    return {"train": 1, "validation": 2, "test": 3}[split] * 1000 + ORGANIZATIONS.index(org)
