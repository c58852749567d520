"""The shipped public basis: hash-checked load, published k and clip norms, the translator's
TinyLM layout, and a tampered file refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.errors import InvalidFieldError
from gt_secure.provider import public_basis as pb


def test_shipped_basis_is_published_with_its_hash_k_and_clip_norms() -> None:
    manifest = json.loads(pb.BASIS_MANIFEST.read_text())
    translator = json.loads((pb.SHIPPED / "manifest.json").read_text())
    basis = pb.load_public_basis()
    assert basis.k == manifest["k"] and basis.sha256() == manifest["k_sha256"]
    assert basis.layout_hash == translator["tiny_layout_hash"]
    assert np.allclose(basis.vectors @ basis.vectors.T, np.eye(basis.k), atol=1e-10)
    assert pb.published_clip(basis.k) > 0 and pb.published_clip(basis.dim) > 0
    with pytest.raises(InvalidFieldError, match="published clip norms"):
        pb.published_clip(3)


def test_public_clip_is_the_median_k_space_norm() -> None:
    basis = PublicBasis(vectors=np.eye(4)[:2], layout_hash="x")
    calibration = np.array([[3.0, 4.0, 9.0, 9.0], [0.0, 1.0, 0.0, 0.0], [0.0, 2.0, 5.0, 0.0]])
    assert pb.public_clip(basis, calibration) == pytest.approx(2.0)  # norms 5, 1, 2


def test_a_tampered_basis_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "basis.safetensors"
    shutil.copy(pb.BASIS_FILE, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    expected = json.loads(pb.BASIS_MANIFEST.read_text())["file_sha256"]
    with pytest.raises(InvalidFieldError, match="sha256"):
        PublicBasis.load(copy, expected)
