"""Distributed DP through real Flower SecAgg+ in the simulation engine: 3 (or 10) organizations
add discrete Gaussian shares; the decoded sum is exactly the sum of what they kept (rounded vectors
+ recorded noise), also when organizations drop after masking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_round import params_for, run_ddp_round, survivor_guard
from gt_secure.aggregation.secagg_round import wait_for_nodes
from gt_secure.app.mods import secagg_route_mod
from gt_secure.organization.ddp_share import noise_share
from gt_secure.protocols import load_protocol

REPO = Path(__file__).resolve().parents[2]
BACKEND: dict[str, Any] = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
DIM, NODES = 256, 3


def params(min_survivors: int = 2) -> DdpParams:
    """The ``ddp-secagg`` protocol's grid (optionally asking for more survivors)."""
    spec = load_protocol("ddp-secagg")
    p = params_for(spec, DIM)
    assert (p.bits, p.min_survivors, p.organizations) == (16, 2, spec.max_organizations)
    return p.model_copy(update={"min_survivors": min_survivors})


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def _client_app(out: Path, p: DdpParams, drop_at_unmask: set[int],
                drop_in_training: int | None) -> ClientApp:
    def drop(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        unmask = record is not None and record.get(Key.STAGE) == Stage.UNMASK
        if unmask and ctxt.node_config["partition-id"] in drop_at_unmask:
            raise RuntimeError("organization process died after sending its masked vector")
        return call_next(msg, ctxt)

    app = ClientApp(mods=[drop, survivor_guard(lambda ctxt: p.min_survivors), secagg_route_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        if pid == drop_in_training:
            raise RuntimeError("organization process died before masking")
        update = np.random.default_rng(pid).normal(0.0, 0.1, DIM)  # norm ~1.6: clipped to 1
        share = noise_share(update, p)  # secure mode: OS CSPRNG
        (out / f"kept{pid}.json").write_text(json.dumps({
            "clipped": share.clipped.tolist(), "rounded": share.rounded.tolist(),
            "noise": share.noise.tolist()}))
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([share.wire]), 1,
                        {"pid": pid})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    return app


def _server_app(out: Path, p: DdpParams, nodes: int, threshold: int | None) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        wait_for_nodes(grid, nodes, 120.0)
        result = run_ddp_round(grid, context, 1, np.zeros(DIM), p, nodes,
                               lambda node, meta: None, 120.0, {"round": 1}, threshold)
        outcome = result.outcome
        (out / "server.json").write_text(json.dumps({
            "total": None if result.total is None else result.total.tolist(),
            "pids": sorted(int(meta["pid"]) for _, meta in outcome.survivors),
            "failures": [reason for _, reason in outcome.failures]}))

    return app


def simulate(tmp_path: Path, p: DdpParams, drop_at_unmask: tuple[int, ...] = (),
             drop_in_training: int | None = None, nodes: int = NODES,
             threshold: int | None = None) -> dict[str, Any]:
    client = _client_app(tmp_path, p, set(drop_at_unmask), drop_in_training)
    run_simulation(_server_app(tmp_path, p, nodes, threshold), client,
                   num_supernodes=nodes, backend_config=BACKEND)
    result: dict[str, Any] = json.loads((tmp_path / "server.json").read_text())
    return result


def test_decoded_sum_is_kept_vectors_plus_recorded_noise_with_a_dropout_after_masking(
        tmp_path: Path) -> None:
    p = params()
    result = simulate(tmp_path, p, drop_at_unmask=(2,))

    assert result["pids"] == [0, 1, 2]  # the dropped organization's masked vector is in the sum
    kept = [json.loads((tmp_path / f"kept{pid}.json").read_text()) for pid in range(NODES)]
    total = np.asarray(result["total"])
    integers = sum(np.asarray(k["rounded"]) + np.asarray(k["noise"]) for k in kept)
    assert np.array_equal(total, integers * p.scale)  # exact: no wrap, no rounding in Flower
    clipped = sum(np.asarray(k["clipped"]) for k in kept)
    noise = p.scale * sum(np.asarray(k["noise"], dtype=np.float64) for k in kept)
    assert float(np.max(np.abs(total - clipped - noise))) < NODES * p.scale  # rounding only
    assert float(np.std(noise)) == pytest.approx(np.sqrt(1.5), rel=0.15)  # 3 shares of var 1/2


def test_min_survivors_n_with_a_lower_threshold_survives_three_of_ten_dying_after_masking(
        tmp_path: Path) -> None:
    # Shares sized for all 10 organizations (min_survivors = 10), SecAgg+ threshold 7: three
    # die at UNMASK (their masked vectors and noise shares are already in the sum). The default
    # threshold, min(10, 10 - 1) = 9, would need 9 UNMASK replies and release nothing.
    spec = load_protocol("ddp-secagg")
    org = spec.dp.organization if spec.dp is not None else None
    assert org is not None
    p = DdpParams.choose(org.clip_norm, DIM, org.noise_multiplier, 10, 10, 0, 16)
    result = simulate(tmp_path, p, drop_at_unmask=(7, 8, 9), nodes=10, threshold=7)

    assert result["pids"] == list(range(10)) and len(result["failures"]) == 3
    kept = [json.loads((tmp_path / f"kept{pid}.json").read_text()) for pid in range(10)]
    integers = sum(np.asarray(k["rounded"]) + np.asarray(k["noise"]) for k in kept)
    assert np.array_equal(np.asarray(result["total"]), integers * p.scale)  # exact
    noise = p.scale * sum(np.asarray(k["noise"], dtype=np.float64) for k in kept)
    # 10 shares of variance (z C)^2 / 10: the sum carries exactly the target noise z C = 1
    assert float(np.std(noise)) == pytest.approx(org.noise_multiplier * org.clip_norm,
                                                 rel=0.15)


@pytest.mark.slow
def test_organizations_refuse_to_unmask_a_sum_with_too_few_noise_shares(tmp_path: Path) -> None:
    # min_survivors = 3: one organization dies before masking (its noise share never reaches
    # the sum); the two others refuse UNMASK, so the server cannot remove the masks.
    result = simulate(tmp_path, params(min_survivors=3), drop_in_training=2)

    assert result["total"] is None and result["pids"] == []
    assert any("min_survivors=3" in reason for reason in result["failures"])


@pytest.mark.slow
def test_default_threshold_releases_nothing_when_three_of_ten_die_after_masking(
        tmp_path: Path) -> None:
    # The control of the test above: min_survivors = 10 with the default threshold 9.
    p = DdpParams.choose(1.0, DIM, 1.0, 10, 10, 0, 16)
    result = simulate(tmp_path, p, drop_at_unmask=(7, 8, 9), nodes=10)

    assert result["total"] is None
