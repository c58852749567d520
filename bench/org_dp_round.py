"""One distributed-DP SecAgg+ round of bench/org_dp.py in Flower's simulation engine.

Each organization (one SuperNode) releases one or more *blocks*, each a full
:func:`~gt_secure.organization.ddp_share.basis_share` (or :func:`noise_share` without a basis)
of its update under its own :class:`DdpParams`; the blocks' integer wires are concatenated into
one SecAgg+ vector (same ``2**bits`` modulus), and the server decodes each slice of Flower's
mean with its own parameters. ``dropped`` organizations die at UNMASK (``after_masking``: their
masked vector and noise share are in the sum, the server reconstructs their self-masks from the
others' shares) or at COLLECT_MASKED_VECTORS (``before_masking``: their vector never reaches the
sum, the server reconstructs their pairwise masks). The organizations'
:func:`~gt_secure.aggregation.ddp_round.survivor_guard` refuses UNMASK below ``guard`` vectors in
the sum (the blocks' largest ``min_survivors``: a refused round releases nothing). SecAgg+'s
reconstruction threshold (the UNMASK replies Flower needs) is ``threshold``, passed to
:func:`run_ddp_round` apart from ``min_survivors`` (its default, ``min(min_survivors, n - 1)``,
would need ``n - 1`` replies with ``min_survivors = n`` and fail as soon as two organizations
die at UNMASK). Round time is the server's
``run_ddp_round`` wall time; bytes per organization is everything its ClientApp sent over the
SecAgg+ stages.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from gt_secure.aggregation.ddp import DdpParams, decode_sum
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.aggregation.ddp_round import run_ddp_round, survivor_guard
from gt_secure.aggregation.secagg_round import wait_for_nodes
from gt_secure.app.mods import secagg_route_mod
from gt_secure.organization.ddp_share import basis_share, noise_share

BACKEND: dict[str, Any] = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False}}


@dataclass(frozen=True)
class Block:
    """One release carried by the round: its parameters and basis (None: the full update)."""

    params: DdpParams
    basis: PublicBasis | None


def _wire(update: np.ndarray, blocks: list[Block]) -> np.ndarray:
    parts = [basis_share(update, b.basis, b.params) if b.basis is not None
             else noise_share(update, b.params) for b in blocks]  # secure mode: OS CSPRNG
    return np.concatenate([p.wire for p in parts])


def _sent_bytes(reply: Message) -> int:
    size = sum(len(v) for rec in reply.content.config_records.values()
               for value in rec.values()
               for v in (value if isinstance(value, list) else [value]) if isinstance(v, bytes))
    return size + sum(len(a.data) for rec in reply.content.array_records.values()
                      for a in rec.values())


def flower_round(updates: list[np.ndarray], blocks: list[Block], dropped: set[int],
                 workdir: Path, stage: str = "after_masking", threshold: int | None = None
                 ) -> dict[str, Any]:
    """Run the round; the decoded sum of each block (float, its own dim; None when the round
    released nothing), how many vectors are in the sum, the UNMASK failures, round seconds and
    mean bytes sent per organization."""
    n, dim = len(updates), sum(b.params.dim for b in blocks)
    guard = max(b.params.min_survivors for b in blocks)
    threshold = threshold or min(b.params.min_survivors for b in blocks)
    drop_at = {"after_masking": Stage.UNMASK, "before_masking": Stage.COLLECT_MASKED_VECTORS}
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])

    def measure_and_drop(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        pid = int(ctxt.node_config["partition-id"])
        record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        if pid in dropped and record is not None and record.get(Key.STAGE) == drop_at[stage]:
            raise RuntimeError(f"organization dropped at {drop_at[stage]}")
        reply = call_next(msg, ctxt)
        with open(workdir / f"bytes{pid}.txt", "a") as f:
            f.write(f"{_sent_bytes(reply)}\n")
        return reply

    app = ClientApp(mods=[measure_and_drop, survivor_guard(lambda c: guard), secagg_route_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([_wire(updates[pid], blocks)]),
                        1, {})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    server = ServerApp()
    # Flower's mean is decoded per block; a DdpParams carrying the whole vector is only the
    # transport (same modulus), the blocks' own params decode their slices.
    transport = blocks[0].params.model_copy(update={"dim": dim, "min_survivors": guard})

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        wait_for_nodes(grid, n, 600.0)
        start = time.monotonic()
        result = run_ddp_round(grid, context, 1, np.zeros(dim), transport, n,
                               lambda node, meta: None, 1800.0, {"round": 1}, threshold)
        seconds = time.monotonic() - start
        summed = len(result.outcome.survivors)  # organizations whose vectors are in the sum
        if result.total is not None:
            np.save(workdir / "mean.npy", result.total / transport.scale / summed)
        (workdir / "server.json").write_text(json.dumps({
            "round_s": seconds, "summed": summed, "released": result.total is not None,
            "failures": len(result.outcome.failures)}))

    run_simulation(server, app, num_supernodes=n, backend_config=BACKEND)
    out = json.loads((workdir / "server.json").read_text())
    totals: list[np.ndarray | None] = [None] * len(blocks)
    if out["released"]:
        flower_mean = np.load(workdir / "mean.npy")  # (dim,) Flower's mean of the integer wires
        start = 0
        for i, b in enumerate(blocks):
            totals[i] = decode_sum(flower_mean[start:start + b.params.dim], out["summed"],
                                   b.params)
            start += b.params.dim
    sent = [sum(int(x) for x in (workdir / f"bytes{i}.txt").read_text().split())
            for i in range(n) if (workdir / f"bytes{i}.txt").exists()]
    return out | {"totals": totals, "bytes_per_org": int(np.mean(sent)), "guard": guard,
                  "threshold": threshold, "stage": stage}
