"""Shared fixtures: signing keys and a small ledger with releases at both units and lineage."""

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


@dataclass
class World:
    """Keys of two organizations and the provider, and a ledger path."""

    keys: dict[str, Ed25519PrivateKey]
    key_dir: Path
    trusted: dict[str, TrustedKey]
    ledger: Ledger


def release(world: World, org: str, release_id: str, mechanisms: list, budget: float = 10.0,
            accountant: str = "rdp", key_owner: str | None = None, round: int | None = 1):
    """Append a release entry for ``org`` with sensible defaults."""
    return world.ledger.append_release(
        org_id=org, release_id=release_id, mechanisms=mechanisms, delta=DELTA,
        budget_epsilon=budget, base_model_hash=BASE_HASH,
        update_vector_hash=sha256_hex(release_id.encode()),
        data_fingerprint=data_fingerprint([org, "private text"], SALT),
        signing_key=world.keys[key_owner or org], accountant=accountant, round=round)


def populate(world: World) -> None:
    """Releases of org-a (both units) and org-b, then aggregate and adapter lineage."""
    release(world, "org-a", "r1-org-a", [DPSGD])
    release(world, "org-a", "r1-org-a", [VECTOR])
    release(world, "org-b", "r1-org-b", [VECTOR])
    world.ledger.append_post_processing(
        org_id="provider", release_id="agg-1", parents=["r1-org-a", "r1-org-b"],
        base_model_hash=BASE_HASH, update_vector_hash=sha256_hex(b"agg"),
        signing_key=world.keys["provider"], round=1)
    world.ledger.append_post_processing(
        org_id="provider", release_id="adapter-1", parents=["agg-1"],
        base_model_hash=sha256_hex(b"llm base"), update_vector_hash=sha256_hex(b"adapter"),
        signing_key=world.keys["provider"], round=1)


@pytest.fixture
def world(tmp_path: Path) -> World:
    keys = {owner: generate_key() for owner in ("org-a", "org-b", "provider")}
    key_dir = tmp_path / "keys"
    for owner, key in keys.items():
        save_keypair(key, key_dir, owner)
    return World(keys, key_dir, load_trusted_keys([key_dir]), Ledger(tmp_path / "ledger.jsonl"))


@pytest.fixture
def populated(world: World) -> World:
    populate(world)
    return world
