"""ChaCha20 SecAgg+ masks through real Flower: the client mod's PRG handshake, and whole rounds in
Flower's simulation engine (``SecAggPlusWorkflow`` + ``secaggplus_mod``) with gt-secure's
``run_secagg_round`` on the server and ``secagg_route_mod`` on the organizations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation
from flwr.supercore.task_identity import TaskIdentity

from gt_secure.aggregation.secagg import mean_error_bound, round_params
from gt_secure.aggregation.secagg_prg import KEY_MASK_PRG, MASK_PRG, setup_reply_problem
from gt_secure.aggregation.secagg_round import run_secagg_round, wait_for_nodes
from gt_secure.app.messages import is_secagg
from gt_secure.app.mods import secagg_route_mod
from gt_secure.errors import InvalidFieldError

REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
DIM, NODES = 300, 3
SETUP = {Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: 3, Key.SHARE_NUMBER: 3, Key.THRESHOLD: 2,
         Key.CLIPPING_RANGE: 1.0, Key.TARGET_RANGE: 2**30, Key.MOD_RANGE: 2**32,
         Key.MAX_WEIGHT: 1.0}


def _setup_message(tag: str | None) -> Message:
    configs: dict[str, Any] = dict(SETUP) | ({KEY_MASK_PRG: tag} if tag is not None else {})
    content = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(configs)})
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def _context() -> Context:
    return Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})


def _no_training(msg: Message, ctxt: Context) -> Message:
    raise AssertionError("SETUP must not reach the training handler")


def test_client_refuses_a_setup_without_the_prg_tag_and_tags_its_reply(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for attr in ("_task_id", "_run_id", "_node_id"):  # Messages are built inside a Flower task
        monkeypatch.setattr(TaskIdentity, attr, 1)
    # A server on Flower's own PRG (no tag, or another PRG's tag) gets no public keys.
    for tag in (None, "flower/mt19937"):
        ctxt = _context()
        with pytest.raises(InvalidFieldError, match=f"SecAgg\\+ config {KEY_MASK_PRG} must be"):
            secagg_route_mod(_setup_message(tag), ctxt, _no_training)
        assert not ctxt.state.config_records  # no SecAgg+ state, no key pair was made
    # gt-secure's server: Flower's secaggplus_mod answers with its keys, and the tag is echoed.
    reply = secagg_route_mod(_setup_message(MASK_PRG), _context(), _no_training)
    configs = reply.content.config_records[RECORD_KEY_CONFIGS]
    assert configs[KEY_MASK_PRG] == MASK_PRG and Key.PUBLIC_KEY_1 in configs
    assert setup_reply_problem(reply) is None
    del configs[KEY_MASK_PRG]
    assert "gt_mask_prg must be" in str(setup_reply_problem(reply))


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def vector(partition: int) -> np.ndarray:
    return np.random.default_rng(partition).uniform(-1.0, 1.0, DIM)


def _client_app(flower_prg_partition: int | None, crash_partition: int | None) -> ClientApp:
    """Organizations on ``secagg_route_mod``; ``flower_prg_partition`` on Flower's bare mod;
    ``crash_partition`` dies while training (after the key exchange: a SecAgg+ dropout)."""

    def route(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if ctxt.node_config["partition-id"] == flower_prg_partition and is_secagg(msg.content):
            return secaggplus_mod(msg, ctxt, call_next)
        return secagg_route_mod(msg, ctxt, call_next)

    app = ClientApp(mods=[route])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        if pid == crash_partition:
            raise RuntimeError("organization process died")
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vector(pid)]), 1,
                        {"pid": pid})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    return app


def _server_app(out: Path) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = wait_for_nodes(grid, NODES, 120.0)
        params = round_params(1.0, 0.0, len(nodes))
        outcome = run_secagg_round(grid, context, 1, np.zeros(DIM), params,
                                   lambda node, meta: None, 120.0, {"round": 1})
        out.write_text(json.dumps({
            "mean": None if outcome.mean is None else outcome.mean.tolist(),
            "pids": sorted(int(meta["pid"]) for _, meta in outcome.survivors),
            "failures": [reason for _, reason in outcome.failures],
            "bound": mean_error_bound(params, max(len(outcome.survivors), 1))}))

    return app


def simulate(tmp_path: Path, flower_prg_partition: int | None = None,
             crash_partition: int | None = None) -> dict[str, Any]:
    out = tmp_path / "outcome.json"
    run_simulation(_server_app(out), _client_app(flower_prg_partition, crash_partition),
                   num_supernodes=NODES, backend_config=BACKEND)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_round_with_chacha_masks_on_both_sides_sums_correctly_after_a_dropout(
        tmp_path: Path) -> None:
    # Organization 2 dies after the key exchange: the server rebuilds its pairwise masks with
    # the ChaCha20 PRG from its reconstructed key, and the survivors' private masks likewise.
    result = simulate(tmp_path, crash_partition=2)

    assert result["pids"] == [0, 1] and len(result["failures"]) == 1
    exact = np.mean([vector(pid) for pid in (0, 1)], axis=0)
    error = float(np.max(np.abs(np.asarray(result["mean"]) - exact)))
    assert 0 < result["bound"] < 1e-8 and error <= result["bound"]
    assert float(np.max(np.abs(exact))) > 1e6 * result["bound"]  # not vacuous


@pytest.mark.slow
def test_an_organization_on_flowers_prg_is_excluded_at_setup_and_the_rest_sum_correctly(
        tmp_path: Path) -> None:
    # Organization 0 answers SETUP on Flower's bare mod (no PRG tag): the server refuses it
    # before any key is shared, so it is in nobody's masks and not among the dead at UNMASK;
    # the others' ChaCha20-masked vectors sum exactly.
    result = simulate(tmp_path, flower_prg_partition=0)

    prg = [reason for reason in result["failures"] if KEY_MASK_PRG in reason]
    assert len(prg) == 1 and f"must be {MASK_PRG!r}" in prg[0] and "got" in prg[0]
    assert result["pids"] == [1, 2]
    exact = np.mean([vector(pid) for pid in (1, 2)], axis=0)
    assert float(np.max(np.abs(np.asarray(result["mean"]) - exact))) <= result["bound"]
