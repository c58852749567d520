"""The k-dim release through ddp-secagg in Flower's simulation engine: 3 organizations release the
k coordinates of their update in a public basis (one dies after masking); the decoded sum is
exactly their kept k-dim integers (rounded + noise), the provider's reconstruction is V^T of it,
and each organization's ledger mechanism names the basis hash and k."""

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
from gt_secure.aggregation.ddp_basis import PublicBasis, principal_basis
from gt_secure.aggregation.ddp_round import run_ddp_round, survivor_guard
from gt_secure.aggregation.secagg_round import wait_for_nodes
from gt_secure.app.mods import secagg_route_mod
from gt_secure.organization.ddp_share import basis_share

REPO = Path(__file__).resolve().parents[2]
BACKEND: dict[str, Any] = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
D, K, NODES = 300, 5, 3


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def _basis() -> PublicBasis:
    public = np.random.default_rng(0).normal(size=(20, D))  # stands in for public updates
    return principal_basis(public, K, "cd" * 32)


def _apps(out: Path, basis: PublicBasis, p: DdpParams) -> tuple[ServerApp, ClientApp]:
    def drop(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        if (record is not None and record.get(Key.STAGE) == Stage.UNMASK
                and ctxt.node_config["partition-id"] == 2):
            raise RuntimeError("organization died after sending its masked vector")
        return call_next(msg, ctxt)

    client = ClientApp(mods=[drop, survivor_guard(lambda c: p.min_survivors), secagg_route_mod])

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        update = np.random.default_rng(10 + pid).normal(0.0, 0.1, D)  # (D,) private update
        share = basis_share(update, basis, p)  # (K,) released; OS CSPRNG
        (out / f"kept{pid}.json").write_text(json.dumps({
            "coords": basis.project(update).tolist(), "rounded": share.rounded.tolist(),
            "noise": share.noise.tolist(), "mechanism": share.mechanism.model_dump(mode="json"),
            "wire_size": int(share.wire.size)}))
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([share.wire]), 1, {})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        wait_for_nodes(grid, NODES, 120.0)
        result = run_ddp_round(grid, context, 1, np.zeros(K), p, NODES,
                               lambda node, meta: None, 120.0, {"round": 1})
        assert result.total is not None
        (out / "server.json").write_text(json.dumps({
            "total": result.total.tolist(), "survivors": len(result.outcome.survivors),
            "reconstructed": basis.reconstruct(result.total / NODES).tolist()}))

    return server, client


@pytest.mark.slow  # ~20 s alone, ~45 s on the shared machine
def test_k_dim_release_through_flower_secagg_reconstructs_and_records_the_basis(
        tmp_path: Path) -> None:
    basis = _basis()
    p = DdpParams.choose(1.0, K, 1.0, NODES, 2, 0, 16, basis=basis.release_record())
    server, client = _apps(tmp_path, basis, p)
    run_simulation(server, client, num_supernodes=NODES, backend_config=BACKEND)

    result = json.loads((tmp_path / "server.json").read_text())
    kept = [json.loads((tmp_path / f"kept{i}.json").read_text()) for i in range(NODES)]
    assert result["survivors"] == NODES  # the dropped organization's vector is in the sum
    assert all(k["wire_size"] == K for k in kept)  # only k numbers leave an organization
    integers = sum(np.asarray(k["rounded"]) + np.asarray(k["noise"]) for k in kept)
    total = np.asarray(result["total"])
    assert np.array_equal(total, integers * p.scale)  # exact through SecAgg+
    assert np.allclose(result["reconstructed"], basis.vectors.T @ total / NODES)
    coords = sum(np.asarray(k["coords"]) for k in kept)  # norms < 1: not clipped
    noise = p.scale * sum(np.asarray(k["noise"], dtype=np.float64) for k in kept)
    assert float(np.max(np.abs(total - coords - noise))) < NODES * p.scale  # rounding only
    for k in kept:
        assert k["mechanism"]["dim"] == K
        assert k["mechanism"]["basis"] == {"sha256": basis.sha256(), "k": K, "ambient_dim": D}
