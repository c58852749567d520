"""Public basis for distributed DP: orthonormality, exact projection in the span (closed form),
the hash the ledger records (k and rows), the k-dim share, and the shipped basis's hash check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from gt_secure.aggregation.ddp import DdpParams, decode_sum
from gt_secure.aggregation.ddp_basis import PublicBasis, principal_basis
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.ledger.ddp_mechanism import DistributedGaussianMechanism
from gt_secure.organization.ddp_share import basis_share
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from tests.ledger.conftest import DELTA, make_world, release

LAYOUT = "ab" * 32


def _basis(k: int = 6, d: int = 40, seed: int = 0) -> tuple[PublicBasis, np.ndarray]:
    rng = np.random.default_rng(seed)
    span = rng.normal(size=(k, d))  # (k, d): the public updates' true directions
    updates = rng.normal(size=(50, k)) @ span  # (50, d), rank k
    return principal_basis(updates, k, LAYOUT), span


def test_rows_are_orthonormal_and_projection_in_the_span_is_exact() -> None:
    basis, span = _basis()
    v = basis.vectors
    assert np.allclose(v @ v.T, np.eye(basis.k), atol=1e-12)
    x = np.array([0.5, -2.0, 1.0, 0.0, 3.0, 0.25]) @ span  # in the span
    assert np.allclose(basis.reconstruct(basis.project(x)), x, atol=1e-10)
    y = np.random.default_rng(1).normal(size=basis.dim)  # outside: the orthogonal projection
    back = basis.reconstruct(basis.project(y))
    assert np.allclose(basis.vectors @ (y - back), 0.0, atol=1e-10)
    assert np.linalg.norm(basis.project(y)) <= np.linalg.norm(y)


def test_principal_basis_orders_directions_by_energy() -> None:
    rng = np.random.default_rng(2)
    e = np.eye(5)
    updates = np.concatenate([rng.normal(size=(30, 1)) * 10 * e[3],
                              rng.normal(size=(30, 1)) * 0.1 * e[1]])  # (60, 5)
    basis = principal_basis(updates, 2, LAYOUT)
    assert np.allclose(np.abs(basis.vectors), e[[3, 1]], atol=1e-9)


def test_not_orthonormal_and_wrong_sizes_are_refused() -> None:
    with pytest.raises(InvalidFieldError, match="basis.vectors must be orthonormal"):
        PublicBasis(vectors=np.ones((2, 4)), layout_hash=LAYOUT)
    basis, _ = _basis()
    with pytest.raises(InvalidFieldError, match="update.dim"):
        basis.project(np.zeros(basis.dim + 1))
    with pytest.raises(InvalidFieldError, match="k must be in \\[1, 6\\]"):
        basis.truncate(7)


def test_hash_names_rows_and_k_and_the_file_is_checked(tmp_path: Path) -> None:
    basis, _ = _basis()
    assert basis.truncate(4).sha256() != basis.sha256()
    assert basis.truncate(6).sha256() == basis.sha256()
    path = tmp_path / "basis.safetensors"
    file_sha = basis.save(path)
    loaded = PublicBasis.load(path, file_sha)
    assert loaded.sha256() == basis.sha256() and loaded.layout_hash == LAYOUT
    with pytest.raises(InvalidFieldError, match="sha256"):
        PublicBasis.load(path, "0" * 64)


def test_k_dim_share_decodes_to_the_projection_and_the_ledger_records_the_basis(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    basis, span = _basis(k=6, d=40)
    params = DdpParams.choose(1.0, basis.k, 2.0, 3, 3, 0, 16, basis=basis.release_record())
    rng = np.random.default_rng(3)
    updates = [0.05 * rng.normal(size=6) @ span / 6 for _ in range(3)]  # norm < 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        shares = [basis_share(u, basis, params, rng, secure_mode=False) for u in updates]
    flower_mean = np.sum([s.wire for s in shares], axis=0) / 3  # what Flower dequantizes
    total = decode_sum(flower_mean, 3, params)  # (k,)
    exact = sum((s.rounded + s.noise) for s in shares) * params.scale
    assert np.allclose(total, exact) and total.shape == (6,)
    assert np.allclose(sum(s.clipped for s in shares), sum(basis.project(u) for u in updates))

    mech = shares[0].mechanism
    assert mech.dim == 6 and mech.basis is not None
    assert (mech.basis.sha256, mech.basis.k, mech.basis.ambient_dim) == (basis.sha256(), 6, 40)
    entry = release(world, "org-a", "r1-org-a", [mech])
    assert entry.mechanisms[0] == mech
    assert entry.epsilon_spent == pytest.approx(compute_epsilon([mech], DELTA, "rdp"))
    with pytest.raises(InvalidFieldError, match="dim must be == basis.k=6"):
        DistributedGaussianMechanism(**(mech.model_dump() | {"dim": 7}))
    other = basis.truncate(5)
    with pytest.raises(InvalidFieldError, match="params.basis.sha256"):
        basis_share(updates[0], other, params, rng, secure_mode=False)


def test_absent_basis_is_not_serialized() -> None:
    mech = DdpParams.choose(1.0, 64, 1.0, 3, 3, 0, 16).mechanism()
    assert "basis" not in mech.model_dump(mode="json")
    assert "basis" not in mech.model_dump_json()
