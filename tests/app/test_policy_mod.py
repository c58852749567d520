"""The organization's policy mod on single Flower messages (no simulation): SecAgg+ stage checks,
what a message carries, a missing policy, and replies that would leave in the clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.task_identity import TaskIdentity

from gt_secure.app.messages import UPDATE, make_request
from gt_secure.app.policy_mod import carried_aggregation, check_not_in_clear, make_policy_mod
from gt_secure.errors import InvalidFieldError, PolicyRefusalError
from gt_secure.organization.policy import policy_for, write_policy

RUN = {"protocol": "dp-sgd-secagg", "local-steps": 2, "num-texts": 64}


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages can only be built inside a Flower task: give this process one."""
    for attr in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


def context(tmp_path: Path, run: dict[str, object] | None = None) -> Context:
    return Context(run_id=1, node_id=1, state=RecordDict(), run_config=run or RUN,
                   node_config={"org-id": "bank", "state-dir": str(tmp_path / "bank")})


def stage_message(stage: str, **configs: object) -> Message:
    record = ConfigRecord({Key.STAGE: stage, **configs})  # type: ignore[arg-type]
    return Message(RecordDict({RECORD_KEY_CONFIGS: record}), dst_node_id=1,
                   message_type=MessageType.TRAIN)


class Handler:
    """call_next that records whether it ran (it would train) and replies ``content``."""

    def __init__(self, content: RecordDict | None = None) -> None:
        self.calls = 0
        self.content = content or RecordDict()

    def __call__(self, msg: Message, ctxt: Context) -> Message:
        self.calls += 1
        return Message(self.content, reply_to=msg)


def test_secagg_setup_below_min_organizations_is_refused_before_the_key_exchange(
        tmp_path: Path) -> None:
    write_policy(policy_for("dp-sgd-secagg", budget_epsilon=8.0), tmp_path / "bank/policy.toml")
    handler, mod = Handler(), make_policy_mod()
    with pytest.raises(PolicyRefusalError) as err:
        mod(stage_message(Stage.SETUP, **{Key.THRESHOLD: 2, Key.SHARE_NUMBER: 3}),
            context(tmp_path), handler)
    assert str(err.value).startswith("request.min_organizations must be >= 3 "
                                     "(policy.min_organizations), got "
                                     "request.min_organizations=2.")
    assert handler.calls == 0
    mod(stage_message(Stage.SETUP, **{Key.THRESHOLD: 3, Key.SHARE_NUMBER: 3}),
        context(tmp_path), handler)
    assert handler.calls == 1


def test_unmasking_a_sum_of_fewer_live_organizations_is_refused(tmp_path: Path) -> None:
    write_policy(policy_for("dp-sgd-secagg", budget_epsilon=8.0), tmp_path / "bank/policy.toml")
    handler = Handler()
    msg = stage_message(Stage.UNMASK, **{Key.ACTIVE_NODE_ID_LIST: [1, 2],
                                         Key.DEAD_NODE_ID_LIST: [3]})
    with pytest.raises(PolicyRefusalError, match="request.min_organizations=2"):
        make_policy_mod()(msg, context(tmp_path), handler)
    assert handler.calls == 0


def test_a_plain_request_under_a_secagg_protocol_is_refused_before_training(
        tmp_path: Path) -> None:
    write_policy(policy_for("dp-sgd-secagg", budget_epsilon=8.0), tmp_path / "bank/policy.toml")
    msg = Message(make_request(1, np.zeros(4, np.float32)), dst_node_id=1,
                  message_type=MessageType.TRAIN)
    assert carried_aggregation(msg.content) == "plain"
    handler = Handler()
    with pytest.raises(PolicyRefusalError, match="got request.aggregation='plain'"):
        make_policy_mod()(msg, context(tmp_path), handler)
    assert handler.calls == 0


def test_no_policy_no_training(tmp_path: Path) -> None:
    handler = Handler()
    with pytest.raises(InvalidFieldError) as err:
        make_policy_mod()(stage_message(Stage.SETUP, **{Key.THRESHOLD: 3}), context(tmp_path),
                          handler)
    assert err.value.field == "policy-file"
    assert handler.calls == 0
    assert not (tmp_path / "bank").exists()


def test_a_reply_in_the_clear_is_refused_unless_the_protocol_is_plain() -> None:
    clear = RecordDict({UPDATE: ArrayRecord({"flat": Array(np.ones(4, np.float32))})})
    with pytest.raises(PolicyRefusalError, match=r"reply.gt.update must be empty"):
        check_not_in_clear(clear, "secagg")
    with pytest.raises(PolicyRefusalError):
        check_not_in_clear(clear, "ckks")
    check_not_in_clear(clear, "plain")
    check_not_in_clear(RecordDict({"fitres.parameters": ArrayRecord()}), "secagg")  # masked


def test_evaluate_messages_pass_without_a_policy(tmp_path: Path) -> None:
    handler = Handler()
    msg = Message(RecordDict(), dst_node_id=1, message_type=MessageType.EVALUATE)
    make_policy_mod()(msg, context(tmp_path), handler)
    assert handler.calls == 1
