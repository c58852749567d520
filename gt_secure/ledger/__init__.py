"""Privacy accounting and the tamper-evident privacy ledger.

Accounting (:mod:`~gt_secure.ledger.accountant`): mechanism records with every parameter needed
to recompute epsilon, Opacus accountants (RDP, PRV) and a dp-accounting cross-check. Epsilon is
composed per privacy unit ("example" for DP-SGD, "organization" for noise on the update vector).

Ledger (:mod:`~gt_secure.ledger.store`): append-only JSONL of Ed25519-signed, hash-chained
entries. Organizations call :func:`check_budget` before training and
:meth:`Ledger.append_release` after releasing an update; the provider calls
:meth:`Ledger.append_post_processing` for the aggregate and the translated adapter (no epsilon).
Auditors call :func:`verify_ledger`.
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

__all__ = [
    "DpSgdMechanism",
    "Issue",
    "Ledger",
    "LedgerEntry",
    "Mechanism",
    "Tolerance",
    "TornTail",
    "TrustedKey",
    "VectorGaussianMechanism",
    "VerifyReport",
    "canonical_json",
    "check_budget",
    "compute_epsilon",
    "data_fingerprint",
    "epsilon_by_unit",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "noise_multiplier_for",
    "reference_epsilon",
    "save_keypair",
    "verify_ledger",
]
