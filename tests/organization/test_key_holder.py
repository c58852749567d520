"""dp-ckks without Flower: three organizations, a key holder, and a dishonest aggregator.

The reference is NumPy: the released mean times the count, divided by the step, must equal the
integer sum of ``rint(x / step)`` exactly (the key holder rounds the CKKS error away).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gt_secure.aggregation.ckks import (
    CkksKeyPair,
    add_ciphertexts,
    encrypt_values,
    load_public_context,
)
from gt_secure.errors import InvalidFieldError, UpdateVectorError
from gt_secure.organization.ckks_member import announce, contribute, keep_vector
from gt_secure.organization.ckks_statements import Announcement, Contribution, context_digest
from gt_secure.organization.key_holder import Decryption, KeyHolder
from gt_secure.organization.roster import Roster, publish_key
from gt_secure.protocols import load_protocol

ORGS = ("bank", "hospital", "law")
HOLDER = "bank"
DIM = 3000  # two ciphertext chunks of 2048 slots
SPEC = load_protocol("dp-ckks")
assert SPEC.ckks is not None
ENCODING = SPEC.ckks.encoding(SPEC.max_organizations)
PARAMS = SPEC.ckks.to_params()
NORM_BOUND = 1e3


@dataclass
class Round:
    holder: KeyHolder
    keys: dict[str, Ed25519PrivateKey]
    roster: Roster
    vectors: dict[str, np.ndarray]
    announcements: list[Announcement]
    public: bytes
    chunks: dict[str, list[bytes]]
    contributions: dict[str, Contribution]

    @property
    def context(self) -> ts.Context:
        return load_public_context(self.public)

    def sum_of(self, orgs: tuple[str, ...]) -> list[bytes]:
        return add_ciphertexts([self.chunks[o] for o in orgs], self.context)

    def decrypt(self, chunks: list[bytes], orgs: tuple[str, ...] = ORGS) -> Decryption:
        return self.holder.decrypt(1, 1, chunks, self.announcements,
                                   [self.contributions[o] for o in orgs], ENCODING, DIM,
                                   NORM_BOUND)


def _round(tmp_path: Path, min_orgs: int = 3, trained: tuple[str, ...] = ORGS) -> Round:
    keys = {org: Ed25519PrivateKey.generate() for org in ORGS}
    for org, key in keys.items():
        publish_key(tmp_path / "roster", org, key.public_key())
    roster = Roster.load(tmp_path / "roster")
    holder = KeyHolder(tmp_path / HOLDER, HOLDER, roster, min_orgs)
    rng = np.random.default_rng(7)
    vectors = {org: rng.normal(0, 1, DIM).astype(np.float32) for org in ORGS}
    public = holder.new_keys(1, 1, PARAMS)
    anns = []
    for org in ORGS:
        keep_vector(tmp_path / org, 1, 1, vectors[org])
        digest = context_digest(public) if org == HOLDER else ""
        anns.append(announce(tmp_path / org, org, 1, 1, keys[org], digest))
    chunks, contributions = {}, {}
    for org in trained:
        chunks[org], contributions[org] = contribute(
            tmp_path / org, org, 1, 1, keys[org], roster, anns, HOLDER, public, ENCODING, 2)
    return Round(holder, keys, roster, vectors, anns, public, chunks, contributions)


def test_released_mean_is_the_exact_quantized_mean(tmp_path: Path) -> None:
    r = _round(tmp_path)
    out = r.decrypt(r.sum_of(ORGS))
    reference = sum(np.rint(r.vectors[o].astype(np.float64) / ENCODING.step) for o in ORGS)
    np.testing.assert_array_equal(out.mean * 3 / ENCODING.step, reference)
    exact = np.mean([r.vectors[o].astype(np.float64) for o in ORGS], axis=0)
    assert float(np.max(np.abs(out.mean - exact))) <= out.error_bound == ENCODING.step / 2
    assert out.orgs == sorted(ORGS)
    assert not (tmp_path / HOLDER / "1-1.keys").exists()  # the secret key is gone


def test_one_ciphertext_presented_with_three_signatures_is_refused(tmp_path: Path) -> None:
    # The aggregator sums law's ciphertext alone (three times: the count still says 3).
    r = _round(tmp_path)
    with pytest.raises(UpdateVectorError, match=r"max\(abs\(mean of 3\)\)"):
        r.decrypt(r.sum_of(("law", "law", "law")))
    # The key was spent on it: not even the honest sum is decrypted afterwards.
    with pytest.raises(InvalidFieldError, match="once per round"):
        r.decrypt(r.sum_of(ORGS))


def test_fewer_signed_contributions_than_the_minimum_are_not_decrypted(tmp_path: Path) -> None:
    # 2 of 3 organizations refused: the aggregator presents the one it has, then two.
    r = _round(tmp_path, trained=("bank",))
    with pytest.raises(InvalidFieldError, match=r"len\(contributions\) must be >= 3") as err:
        r.decrypt(r.sum_of(("bank",)), orgs=("bank",))
    assert "counted from signed contributions" in str(err.value)
    assert (tmp_path / HOLDER / "1-1.keys").is_dir()  # nothing decrypted
    assert not (tmp_path / HOLDER / "1-1.done").exists()


def test_forged_or_mismatched_statements_are_refused(tmp_path: Path) -> None:
    r = _round(tmp_path)
    total = r.sum_of(ORGS)
    good = r.contributions["law"]
    tampered = good.model_copy(update={"ciphertext_digest": "0" * 64})
    r.contributions["law"] = tampered
    with pytest.raises(InvalidFieldError, match=r"contributions\[2\]\.signature"):
        r.decrypt(total)
    rogue = Ed25519PrivateKey.generate()
    r.contributions["law"] = good.model_copy(update={"signature": ""}).signed(rogue)
    with pytest.raises(InvalidFieldError, match="by law's roster key"):
        r.decrypt(total)
    other = good.model_copy(update={"participants_digest": "1" * 64}).signed(r.keys["law"])
    r.contributions["law"] = other
    with pytest.raises(InvalidFieldError, match=r"contributions\[2\]\.participants_digest"):
        r.decrypt(total)
    r.contributions["law"] = good
    out = r.decrypt(total)  # the refusals consumed nothing
    assert out.count == 3
    with pytest.raises(InvalidFieldError, match="once per round"):
        r.decrypt(total)


def test_a_non_integer_forgery_is_refused(tmp_path: Path) -> None:
    r = _round(tmp_path)
    half = encrypt_values(np.full(DIM, 0.5), r.context)
    with pytest.raises(InvalidFieldError, match=r"ckks_sum\.integer_distance"):
        r.decrypt(add_ciphertexts([r.sum_of(ORGS), half], r.context))


def test_members_check_the_relayed_statements(tmp_path: Path) -> None:
    r = _round(tmp_path, trained=("bank", "hospital"))
    args = (r.keys["law"], r.roster)
    # Too few participants for law's own minimum.
    with pytest.raises(InvalidFieldError, match=r"len\(announcements\) must be >= 4"):
        contribute(tmp_path / "law", "law", 1, 1, *args, r.announcements, HOLDER, r.public,
                   ENCODING, 4)
    # The aggregator swaps in a public context of its own: the key holder did not sign it.
    own = CkksKeyPair.generate(PARAMS).public_context_bytes()
    with pytest.raises(InvalidFieldError, match=r"public_context\.sha256"):
        contribute(tmp_path / "law", "law", 1, 1, *args, r.announcements, HOLDER, own,
                   ENCODING, 3)
    # An announcement from another round, or one the aggregator forged, is refused.
    stale = r.announcements[0].model_copy(update={"round": 2})
    with pytest.raises(InvalidFieldError, match=r"announcements\[0\]\.round"):
        contribute(tmp_path / "law", "law", 1, 1, *args, [stale, *r.announcements[1:]], HOLDER,
                   r.public, ENCODING, 3)
    # Encrypted once: the second request for the same round is refused.
    contribute(tmp_path / "law", "law", 1, 1, *args, r.announcements, HOLDER, r.public,
               ENCODING, 3)
    with pytest.raises(InvalidFieldError, match="not yet encrypted"):
        contribute(tmp_path / "law", "law", 1, 1, *args, r.announcements, HOLDER, r.public,
                   ENCODING, 3)
    with pytest.raises(InvalidFieldError, match="without CKKS keys"):
        r.holder.new_keys(1, 1, PARAMS)


def test_roster_keeps_the_first_key_of_an_organization(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    publish_key(tmp_path, "bank", key)
    publish_key(tmp_path, "bank", key)
    with pytest.raises(InvalidFieldError, match=r"roster\[bank\]"):
        publish_key(tmp_path, "bank", Ed25519PrivateKey.generate().public_key())


def test_keys_of_a_voided_round_are_retired_by_the_next_round(tmp_path: Path) -> None:
    r = _round(tmp_path)
    total = r.sum_of(ORGS)
    r.holder.new_keys(1, 2, PARAMS)  # round 1 was never decrypted: its key goes
    assert not (tmp_path / HOLDER / "1-1.keys").exists()
    with pytest.raises(InvalidFieldError, match="once per round"):
        r.decrypt(total)
