"""Shared fixtures: signing keys and org-a's ledger with releases at both units and lineage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gt_secure.ledger import (
    DpSgdMechanism,
    Ledger,
    VectorGaussianMechanism,
    data_fingerprint,
    generate_key,
    load_trusted_keys,
    save_keypair,
)
from gt_secure.ledger.entry import sha256_hex
from gt_secure.ledger.signing import TrustedKey

BASE_HASH = sha256_hex(b"tinylm base")
DELTA = 1e-5
SALT = b"0123456789abcdef"
DPSGD = DpSgdMechanism(sample_rate=0.01, noise_multiplier=1.0, steps=100, clip_norm=1.0)
VECTOR = VectorGaussianMechanism(noise_multiplier=2.0, clip_norm=1.0)


BUDGET = {"example": 10.0, "organization": 10.0}


@dataclass
class World:
    """Keys of two organizations and the provider, and org-a's ledger (budget ``BUDGET``)."""

    keys: dict[str, Ed25519PrivateKey]
    key_dir: Path
    trusted: dict[str, TrustedKey]
    ledger: Ledger


def release(world: World, org: str, release_id: str, mechanisms: list,
            accountant: str = "rdp", key_owner: str | None = None, round: int | None = 1):
    """Append a release entry for ``org`` with sensible defaults."""
    return world.ledger.append_release(
        org_id=org, release_id=release_id, mechanisms=mechanisms, delta=DELTA,
        base_model_hash=BASE_HASH,
        update_vector_hash=sha256_hex(release_id.encode()),
        data_fingerprint=data_fingerprint([org, "private text"], SALT),
        signing_key=world.keys[key_owner or org], accountant=accountant, round=round)


def post(world: World, release_id: str, parents: list[str], owner: str = "provider"):
    """Append a post-processing entry signed by ``owner`` (checkpoint signed by org-a)."""
    return world.ledger.append_post_processing(
        org_id=owner, release_id=release_id, parents=parents, base_model_hash=BASE_HASH,
        update_vector_hash=sha256_hex(release_id.encode()), signing_key=world.keys[owner],
        log_key=world.keys["org-a"], round=1)


def populate(world: World) -> None:
    """Releases of org-a (both units, two rounds), then aggregate and adapter lineage."""
    release(world, "org-a", "r1-org-a", [DPSGD])
    release(world, "org-a", "r1-org-a", [VECTOR])
    release(world, "org-a", "r2-org-a", [VECTOR], round=2)
    post(world, "agg-1", ["r1-org-a", "r2-org-a"])
    post(world, "adapter-1", ["agg-1"])


def make_world(directory: Path, budget: dict[str, float] | None = None) -> World:
    """Fresh keys under ``directory/keys`` and org-a's newly created ledger."""
    keys = {owner: generate_key() for owner in ("org-a", "org-b", "provider")}
    key_dir = directory / "keys"
    for owner, key in keys.items():
        save_keypair(key, key_dir, owner)
    ledger = Ledger.create(directory / "ledger.jsonl", owner="org-a",
                           budget=budget or BUDGET,  # type: ignore[arg-type]
                           signing_key=keys["org-a"])
    return World(keys, key_dir, load_trusted_keys([key_dir]), ledger)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def populated(world: World) -> World:
    populate(world)
    return world
