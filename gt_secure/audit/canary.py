"""Canary audit: insert secret synthetic records, train, attack, bound epsilon, compare.

Each canary is inserted independently with probability 1/2 (seeded coins, recorded in the
manifest), as the one-run bound of Steinke, Nasr & Jagielski (NeurIPS 2023) requires. The
training function is injected, so the same audit runs against the plain fine-tune used by the
controls and against the organization's DP-SGD pipeline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from faker import Faker
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from gt_secure.audit.attacks import MembershipAttack
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.finetune import TrainFn
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict
from gt_secure.errors import InvalidFieldError

DIAGNOSES = (
    "type 2 diabetes", "hypertension", "asthma", "migraine", "hypothyroidism",
    "atrial fibrillation", "celiac disease", "gout", "psoriasis", "epilepsy",
    "Crohn's disease", "glaucoma", "anemia", "sleep apnea", "rheumatoid arthritis",
)


def generate_canaries(n: int, seed: int) -> list[str]:
    """``n`` distinct synthetic patient records from a seeded Faker (en_US)."""
    if n < 2:
        raise InvalidFieldError("n_canaries", n, ">= 2")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    out: list[str] = []
    while len(out) < n:
        record = (
            f"Patient {fake.name()}, SSN {fake.ssn()}, born {fake.date_of_birth()}, "
            f"MRN {fake.bothify('??######').upper()}, diagnosis: "
            f"{fake.random_element(DIAGNOSES)}."
        )
        if record not in out:
            out.append(record)
    return out


class CanaryManifest(BaseModel):
    """The canaries of one audit and their secret in/out coins."""

    model_config = ConfigDict(frozen=True)
    canary_seed: int
    split_seed: int
    canaries: list[str]
    is_member: list[bool]

    @model_validator(mode="after")
    def _same_length(self) -> CanaryManifest:
        if len(self.canaries) != len(self.is_member):
            raise InvalidFieldError("is_member", len(self.is_member),
                                    f"one flag per canary ({len(self.canaries)})")
        return self

    @property
    def members(self) -> list[str]:
        """Canaries inserted into the training data."""
        return [c for c, m in zip(self.canaries, self.is_member, strict=True) if m]

    def save(self, path: str | Path) -> None:
        """Write the manifest as JSON (it is secret: it reveals the membership coins)."""
        Path(path).write_text(self.model_dump_json(indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CanaryManifest:
        """Read a manifest written by :meth:`save`."""
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


PUBLIC_FILE, SECRET_FILE = "canaries_public.txt", "canaries_secret.json"


def write_parts(manifest: CanaryManifest, out: str | Path) -> tuple[Path, Path]:
    """Write the PUBLIC part (the texts to insert, one per line) and the SECRET manifest apart.

    ``out`` is a folder (``canaries_public.txt`` + ``canaries_secret.json``) or a ``.json``
    path for the secret manifest, with ``<stem>.public.txt`` beside it.
    """
    out = Path(out)
    if out.suffix == ".json":
        secret, public = out, out.with_name(f"{out.stem}.public.txt")
    else:
        secret, public = out / SECRET_FILE, out / PUBLIC_FILE
    if any("\n" in c or "\r" in c for c in manifest.canaries):
        raise InvalidFieldError("canaries", "a text with a line break", "one line each")
    secret.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(secret)
    public.write_text("".join(f"{c}\n" for c in manifest.members), encoding="utf-8")
    return public, secret


def make_manifest(n_canaries: int, canary_seed: int, split_seed: int) -> CanaryManifest:
    """Generate canaries and flip one fair seeded coin per canary (True = insert)."""
    canaries = generate_canaries(n_canaries, canary_seed)
    coins = np.random.default_rng(split_seed).random(n_canaries) < 0.5
    return CanaryManifest(canary_seed=canary_seed, split_seed=split_seed, canaries=canaries,
                          is_member=[bool(c) for c in coins])


def insert_canaries(
    texts: Sequence[str], manifest: CanaryManifest, *, repeats: int = 1, seed: int = 0
) -> list[str]:
    """``texts`` plus ``repeats`` copies of each member canary, in a seeded shuffled order."""
    if repeats < 1:
        raise InvalidFieldError("repeats", repeats, ">= 1")
    data = list(texts) + manifest.members * repeats
    random.Random(seed).shuffle(data)
    return data


def audit_model(
    model: nn.Module,
    manifest: CanaryManifest,
    attack: MembershipAttack,
    *,
    claimed_epsilon: float,
    delta: float,
    beta: float = 0.05,
    organization: str = "",
    ledger_release_ids: Sequence[str] = (),
) -> AuditResult:
    """Score every canary against ``model`` and bound epsilon with the one-run estimator."""
    if not claimed_epsilon >= 0:
        raise InvalidFieldError("claimed_epsilon", claimed_epsilon, ">= 0")
    scores = attack.score(model, manifest.canaries)
    labels = manifest.is_member
    bound = one_run_audit(scores, labels, delta=delta, beta=beta)
    return AuditResult(
        organization=organization,
        attack=attack.name,
        metrics=attack_metrics(scores, labels),
        empirical_epsilon=bound,
        claimed_epsilon=claimed_epsilon,
        delta=delta,
        verdict=verdict(bound.epsilon, claimed_epsilon),
        canary_seed=manifest.canary_seed,
        split_seed=manifest.split_seed,
        n_canaries=len(manifest.canaries),
        ledger_release_ids=list(ledger_release_ids),
        scores=[float(s) for s in scores],
        is_member=list(labels),
    )


def run_canary_audit(
    train: TrainFn,
    public_texts: Sequence[str],
    attack: MembershipAttack,
    *,
    claimed_epsilon: float,
    delta: float,
    n_canaries: int = 64,
    canary_seed: int = 0,
    split_seed: int = 0,
    repeats: int = 1,
    beta: float = 0.05,
    organization: str = "",
    ledger_release_ids: Sequence[str] = (),
) -> AuditResult:
    """Generate and insert canaries, call ``train(texts) -> model``, then :func:`audit_model`."""
    manifest = make_manifest(n_canaries, canary_seed, split_seed)
    model = train(insert_canaries(public_texts, manifest, repeats=repeats, seed=split_seed))
    return audit_model(model, manifest, attack, claimed_epsilon=claimed_epsilon, delta=delta,
                       beta=beta, organization=organization,
                       ledger_release_ids=ledger_release_ids)
