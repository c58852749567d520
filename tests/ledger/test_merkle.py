"""The Merkle tree against RFC 9162's recursive definitions (a slow reference) and fixed values."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# Leaves and roots of the RFC 6962/9162 reference test data (certificate-transparency, Trillian).
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                        "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH, literally."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]), literally."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b), literally."""
    if m == len(d):
        return [] if b else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def data(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def test_reference_vectors() -> None:
    tree = MerkleTree.of_lines(CT_LEAVES)
    for size, root in CT_ROOTS.items():
        assert tree.root(size).hex() == root
    assert tree.root(0) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_hand_computed_three_leaves() -> None:
    a, b, c = (hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    root = hashlib.sha256(b"\x01" + ab + c).digest()
    tree = MerkleTree.of_lines([b"a", b"b", b"c"])
    assert (leaf_hash(b"a"), node_hash(a, b), tree.root()) == (a, ab, root)
    assert tree.inclusion_proof(2) == [ab] and tree.inclusion_proof(0) == [b, c]
    assert tree.consistency_proof(2) == [c] and tree.consistency_proof(1, 3) == [b, c]
    assert verify_inclusion(2, 3, c, [ab], root)
    assert verify_consistency(2, 3, ab, root, [c])
    assert not verify_consistency(2, 3, ab, root, [a])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 70), st.data())
def test_inclusion_matches_rfc(size: int, draw: st.DataObject) -> None:
    leaves = data(size)
    index = draw.draw(st.integers(0, size - 1))
    tree = MerkleTree.of_lines(leaves)
    proof = tree.inclusion_proof(index)
    root = mth(leaves)
    assert tree.root() == root and proof == path(index, leaves)
    assert verify_inclusion(index, size, leaf_hash(leaves[index]), proof, root)
    assert not verify_inclusion(index, size, leaf_hash(b"forged"), proof, root)
    if size > 1:
        assert not verify_inclusion((index + 1) % size, size, leaf_hash(leaves[index]), proof,
                                    root)
        assert not verify_inclusion(index, size, leaf_hash(leaves[index]), proof[:-1], root)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 70), st.data())
def test_consistency_matches_rfc(new: int, draw: st.DataObject) -> None:
    leaves = data(new)
    old = draw.draw(st.integers(1, new))
    tree = MerkleTree.of_lines(leaves)
    proof = tree.consistency_proof(old)
    assert proof == subproof(old, leaves, True)
    assert tree.root(old) == mth(leaves[:old])
    assert verify_consistency(old, new, mth(leaves[:old]), mth(leaves), proof)
    forked = leaves[: old - 1] + [b"fork"] + leaves[old:]
    assert not verify_consistency(old, new, mth(forked[:old]), mth(leaves), proof)
    if old < new:
        assert not verify_consistency(old, new, mth(leaves[:old]), mth(forked), proof)
        assert not verify_consistency(old, new, mth(leaves[:old]), mth(leaves), proof[:-1])


@given(st.lists(st.binary(max_size=8), max_size=40))
def test_incremental_append_equals_rebuild(lines: list[bytes]) -> None:
    tree = MerkleTree([])
    for i, line in enumerate(lines, start=1):
        tree.append(leaf_hash(line))
        assert tree.root() == mth(lines[:i])


def test_bad_sizes_name_the_field() -> None:
    tree = MerkleTree.of_lines(data(4))
    with pytest.raises(InvalidFieldError, match="index must be in"):
        tree.inclusion_proof(4)
    with pytest.raises(InvalidFieldError, match="old_size must be in"):
        tree.consistency_proof(5)
    assert not verify_consistency(3, 2, b"", b"", [])
    assert not verify_inclusion(4, 4, b"", [], b"")
