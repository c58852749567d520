"""One SecAgg+ round through Flower's ``SecAggPlusWorkflow`` (the server learns only the mean).

The workflow is written against Flower's legacy ``Strategy``/``LegacyContext``; :class:`_Collector`
is the minimal strategy that hands every organization the same ``FitIns`` and keeps the unmasked
mean. :class:`_ScreeningGrid` lets the caller refuse a masked reply on its plaintext metadata
before it enters the sum: a refused reply is withheld from the workflow, which then treats that
organization exactly like a dropout (its pairwise masks are reconstructed from the shares).
Masks come from :func:`~gt_secure.aggregation.secagg_prg.mask_prg` (ChaCha20) on both sides; a
node whose SETUP reply lacks the PRG tag is withheld and recorded as a failure (Flower 1.42 then
halts the round: a node lost at SETUP leaves no shares to unmask with).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    Key,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid

from gt_secure.aggregation.quantization import SecAggParams
from gt_secure.aggregation.secagg_prg import mask_prg_scope, setup_reply_problem, tag_setup
from gt_secure.errors import InvalidFieldError

Screen = Callable[[int, dict[str, str]], str | None]
"""(node_id, plaintext metadata) -> refusal reason, or None to accept."""


@dataclass
class SecAggOutcome:
    """Result of one SecAgg+ round."""

    mean: np.ndarray | None
    survivors: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    refused: list[tuple[int, dict[str, str], str]] = field(default_factory=list)


class _Collector(Strategy):
    """Legacy strategy: same FitIns for every node; keeps the unmasked mean."""

    def __init__(self, config: dict[str, Scalar]) -> None:
        self.config = config
        self.results: list[tuple[ClientProxy, FitRes]] = []
        self.mean: np.ndarray | None = None

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        return [(proxy, FitIns(parameters, dict(self.config)))
                for proxy in client_manager.all().values()]

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[tuple[ClientProxy, FitRes] | BaseException]
                      ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.results = results
        if not results:
            return None, {}
        (mean,) = parameters_to_ndarrays(results[0][1].parameters)
        self.mean = np.asarray(mean, dtype=np.float64)
        return results[0][1].parameters, {}

    def configure_evaluate(self, server_round: int, parameters: Parameters,
                           client_manager: ClientManager) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(self, server_round: int, results: list[tuple[ClientProxy, EvaluateRes]],
                           failures: list[tuple[ClientProxy, EvaluateRes] | BaseException]
                           ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters
                 ) -> tuple[float, dict[str, Scalar]] | None:
        return None


class DelegatingGrid(Grid):
    """A Grid that forwards every call to ``inner``; subclasses override what they inspect."""

    def __init__(self, inner: Grid) -> None:
        self.inner = inner

    def set_run(self, run: object) -> None:  # type: ignore[override]
        self.inner.set_run(run)  # type: ignore[arg-type]

    @property
    def run(self):  # type: ignore[no-untyped-def]  # noqa: ANN201
        return self.inner.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.inner.send_and_receive(messages, timeout=timeout)


class OnlyNodesGrid(DelegatingGrid):
    """The grid as a round should see it: only ``nodes`` are connected (the others excluded)."""

    def __init__(self, inner: Grid, nodes: Iterable[int]) -> None:
        super().__init__(inner)
        self.nodes = set(nodes)

    def get_node_ids(self) -> Iterable[int]:
        return [n for n in self.inner.get_node_ids() if n in self.nodes]


class _ScreeningGrid(DelegatingGrid):
    """Delegating Grid that withholds masked replies refused by ``screen``."""

    def __init__(self, inner: Grid, screen: Screen) -> None:
        super().__init__(inner)
        self.screen = screen
        self.refused: list[tuple[int, dict[str, str], str]] = []
        self.errors: list[tuple[int, str]] = []

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        sent = list(messages)
        kept: list[Message] = []
        answered: set[int] = set()
        setup = tag_setup(sent)  # both sides must mask with secagg_prg.mask_prg
        replies = list(self.inner.send_and_receive(sent, timeout=timeout))
        for reply in replies:
            node = replying_node(reply, sent)
            answered.add(node)
            if reply.has_error():
                self.errors.append((node, reply.error.reason or "error"))
            elif setup and (problem := setup_reply_problem(reply)) is not None:
                self.errors.append((node, problem))  # withheld: dropped before key sharing
                continue
            elif _is_masked(reply.content):
                meta = _meta(reply.content)
                reason = self.screen(node, meta)
                if reason is not None:
                    self.refused.append((node, meta, reason))
                    continue
            kept.append(reply)
        for node in sorted({m.metadata.dst_node_id for m in sent} - answered):
            if all(node != failed for failed, _ in self.errors):  # a dropout is dropped once
                self.errors.append((node, f"no reply within {timeout} s (dropped by SecAgg+)"))
        return kept


def replying_node(reply: Message, sent: Sequence[Message]) -> int:
    """The node a reply is about: the destination of the message it answers (an error reply
    that the SuperLink writes for an unreachable node comes from the SuperLink's own ID)."""
    for message in sent:
        if message.metadata.message_id == reply.metadata.reply_to_message_id:
            return message.metadata.dst_node_id
    return reply.metadata.src_node_id


def _is_masked(content: RecordDict) -> bool:
    record = content.config_records.get(RECORD_KEY_CONFIGS)
    return record is not None and Key.MASKED_PARAMETERS in record


def _meta(content: RecordDict) -> dict[str, str]:
    record = content.config_records.get("fitres.metrics")
    return {str(k): str(v) for k, v in (record or {}).items()}


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    """Block until at least ``count`` SuperNodes are connected; return their IDs."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count or time.monotonic() > deadline:
            return nodes
        time.sleep(0.5)


class _SecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower 1.42's workflow, except that only nodes that shared their keys can be dead.

    Flower lists every sampled node missing at UNMASK as dead, including one that left before
    SHARE_KEYS (e.g. an organization refusing the request at setup); the others hold no key
    share of it and its ``secaggplus_mod`` fails with a ``KeyError``, so one refusal failed the
    round for everyone. A node that never shared keys is in nobody's masks: nothing to recover.
    """

    def share_keys_stage(self, grid: Grid, context: LegacyContext,
                         state: WorkflowState) -> bool:
        ok: bool = super().share_keys_stage(grid, context, state)
        state.sampled_node_ids = set(state.active_node_ids)
        return ok


def run_secagg_round(grid: Grid, context: Context, round_idx: int, global_flat: np.ndarray,
                     params: SecAggParams, screen: Screen, timeout: float | None,
                     fit_config: dict[str, Scalar]) -> SecAggOutcome:
    """Run SecAgg+ over all connected nodes; return the decoded mean of accepted updates."""
    collector = _Collector(fit_config)
    manager = SimpleClientManager()
    for node_id in grid.get_node_ids():
        manager.register(GridClientProxy(node_id=node_id, grid=grid, run_id=grid.run.run_id))
    if manager.num_available() > params.max_clients():
        raise InvalidFieldError("num_orgs", manager.num_available(),
                                f"<= {params.max_clients()} for these SecAgg+ ranges")
    legacy = LegacyContext(context, ServerConfig(num_rounds=round_idx), collector, manager)
    legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters([np.asarray(global_flat, dtype=np.float32)]), keep_input=True)
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: round_idx})
    kwargs = params.workflow_kwargs()
    kwargs["max_weight"] = 1.0  # every organization sends weight 1: the mean is unweighted
    workflow = _SecAggPlusWorkflow(**kwargs, timeout=timeout)
    screening = _ScreeningGrid(grid, screen)
    with mask_prg_scope():  # the workflow unmasks with ChaCha20 masks, as the clients mask
        workflow(screening, legacy)
    survivors = [(cast(GridClientProxy, proxy).node_id, {str(k): str(v)
                  for k, v in res.metrics.items()}) for proxy, res in collector.results]
    return SecAggOutcome(collector.mean, survivors, screening.errors, screening.refused)
