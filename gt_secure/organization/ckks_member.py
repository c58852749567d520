"""An organization's side of a dp-ckks round, between its training and the server's sum.

1. :func:`keep_vector`: the released update vector stays on the node (not sent).
2. :func:`announce`: a fresh X25519 mask key for the round, signed (an :class:`Announcement`).
3. :func:`contribute`: given every participant's signed announcement (relayed by the server)
   and the key holder's public context, check them, mask the quantized vector with one
   pairwise mask per peer, encrypt it, sign a :class:`Contribution`, and delete the vector and
   the mask key: an organization encrypts its vector of a round once, for one participant set.

Files live in the organization's ``<state-dir>/ckks`` directory (mask keys mode 0600).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gt_secure.aggregation.ckks import encrypt_values, load_public_context
from gt_secure.aggregation.ckks_masks import (
    MaskedEncoding,
    mask_key_bytes,
    new_mask_key,
    organization_mask,
    pair_seed,
)
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.ckks_statements import (
    Announcement,
    Contribution,
    ciphertext_digest,
    context_digest,
    participants_digest,
    verify_announcements,
)
from gt_secure.organization.roster import Roster

__all__ = ["announce", "contribute", "keep_vector", "pair_transcript", "round_file"]


def round_file(directory: Path, run_id: int, round_idx: int, kind: str) -> Path:
    """Path of one per-round file (``vector.npy``, ``mask-key``, ...) in ``directory``."""
    return Path(directory) / f"{run_id}-{round_idx}.{kind}"


def pair_transcript(run_id: int, round_idx: int, a: str, b: str) -> bytes:
    """What a pair's mask seed is bound to: run, round and the two ids in order."""
    first, second = sorted((a, b))
    return f"{run_id}|{round_idx}|{first}|{second}".encode()


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def keep_vector(directory: Path, run_id: int, round_idx: int, flat: np.ndarray) -> Path:
    """Keep this round's released vector on the node until :func:`contribute` encrypts it."""
    path = round_file(directory, run_id, round_idx, "vector.npy")
    if path.exists():
        raise InvalidFieldError("round", round_idx, f"a round not yet trained in run {run_id}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(flat, dtype=np.float32))
    return path


def announce(directory: Path, org_id: str, run_id: int, round_idx: int,
             key: Ed25519PrivateKey, context: str = "") -> Announcement:
    """A fresh mask key for the round (refused twice: one mask key per round)."""
    path = round_file(directory, run_id, round_idx, "mask-key")
    if path.exists():
        raise InvalidFieldError("round", round_idx, f"a round without a mask key in run {run_id}")
    mask_key = new_mask_key()
    _write_secret(path, mask_key.private_bytes_raw())
    ann = Announcement(org_id=org_id, run_id=run_id, round=round_idx,
                       mask_key=mask_key_bytes(mask_key).hex(), context_digest=context)
    return ann.signed(key)


def contribute(directory: Path, org_id: str, run_id: int, round_idx: int,
               key: Ed25519PrivateKey, roster: Roster, announcements: Sequence[Announcement],
               key_holder: str, public_context: bytes, encoding: MaskedEncoding,
               min_orgs: int) -> tuple[list[bytes], Contribution]:
    """Check the relayed announcements, then mask, encrypt and sign this round's vector once."""
    anns = verify_announcements(announcements, roster, run_id, round_idx, key_holder)
    if len(anns) < min_orgs:
        raise InvalidFieldError("len(announcements)", len(anns),
                                f">= {min_orgs} (this organization's minimum organizations)")
    key_path = round_file(directory, run_id, round_idx, "mask-key")
    vector_path = round_file(directory, run_id, round_idx, "vector.npy")
    if not (key_path.exists() and vector_path.exists()):
        raise InvalidFieldError("round", round_idx, "a round this organization trained and "
                                "announced, not yet encrypted")
    mask_key = X25519PrivateKey.from_private_bytes(key_path.read_bytes())
    own = anns.get(org_id)
    if own is None or own.mask_key != mask_key_bytes(mask_key).hex():
        raise InvalidFieldError(f"announcements[{org_id}].mask_key",
                                None if own is None else own.mask_key[:16],
                                "this organization's own mask key of the round")
    digest = context_digest(public_context)
    if anns[key_holder].context_digest != digest:
        raise InvalidFieldError("public_context.sha256", digest,
                                f"the digest {key_holder!r} signed")
    public = load_public_context(public_context)  # refuses a context carrying the secret key
    seeds = {peer: pair_seed(mask_key, bytes.fromhex(ann.mask_key),
                             pair_transcript(run_id, round_idx, org_id, peer))
             for peer, ann in anns.items() if peer != org_id}
    vector = np.load(vector_path)
    quantized = encoding.quantize(vector, f"update[{org_id}].flat")
    mask = organization_mask(org_id, seeds, vector.shape[0], encoding.modulus_bits)
    chunks = encrypt_values(encoding.masked(quantized, mask), public)
    statement = Contribution(org_id=org_id, run_id=run_id, round=round_idx,
                             participants_digest=participants_digest(list(anns.values())),
                             context_digest=digest, ciphertext_digest=ciphertext_digest(chunks))
    key_path.unlink()
    vector_path.unlink()
    return chunks, statement.signed(key)
