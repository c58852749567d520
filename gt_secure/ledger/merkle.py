"""RFC 9162 Merkle tree over ledger lines: tree head, inclusion and consistency proofs.

Hashes (RFC 9162 section 2.1.1): a leaf is ``SHA-256(0x00 || line)``, an interior node
``SHA-256(0x01 || left || right)``; the tree over ``n`` leaves splits at the largest power of two
smaller than ``n``. :class:`MerkleTree` keeps every complete aligned subtree (``levels``), so the
root of any prefix and each proof cost O(log^2 n) hashes after one O(n) build. The verifiers are
the RFC's algorithms (sections 2.1.3.2 and 2.1.4.2), written from the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gt_secure.errors import InvalidFieldError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(line: bytes) -> bytes:
    """``SHA-256(0x00 || line)``."""
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """A tree over leaf hashes; ``levels[k][i]`` is the root of leaves ``[i*2^k, (i+1)*2^k)``."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1])
                                for i in range(0, len(below) - 1, 2)])

    @classmethod
    def of_lines(cls, lines: Sequence[bytes]) -> MerkleTree:
        """The tree whose leaves are the hashes of ``lines``."""
        return cls([leaf_hash(line) for line in lines])

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (updates the complete subtrees it closes)."""
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            pair = self.levels[level][-2:]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)``; ``start`` is aligned as in the RFC's recursion."""
        n = end - start
        if n & (n - 1) == 0:
            k = n.bit_length() - 1
            return self.levels[k][start >> k]
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (all by default); SHA-256('') for an empty tree."""
        size = self.size if size is None else size
        _check_size("size", size, self.size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PATH(index, D[size])``: the audit path of leaf ``index``."""
        size = self.size if size is None else size
        _check_size("size", size, self.size)
        if not 0 <= index < size:
            raise InvalidFieldError("index", index, f"in [0, {size})")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._subtree(start + k, end))
                end = start + k
            else:
                path.append(self._subtree(start, start + k))
                start += k
        return path[::-1]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 ``PROOF(old, D[new])``; empty when ``old`` is 0 or equals ``new``."""
        new = self.size if new is None else new
        _check_size("new_size", new, self.size)
        _check_size("old_size", old, new)
        if old in (0, new):
            return []
        proof: list[bytes] = []
        start, end, complete = 0, new, True
        while True:
            m = old - start
            if m == end - start:
                if not complete:
                    proof.append(self._subtree(start, end))
                return proof[::-1]
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, complete = start + k, False


def _check_size(name: str, size: int, limit: int) -> None:
    if not 0 <= size <= limit:
        raise InvalidFieldError(name, size, f"in [0, {limit}]")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: whether ``leaf`` is at ``index`` of the tree of ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: whether the tree of ``new_root`` extends that of ``old_root``."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
