"""Privacy accounting and the tamper-evident privacy ledger.

Accounting (:mod:`~gt_secure.ledger.accountant`): mechanism records with every parameter needed
to recompute epsilon, Opacus accountants (RDP, PRV) and a dp-accounting cross-check. Epsilon is
composed per privacy unit ("example" for DP-SGD, "organization" for noise on the update vector).

Ledger (:mod:`~gt_secure.ledger.store`): an append-only transparency log. Line 1 is a signed
header fixing the owner and its budget per privacy unit (:meth:`Ledger.create`); every further
line is an Ed25519-signed, hash-chained entry; the lines are the leaves of an RFC 9162 Merkle
tree (:mod:`~gt_secure.ledger.merkle`) and every append signs a checkpoint
(:mod:`~gt_secure.ledger.note`). Witnesses cosign checkpoints after checking consistency
(:mod:`~gt_secure.ledger.witness`); proof bundles let one release be checked offline
(:mod:`~gt_secure.ledger.proof`). Organizations call :func:`check_budget` before training and
:meth:`Ledger.append_release` after releasing an update (:meth:`Ledger.append_unprotected_release`
for a release without DP: recorded, no budget); the provider's post-processing entries
use :meth:`Ledger.append_post_processing` (no epsilon). Auditors call :func:`verify_ledger`.
"""

from gt_secure.ledger.accountant import (
    DpSgdMechanism,
    Mechanism,
    VectorGaussianMechanism,
    compute_epsilon,
    epsilon_by_unit,
    noise_multiplier_for,
    reference_epsilon,
)
from gt_secure.ledger.budget import check_budget
from gt_secure.ledger.entry import LedgerEntry, canonical_json, data_fingerprint
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.note import Checkpoint, SignedCheckpoint
from gt_secure.ledger.proof import ProofBundle, check_bundle, make_bundle
from gt_secure.ledger.signing import (
    TrustedKey,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    save_keypair,
)
from gt_secure.ledger.store import Ledger, TornTail
from gt_secure.ledger.verify import Issue, Tolerance, VerifyReport, verify_ledger
from gt_secure.ledger.witness import LogConsistencyError, Witness, store_receipt, witness_ledger

__all__ = [
    "Checkpoint",
    "DpSgdMechanism",
    "Issue",
    "Ledger",
    "LedgerEntry",
    "LedgerHeader",
    "LogConsistencyError",
    "Mechanism",
    "ProofBundle",
    "SignedCheckpoint",
    "Tolerance",
    "TornTail",
    "TrustedKey",
    "VectorGaussianMechanism",
    "VerifyReport",
    "Witness",
    "canonical_json",
    "check_budget",
    "check_bundle",
    "compute_epsilon",
    "data_fingerprint",
    "epsilon_by_unit",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "make_bundle",
    "noise_multiplier_for",
    "reference_epsilon",
    "save_keypair",
    "store_receipt",
    "verify_ledger",
    "witness_ledger",
]
