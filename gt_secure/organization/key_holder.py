"""The key-holder organization of a dp-ckks round: it makes the round's CKKS keys and decrypts
one sum, never an individual ciphertext, and only after its own checks.

:meth:`KeyHolder.decrypt` refuses (an :class:`~gt_secure.errors.InvalidFieldError` naming the
field) unless

- every announcement and contribution is signed by its organization's roster key for this run
  and round, one per organization, and every announced participant signed a contribution for
  exactly that participant set and this round's public context;
- the signed contributions number at least the key holder's own ``min_orgs`` (counted from the
  signatures, not from the server's word);
- this round was not decrypted before (the secret key is deleted by the first decryption);
- the decrypted sum is within the CKKS error bound of integers, and the mean it releases keeps
  every coordinate within ``max_abs`` and its L2 norm within the clip-and-noise bound.

The server can still sum other ciphertexts than the contributors' (it holds the public key):
the pairwise masks (:mod:`gt_secure.aggregation.ckks_masks`) make any such sum uniform noise
modulo ``2**mask_bits``, which the last two checks refuse. Only the mean is released: the
decrypted sum is rounded to integers first, so no CKKS noise leaves the key holder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gt_secure.aggregation.ckks import CkksKeyPair, EncryptedVector, decrypt_sum
from gt_secure.aggregation.ckks_masks import MaskedEncoding
from gt_secure.aggregation.ckks_params import CkksParams
from gt_secure.errors import InvalidFieldError, UpdateVectorError
from gt_secure.organization.ckks_member import round_file
from gt_secure.organization.ckks_statements import (
    Announcement,
    Contribution,
    context_digest,
    participants_digest,
    verify_announcements,
)
from gt_secure.organization.roster import Roster

__all__ = ["Decryption", "KeyHolder"]


@dataclass(frozen=True)
class Decryption:
    """What the key holder releases: the mean of ``count`` signed contributions."""

    mean: np.ndarray
    orgs: list[str]
    error_bound: float

    @property
    def count(self) -> int:
        """Number of organizations in the mean."""
        return len(self.orgs)


@dataclass(frozen=True)
class KeyHolder:
    """A key-holder organization: its ``<state-dir>/ckks`` directory, roster and minimum."""

    directory: Path
    org_id: str
    roster: Roster
    min_orgs: int

    def new_keys(self, run_id: int, round_idx: int, params: CkksParams) -> bytes:
        """Fresh CKKS keys for the round (secret key mode 0600); the public context bytes.

        Keys of this run's other rounds that were never used (a voided round) are deleted and
        their rounds closed: a key never outlives its round."""
        keys_dir = round_file(self.directory, run_id, round_idx, "keys")
        if keys_dir.exists() or round_file(self.directory, run_id, round_idx, "done").exists():
            raise InvalidFieldError("round", round_idx,
                                    f"a round without CKKS keys in run {run_id}")
        for stale in self.directory.glob(f"{run_id}-*.keys"):
            shutil.rmtree(stale)
            stale.with_suffix(".done").write_text(json.dumps({"orgs": [], "retired": True}))
        keys = CkksKeyPair.generate(params)
        keys.save(keys_dir)
        return keys.public_context_bytes()

    def _check(self, keys: CkksKeyPair, run_id: int, round_idx: int,
               announcements: Sequence[Announcement],
               contributions: Sequence[Contribution]) -> list[str]:
        digest = context_digest(keys.public_context_bytes())
        anns = verify_announcements(announcements, self.roster, run_id, round_idx, self.org_id)
        if anns[self.org_id].context_digest != digest:
            raise InvalidFieldError(f"announcements[{self.org_id}].context_digest",
                                    anns[self.org_id].context_digest, f"this round's {digest}")
        wanted = participants_digest(list(anns.values()))
        seen: set[str] = set()
        for i, statement in enumerate(contributions):
            field = f"contributions[{i}]"
            statement.check(self.roster, run_id, round_idx, field)
            if statement.org_id in seen or statement.org_id not in anns:
                raise InvalidFieldError(f"{field}.org_id", statement.org_id,
                                        "an announced participant, once")
            if statement.participants_digest != wanted:
                raise InvalidFieldError(f"{field}.participants_digest",
                                        statement.participants_digest, f"{wanted} (announced)")
            if statement.context_digest != digest:
                raise InvalidFieldError(f"{field}.context_digest", statement.context_digest,
                                        f"this round's {digest}")
            seen.add(statement.org_id)
        if len(seen) < self.min_orgs:
            raise InvalidFieldError("len(contributions)", len(seen),
                                    f">= {self.min_orgs} (the key holder's minimum "
                                    "organizations, counted from signed contributions)")
        if missing := sorted(set(anns) - seen):
            raise InvalidFieldError("contributions.missing", missing,
                                    "empty (every announced participant signed)")
        return sorted(seen)

    def decrypt(self, run_id: int, round_idx: int, encrypted_sum: EncryptedVector,
                announcements: Sequence[Announcement], contributions: Sequence[Contribution],
                encoding: MaskedEncoding, length: int, norm_bound: float) -> Decryption:
        """Check, decrypt once, decode and release the mean (see the module docstring)."""
        done = round_file(self.directory, run_id, round_idx, "done")
        keys_dir = round_file(self.directory, run_id, round_idx, "keys")
        if done.exists():
            raise InvalidFieldError("round", round_idx,
                                    f"a round not yet decrypted in run {run_id} (once per round)")
        if not keys_dir.is_dir():
            raise InvalidFieldError("round", round_idx,
                                    f"a round whose keys {self.org_id!r} made in run {run_id}")
        keys = CkksKeyPair.load(keys_dir)
        orgs = self._check(keys, run_id, round_idx, announcements, contributions)
        done.write_text(json.dumps({"orgs": orgs}))  # before decrypting: never a second time
        try:
            decrypted = decrypt_sum(encrypted_sum, keys, length)
        except InvalidFieldError:
            raise
        except Exception as err:  # SEAL raises ValueError/RuntimeError on foreign bytes
            raise InvalidFieldError("encrypted_sum", f"<{len(encrypted_sum)} chunks>",
                                    "ciphertexts under this round's public key") from err
        finally:
            shutil.rmtree(keys_dir)
        total = encoding.decode_sum(decrypted, keys.params.error_bound(len(orgs)))
        mean = total / len(orgs)
        _check_mean(mean, len(orgs), encoding, norm_bound)
        return Decryption(mean, orgs, encoding.step / 2)


def _check_mean(mean: np.ndarray, count: int, encoding: MaskedEncoding, norm_bound: float) -> None:
    field = f"mean of {count}"
    peak = float(np.max(np.abs(mean))) if mean.size else 0.0
    if peak > encoding.max_abs + encoding.step:
        raise UpdateVectorError(f"max(abs({field}))", round(peak, 6), f"<= {encoding.max_abs}")
    slack = encoding.step / 2 * float(np.sqrt(mean.size))
    norm = float(np.linalg.norm(mean))
    if norm > norm_bound + slack:
        raise UpdateVectorError(f"{field}.l2_norm", round(norm, 6),
                                f"<= {norm_bound + slack:.6g} (clip bound)")
