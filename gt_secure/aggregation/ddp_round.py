"""A distributed-DP SecAgg+ round: the server decodes the noisy sum, each organization refuses to
help unmask a sum that would carry too little noise.

Server: :func:`run_ddp_round` runs :func:`~gt_secure.aggregation.secagg_round.run_secagg_round`
with :meth:`DdpParams.secagg_params` and turns Flower's mean into the float sum
(:func:`~gt_secure.aggregation.ddp.decode_sum`). Organization: :func:`survivor_guard` is a client
mod (outside ``secaggplus_mod``) that refuses the UNMASK stage when fewer than ``min_survivors``
vectors reached the sum: without its shares the server cannot remove the masks, so a sum with
less noise than the ledger entry assumes is never revealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common import Scalar
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.serverapp import Grid

from gt_secure.aggregation.ddp import DdpParams, decode_sum
from gt_secure.aggregation.secagg_round import Screen, SecAggOutcome, run_secagg_round
from gt_secure.errors import InvalidFieldError, PolicyRefusalError
from gt_secure.ledger.ddp_mechanism import ReleaseBasis
from gt_secure.protocols import ProtocolSpec

__all__ = ["DdpOutcome", "params_for", "run_ddp_round", "survivor_guard"]


def params_for(spec: ProtocolSpec, dim: int, basis: ReleaseBasis | None = None) -> DdpParams:
    """The grid of a spec with ``[dp.organization.distributed]`` for ``dim`` coordinates,
    sized for ``max_organizations`` summands (both sides derive it from the spec alone);
    ``basis``: the ``dim = k`` coordinates are in this public basis (recorded in the ledger)."""
    org = spec.dp.organization if spec.dp is not None else None
    if org is None or org.distributed is None:
        raise InvalidFieldError("dp.organization.distributed", None,
                                f"set in protocol {spec.name!r}")
    d = org.distributed
    return DdpParams.choose(org.clip_norm, dim, org.noise_multiplier, spec.max_organizations,
                            d.min_survivors, d.max_colluders, d.bits, basis=basis)


@dataclass
class DdpOutcome:
    """The decoded noisy sum (None when the round failed) and the SecAgg+ outcome."""

    total: np.ndarray | None
    outcome: SecAggOutcome


def run_ddp_round(grid: Grid, context: Context, round_idx: int, global_flat: np.ndarray,
                  params: DdpParams, num_shares: int, screen: Screen, timeout: float | None,
                  fit_config: dict[str, Scalar], threshold: int | None = None) -> DdpOutcome:
    """One SecAgg+ round over integer shares; the decoded sum in update-vector units.

    ``threshold``: SecAgg+'s reconstruction threshold (the UNMASK replies the server needs,
    in ``[2, num_shares)``), set apart from ``min_survivors`` (the vectors the sum must hold,
    enforced by :func:`survivor_guard`): with ``min_survivors = n`` and threshold ``t`` the
    round survives ``n - t`` organizations dying after masking at no noise cost. Default
    ``max(2, min(min_survivors, num_shares - 1))``, which tolerates one such death when
    ``min_survivors = num_shares``."""
    if threshold is None:
        threshold = max(2, min(params.min_survivors, num_shares - 1))  # Flower: < num_shares
    secagg = params.secagg_params(num_shares, threshold)
    outcome = run_secagg_round(grid, context, round_idx, global_flat, secagg, screen, timeout,
                               fit_config)
    if outcome.mean is None:
        return DdpOutcome(None, outcome)
    return DdpOutcome(decode_sum(outcome.mean, len(outcome.survivors), params), outcome)


def survivor_guard(min_survivors: Callable[[Context], int]) -> Mod:
    """Client mod: refuse SecAgg+ UNMASK when fewer than ``min_survivors(context)`` are active."""

    def ddp_survivor_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        if (msg.metadata.message_type == MessageType.TRAIN and record is not None
                and record.get(Key.STAGE) == Stage.UNMASK):
            active = len(cast(list[int], record[Key.ACTIVE_NODE_ID_LIST]))
            wanted = min_survivors(ctxt)
            if active < wanted:
                raise PolicyRefusalError(
                    "unmask.active_organizations", active,
                    f">= min_survivors={wanted} (the noise shares of fewer organizations do not "
                    "reach the distributed-DP target)")
        return call_next(msg, ctxt)

    return ddp_survivor_mod
