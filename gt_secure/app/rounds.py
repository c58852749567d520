"""One aggregation round on the provider side: plain (Message API) or SecAgg+ (CKKS:
:mod:`gt_secure.app.ckks_round`).

Each returns a :class:`RoundResult` with the mean of the accepted updates (``None`` when nothing
was accepted) and a :class:`~gt_secure.app.validation.Rejection` for every organization that was
refused, failed or timed out; the round goes on without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from gt_secure.aggregation.ddp import DdpParams, decode_sum
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.aggregation.quantization import SecAggParams
from gt_secure.aggregation.secagg import mean_error_bound, mean_l2_error_bound
from gt_secure.aggregation.secagg_round import replying_node, run_secagg_round
from gt_secure.app.messages import (
    KEY_LAYOUT,
    KEY_ORG,
    KEY_ROUND,
    make_request,
    read_meta,
    read_reply,
)
from gt_secure.app.progress import short_reason
from gt_secure.app.validation import (
    Expected,
    Rejection,
    check_metadata,
    check_sum,
    validate_update,
)
from gt_secure.errors import InvalidFieldError

log = logging.getLogger("gt_secure.app")


@dataclass
class RoundResult:
    """Outcome of one round, as recorded in the run summary."""

    round: int
    aggregation: str
    mean: np.ndarray | None
    accepted: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    error_bound: float = 0.0
    nodes: dict[str, int] = field(default_factory=dict)  # node of each accepted organization


def _refuse(result: RoundResult, rejection: Rejection) -> None:
    log.warning("round %d: refused %s (node %d): %s", result.round, rejection.org_id,
                rejection.node_id, short_reason(rejection.message))
    result.rejections.append(rejection)


def collect_replies(grid: Grid, node_ids: list[int], result: RoundResult,
                    request: Callable[[], RecordDict], timeout: float,
                    accept: Callable[[str, RecordDict], None],
                    message_type: str = MessageType.TRAIN) -> None:
    """Send ``request()`` to every node; keep each reply that ``accept(org, content)`` takes.

    A reply with an error, a missing or repeated organization, or one ``accept`` refuses with an
    :class:`InvalidFieldError`, and every node that does not answer in time, is recorded in
    ``result.rejections``; the round goes on without it.
    """
    messages = [Message(request(), dst_node_id=node, message_type=message_type,
                        group_id=f"{result.aggregation}-{result.round}") for node in node_ids]
    answered: set[int] = set()
    for reply in list(grid.send_and_receive(messages, timeout=timeout)):
        node = replying_node(reply, messages)
        answered.add(node)
        if reply.has_error():
            reason = reply.error.reason or "error"
            _refuse(result, Rejection.of(reason, "?", node, result.aggregation))
            continue
        org = read_meta(reply.content).get(KEY_ORG, "?")
        try:
            if org == "?" or org in result.accepted:
                raise InvalidFieldError(f"update[{org}].org_id", org, "present and unique")
            accept(org, reply.content)
        except InvalidFieldError as err:
            _refuse(result, Rejection.of(err, org, node, result.aggregation))
            continue
        result.accepted.append(org)
        result.nodes[org] = node
    for node in sorted(set(node_ids) - answered):
        reason = f"no reply within {timeout} s"
        _refuse(result, Rejection.of(reason, "?", node, result.aggregation))


def plain_round(grid: Grid, node_ids: list[int], round_idx: int, global_flat: np.ndarray,
                expected: Expected, timeout: float) -> RoundResult:
    """Collect every update in the clear, validate each, and average the accepted ones."""
    result = RoundResult(round_idx, "plain", None)
    total = np.zeros(expected.layout.dim, dtype=np.float64)

    def accept(org: str, content: RecordDict) -> None:
        nonlocal total
        payload = read_reply(content)
        validate_update(payload, expected)
        total += payload.flat.astype(np.float64)

    collect_replies(grid, node_ids, result, lambda: make_request(round_idx, global_flat), timeout,
             accept)
    if result.accepted:
        result.mean = total / len(result.accepted)
    return result


def secagg_round(grid: Grid, context: Context, round_idx: int, global_flat: np.ndarray,
                 expected: Expected, params: SecAggParams, timeout: float,
                 ddp: DdpParams | None = None, basis: PublicBasis | None = None) -> RoundResult:
    """SecAgg+ round: metadata screened per reply, values guarded client-side, sum checked.

    ``ddp``: the replies are distributed-DP integer shares; the mean is decoded from them.
    ``basis``: the shares are ``k`` coordinates in this public basis (``expected`` is their
    layout); the checked mean coordinates are reconstructed into the full update."""
    result = RoundResult(round_idx, "secagg", None)
    seen: set[str] = set()

    def screen(node: int, meta: dict[str, str]) -> str | None:
        org = meta.get(KEY_ORG, "?")
        try:
            if org == "?" or org in seen:
                raise InvalidFieldError(f"update[{org}].org_id", org, "present and unique")
            check_metadata(org, meta.get(KEY_LAYOUT, ""), expected)
        except InvalidFieldError as err:
            return str(err)
        seen.add(org)
        return None

    outcome = run_secagg_round(grid, context, round_idx, global_flat, params, screen,
                               timeout, {KEY_ROUND: round_idx})
    for node, reason in outcome.failures:
        _refuse(result, Rejection.of(reason, "?", node, "secagg"))
    for node, meta, reason in outcome.refused:
        _refuse(result, Rejection.of(reason, meta.get(KEY_ORG, "?"), node, "secagg"))
    result.accepted = [meta.get(KEY_ORG, "?") for _, meta in outcome.survivors]
    result.nodes = {meta.get(KEY_ORG, "?"): node for node, meta in outcome.survivors}
    if outcome.mean is None:
        return result
    count = len(result.accepted)
    if ddp is not None:  # exact integer sum: only the rounding onto the grid remains
        outcome.mean = decode_sum(outcome.mean, count, ddp) / count
        result.error_bound = ddp.scale
        bound = Expected(expected.layout, ddp.mean_norm_bound(count))
    else:
        result.error_bound = mean_error_bound(params, count)
        slack = mean_l2_error_bound(params, count, expected.layout.dim)
        bound = Expected(expected.layout, expected.norm_bound + slack)
    try:
        check_sum(outcome.mean, count, bound)
    except InvalidFieldError as err:
        _refuse(result, Rejection.of(err, "sum", -1, "secagg"))
        result.accepted = []
        return result
    result.mean = outcome.mean
    if basis is not None:  # V^T mean(c); |V^T e|_inf <= sqrt(k) |e|_inf (orthonormal rows)
        result.mean = basis.reconstruct(outcome.mean)
        result.error_bound *= float(np.sqrt(basis.k))
    return result
