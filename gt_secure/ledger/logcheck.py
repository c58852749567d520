"""Checks of a ledger file as a transparency log, for the verifier: header and checkpoints.

Each function returns problems as ``(line, check, message)`` (line 0: the file as a whole) and
never raises on a bad ledger. A checkpoint (the owner's ``<ledger>.checkpoint``, one given with
``--checkpoint``, or a receipt cosigned by another party, ``--receipt``) must be of this log's
origin, signed by its owner, and the ledger must extend it: a ledger shorter than the checkpoint
was truncated or rolled back; a prefix whose root differs had an entry deleted or changed, or is
a fork.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.log import owner_signed, parse_header
from gt_secure.ledger.merkle import MerkleTree
from gt_secure.ledger.note import SignedCheckpoint, verified_signers
from gt_secure.ledger.signing import TrustedKey

Problem = tuple[int, str, str]


def header_problems(lines: Sequence[bytes], trusted: Mapping[str, TrustedKey]
                    ) -> tuple[LedgerHeader | None, list[Problem]]:
    """The header if line 1 is a valid one signed by a trusted key of its owner; problems."""
    if not lines:
        return None, [(1, "header", "no header line (a ledger starts with its signed header)")]
    try:
        header = parse_header(lines[0])
    except LedgerIntegrityError as err:
        return None, [(1, "header", err.reason)]
    key = trusted.get(header.signer)
    if key is None or key.owner != header.owner:
        return header, [(1, "signature", f"header key {header.signer} is not a trusted key of "
                         f"owner={header.owner!r}")]
    return header, []


def checkpoint_problems(lines: Sequence[bytes], tree: MerkleTree, header: LedgerHeader,
                        text: str, what: str, trusted: Mapping[str, TrustedKey],
                        require_cosigner: bool = False) -> tuple[int | None, list[Problem]]:
    """Tree size of the checkpoint in ``text`` (None if unusable) and what is wrong with it."""
    try:
        signed = SignedCheckpoint.parse(text)
    except InvalidFieldError as err:
        return None, [(0, "checkpoint", f"{what}: {err}")]
    cp = signed.checkpoint
    if cp.origin != header.origin:
        return None, [(0, "checkpoint", f"{what} is for origin {cp.origin!r}, not "
                       f"{header.origin!r}")]
    problems: list[Problem] = []
    if not owner_signed(signed, header):
        problems.append((0, "checkpoint", f"{what} is not signed by the owner {header.owner!r}"))
    if require_cosigner:
        cosigners = sorted(name for name, kind in verified_signers(signed, trusted).items()
                           if kind == "cosignature" and name != header.owner)
        if not cosigners:
            problems.append((0, "receipt", f"{what} has no cosignature by a trusted party "
                             "other than the owner"))
    if cp.size > len(lines):
        problems.append((len(lines) + 1, "truncated", f"{what} commits to {cp.size} lines but "
                         f"the ledger has {len(lines)}: entries were dropped or the ledger was "
                         "rolled back"))
    elif cp.size == 0 or tree.root(cp.size) != cp.root:
        problems.append((0, "fork", f"the ledger's first {cp.size} lines do not hash to "
                         f"{what}'s root: an entry was deleted, changed or inserted, or the "
                         "history forked"))
    return cp.size, problems
