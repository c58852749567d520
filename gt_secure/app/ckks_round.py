"""A dp-ckks round on the provider side: the server relays and sums blind; it never holds a
CKKS secret key, and the key holder never receives an individual ciphertext.

Stages (each a Flower TRAIN message per node, :mod:`gt_secure.app.ckks_messages`):

1. ``train``: every organization trains and keeps its vector; the server screens the metadata.
2. ``keys``: each participant announces a signed X25519 mask key; the key holder (the first
   participant by id) also makes the round's CKKS keys and signs the public context's digest.
   A participant that fails here is left out (no mask has been used yet).
3. ``encrypt``: every announcer checks the relayed announcements, masks, encrypts once and signs
   its contribution. A participant that fails here voids the round: its masks do not cancel.
4. ``decrypt``: the server sends the sum of the ciphertexts and the signed statements to the key
   holder, which checks them (:mod:`gt_secure.organization.key_holder`) and releases the mean.

The functions for each stage are public so that tests can play a dishonest server with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import RecordDict
from flwr.serverapp import Grid

from gt_secure.aggregation.ckks import add_ciphertexts, check_ciphertexts, load_public_context
from gt_secure.app import ckks_messages as wire
from gt_secure.app.messages import KEY_LAYOUT, make_ckks_request, read_meta
from gt_secure.app.rounds import RoundResult, collect_replies
from gt_secure.app.validation import Expected, Rejection, check_metadata, check_sum
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.ckks_statements import Announcement, Contribution

log = logging.getLogger("gt_secure.app")

__all__ = ["CkksState", "ckks_round", "decrypt_stage", "encrypt_stage", "key_stage",
           "train_stage"]


@dataclass
class CkksState:
    """What the server holds during a round (nothing it could decrypt)."""

    result: RoundResult
    dim: int
    key_holder: str = ""
    public_context: bytes = b""
    announcements: dict[str, Announcement] = field(default_factory=dict)
    chunks: dict[str, list[bytes]] = field(default_factory=dict)
    contributions: dict[str, Contribution] = field(default_factory=dict)


def _stage(grid: Grid, state: CkksState, orgs: list[str], name: str,
           request: Callable[[], RecordDict], timeout: float,
           accept: Callable[[str, RecordDict], None]) -> list[str]:
    """Send ``request`` to the nodes of ``orgs``; the organizations whose reply was accepted
    (from the node that trained as that organization)."""
    scratch = RoundResult(state.result.round, f"ckks-{name}", None)
    collect_replies(grid, [state.result.nodes[o] for o in orgs], scratch, request, timeout, accept)
    state.result.rejections += scratch.rejections
    return sorted(o for o in scratch.accepted if scratch.nodes[o] == state.result.nodes.get(o))


def train_stage(grid: Grid, node_ids: list[int], round_idx: int, global_flat: np.ndarray,
                expected: Expected, timeout: float) -> CkksState:
    """Every node trains and keeps its vector; only the metadata comes back, and is screened."""
    result = RoundResult(round_idx, "ckks", None)

    def accept(org: str, content: RecordDict) -> None:
        check_metadata(org, read_meta(content).get(KEY_LAYOUT, ""), expected)

    collect_replies(grid, node_ids, result, lambda: make_ckks_request(round_idx, global_flat),
                    timeout, accept)
    return CkksState(result, expected.layout.dim)


def key_stage(grid: Grid, state: CkksState, orgs: list[str], timeout: float) -> list[str]:
    """Collect the announcements of ``orgs`` and the key holder's public context."""
    state.key_holder = state.key_holder or min(orgs)

    def accept(org: str, content: RecordDict) -> None:
        ann, public = wire.read_keys_reply(content, org)
        if ann.org_id != org:
            raise InvalidFieldError(f"announcement[{org}].org_id", ann.org_id, repr(org))
        if org == state.key_holder:
            load_public_context(public)  # refuses a context carrying the secret key
            state.public_context = public
        state.announcements[org] = ann

    request = wire.keys_request(state.result.round, state.key_holder)
    return _stage(grid, state, orgs, "keys", lambda: request, timeout, accept)


def encrypt_stage(grid: Grid, state: CkksState, orgs: list[str], timeout: float) -> list[str]:
    """Relay the announcements of ``orgs``; collect and screen each ciphertext's shape."""
    public = load_public_context(state.public_context)
    anns = [state.announcements[o] for o in orgs]

    def accept(org: str, content: RecordDict) -> None:
        chunks, contribution = wire.read_encrypt_reply(content, org)
        check_ciphertexts(chunks, public, state.dim, field=f"update[{org}].ciphertexts")
        state.chunks[org], state.contributions[org] = chunks, contribution

    request = wire.encrypt_request(state.result.round, state.key_holder, anns,
                                   state.public_context)
    return _stage(grid, state, orgs, "encrypt", lambda: request, timeout, accept)


def decrypt_stage(grid: Grid, state: CkksState, encrypted_sum: list[bytes],
                  announcements: list[Announcement], contributions: list[Contribution],
                  timeout: float) -> tuple[np.ndarray, list[str], float] | None:
    """Ask the key holder for the mean; ``None`` when it refused (see the rejections)."""
    released: list[tuple[np.ndarray, list[str], float]] = []
    request = wire.decrypt_request(state.result.round, encrypted_sum, announcements,
                                   contributions)
    _stage(grid, state, [state.key_holder], "decrypt", lambda: request, timeout,
           lambda org, content: released.append(wire.read_decrypt_reply(content)))
    return released[0] if released else None


def _void(result: RoundResult, err: InvalidFieldError | str) -> RoundResult:
    rejection = Rejection.of(err, "sum", -1, "ckks")
    log.warning("round %d: nothing decrypted: %s", result.round, rejection.message)
    result.rejections.append(rejection)
    result.accepted = []
    return result


def ckks_round(grid: Grid, node_ids: list[int], round_idx: int, global_flat: np.ndarray,
               expected: Expected, min_orgs: int, timeout: float) -> RoundResult:
    """One honest dp-ckks round (see the module docstring); the mean of the signed sum."""
    state = train_stage(grid, node_ids, round_idx, global_flat, expected, timeout)
    result = state.result
    participants = sorted(result.accepted)
    if len(participants) < min_orgs:
        return _void(result, InvalidFieldError("len(participants)", len(participants),
                                               f">= {min_orgs} (min_orgs; nothing encrypted)"))
    announcers = key_stage(grid, state, participants, timeout)
    if state.key_holder not in announcers or len(announcers) < min_orgs:
        return _void(result, InvalidFieldError("announcers", announcers, f">= {min_orgs} "
                                               f"organizations with {state.key_holder!r}"))
    encrypted = encrypt_stage(grid, state, announcers, timeout)
    if missing := sorted(set(announcers) - set(encrypted)):
        return _void(result, InvalidFieldError("contributions.missing", missing, "empty (their "
                                               "masks do not cancel: nothing is decrypted)"))
    total = add_ciphertexts([state.chunks[o] for o in announcers],
                            load_public_context(state.public_context))
    released = decrypt_stage(grid, state, total, [state.announcements[o] for o in announcers],
                             [state.contributions[o] for o in announcers], timeout)
    if released is None:
        return _void(result, f"the key holder {state.key_holder!r} released nothing")
    mean, orgs, error = released
    slack = error * float(np.sqrt(expected.layout.dim))
    try:
        check_sum(mean, len(orgs), Expected(expected.layout, expected.norm_bound + slack))
    except InvalidFieldError as err:
        return _void(result, err)
    result.mean, result.accepted, result.error_bound = mean, orgs, error
    return result
