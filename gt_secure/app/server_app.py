"""Provider: a Flower ServerApp that aggregates organizations' updates round by round.

Each round: every connected organization trains from the current cumulative TinyLM update and
returns its update; the provider averages the accepted ones (plain, SecAgg+ or CKKS), adds the
mean to the cumulative update, runs the provider step and records the round in
``summary.json``. After each round the aggregator witnesses every organization's ledger
(:mod:`gt_secure.app.receipts`); an organization whose ledger it refuses to cosign (rolled back,
truncated, forked) takes part in no later round and receives no adapter. After the last round
the adapter goes to the organizations whose updates it was built from, which score it on their
own validation texts (``summary.json: delivery``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from gt_secure.aggregation.secagg import round_params
from gt_secure.aggregation.secagg_round import OnlyNodesGrid, wait_for_nodes
from gt_secure.app import progress
from gt_secure.app.ckks_round import ckks_round
from gt_secure.app.config import AppConfig, Resolved
from gt_secure.app.delivery import deliver_adapter
from gt_secure.app.layout import content_hash
from gt_secure.app.mods import expected_for
from gt_secure.app.receipts import aggregator_witness, exchange_receipts
from gt_secure.app.roles import ddp_config, expected_layout, provider_step, release_basis
from gt_secure.app.rounds import RoundResult, plain_round, secagg_round
from gt_secure.errors import GtSecureError

log = logging.getLogger("gt_secure.app")


def run_federation(grid: Grid, context: Context, cfg: Resolved) -> dict[str, Any]:
    """Run ``cfg.num_rounds`` rounds; write and return the run summary."""
    out_dir = Path(cfg.app.output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    nodes = wait_for_nodes(grid, cfg.min_orgs, cfg.app.round_timeout)
    if len(nodes) < cfg.min_orgs:
        raise GtSecureError(f"min_orgs must be connected, got {len(nodes)} < {cfg.min_orgs}.")
    expected = expected_for(cfg)
    global_flat = np.zeros(expected_layout().dim, dtype=np.float32)  # the full TinyLM update
    rounds: list[dict[str, Any]] = []
    witness = aggregator_witness(out_dir, cfg.app.org_keys_dir)  # cosigns ledger checkpoints
    excluded: dict[int, str] = {}  # node -> organization whose ledger the aggregator refused
    contributors: dict[int, list[int]] = {}  # round -> nodes whose updates are in its mean
    progress.started(context.run_id, cfg.app.protocol, cfg.aggregation, cfg.num_rounds,
                     out_dir / "summary.json")
    for round_idx in range(1, cfg.num_rounds + 1):
        nodes = sorted(n for n in grid.get_node_ids() if n not in excluded)
        visible = OnlyNodesGrid(grid, nodes) if excluded else grid
        started = time.monotonic()
        log.info("round %d: %s aggregation over %d nodes", round_idx, cfg.aggregation,
                 len(nodes))
        if cfg.aggregation == "secagg":
            ddp = ddp_config(cfg)
            params = round_params(cfg.clip_norm, cfg.noise_multiplier, len(nodes), cfg.secagg)
            if ddp is not None and cfg.secagg is None:  # integer shares: the grid's ranges
                params = ddp.secagg_params(len(nodes), max(2, min(ddp.min_survivors,
                                                                  len(nodes) - 1)))
            result = secagg_round(visible, context, round_idx, global_flat, expected, params,
                                  cfg.app.round_timeout, ddp, release_basis(cfg))
        elif cfg.aggregation == "ckks":
            result = ckks_round(visible, nodes, round_idx, global_flat, expected, cfg.min_orgs,
                                cfg.app.round_timeout)
        else:
            result = plain_round(visible, nodes, round_idx, global_flat, expected,
                                 cfg.app.round_timeout)
        aggregated = time.monotonic()
        artifact = None
        if result.mean is not None:
            global_flat = (global_flat + result.mean).astype(np.float32)
            artifact = provider_step(global_flat, round_idx, out_dir)
        seconds = {"round": aggregated - started, "provider": time.monotonic() - aggregated}
        contributors[round_idx] = sorted(result.nodes[o] for o in result.accepted
                                         if o in result.nodes)
        receipts = exchange_receipts(grid, nodes, witness, round_idx, cfg.app.round_timeout,
                                     frozenset(result.accepted))
        refused = {int(r["node"]): org for org, r in receipts.items() if "refused" in r}
        for org in refused.values():
            log.warning("round %d: %s's ledger was not witnessed: excluded from later rounds "
                        "and from delivery", round_idx, org)
        excluded |= refused
        rounds.append(_record(result, len(nodes), artifact) | {
            "seconds": seconds, "receipts": receipts,
            "excluded": sorted(set(excluded.values()))})
        _write(out_dir, context, cfg, rounds)
        progress.round_done(rounds[-1], cfg.num_rounds)
    delivery = None
    last = next((r for r in reversed(rounds) if (r["provider"] or {}).get("adapter_dir")), None)
    if last is not None:
        targets = [n for n in contributors[last["round"]] if n not in excluded]
        delivery = deliver_adapter(grid, targets, last["round"],
                                   Path(last["provider"]["adapter_dir"]), cfg.app.round_timeout)
    return _write(out_dir, context, cfg, rounds, delivery)


def _record(result: RoundResult, num_nodes: int,
            artifact: dict[str, Any] | None) -> dict[str, Any]:
    mean = result.mean
    return {
        "round": result.round,
        "aggregation": result.aggregation,
        "num_nodes": num_nodes,
        "accepted": sorted(result.accepted),
        "rejections": [asdict(r) for r in result.rejections],
        "mean_l2_norm": None if mean is None else float(np.linalg.norm(mean)),
        "mean_hash": None if mean is None else content_hash(mean.astype(np.float32)),
        "mean_error_bound": result.error_bound,
        "provider": artifact,
    }


def _write(out_dir: Path, context: Context, cfg: Resolved, rounds: list[dict[str, Any]],
           delivery: dict[str, Any] | None = None) -> dict[str, Any]:
    config = asdict(cfg.app) | {k: v for k, v in asdict(cfg).items()
                                if k not in ("app", "secagg", "ckks")}
    config["ckks"] = None if cfg.ckks is None else cfg.ckks.model_dump(mode="json")
    summary = {"run_id": context.run_id, "config": config, "rounds": rounds,
               "delivery": delivery}
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(out_dir / "summary.json")
    return summary


def make_server_app(overrides: Mapping[str, Any] | None = None) -> ServerApp:
    """ServerApp whose settings are ``run_config`` updated with ``overrides``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = AppConfig.from_run_config(context.run_config, overrides).resolve()
        summary = run_federation(grid, context, cfg)
        out = Path(cfg.app.output_dir).expanduser()
        progress.finished(summary, out / "summary.json")

    return app


app = make_server_app()
