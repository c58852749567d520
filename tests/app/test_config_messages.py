"""App configuration (protocol specs, sentinels) and the wire format of updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from gt_secure.app.ckks_messages import REPLY, decrypt_reply, read_decrypt_reply
from gt_secure.app.ckks_node import make_ckks_mod
from gt_secure.app.config import AppConfig, org_id_of
from gt_secure.app.messages import (
    CKKS,
    UPDATE,
    UpdatePayload,
    is_secagg,
    make_ckks_request,
    make_request,
    read_meta,
    read_reply,
    read_request,
    write_reply,
)
from gt_secure.errors import InvalidFieldError, ProtocolConfigError
from gt_secure.organization.key_holder import Decryption
from gt_secure.organization.policy import policy_for, write_policy


def test_sentinels_take_the_protocol_spec_and_explicit_values_win() -> None:
    spec_values = AppConfig.from_run_config({"protocol": "dp-secagg"}).resolve()
    assert spec_values.aggregation == "secagg"
    assert spec_values.num_rounds >= 1 and spec_values.min_orgs >= 3
    assert spec_values.noise_multiplier > 0 and spec_values.secagg is not None
    explicit = AppConfig.from_run_config(
        {"protocol": "dp-secagg", "num-rounds": 4, "noise-multiplier": 0,
         "secagg-params": "auto"}).resolve()
    assert (explicit.num_rounds, explicit.noise_multiplier, explicit.secagg) == (4, 0.0, None)
    plain = AppConfig.from_run_config({"protocol": "plain"}).resolve()
    assert (plain.aggregation, plain.clip_norm, plain.noise_multiplier) == ("plain", 1.0, 0.0)


def test_bad_config_is_refused_with_every_problem() -> None:
    with pytest.raises(InvalidFieldError, match="num_rounds") as info:
        AppConfig.from_run_config({"num-rounds": -1, "round-timeout": 0.0})
    assert any("round_timeout" in note for note in info.value.__notes__)
    with pytest.raises(InvalidFieldError, match="protocol must be of type str"):
        AppConfig.from_run_config({"protocol": 3})
    with pytest.raises(ProtocolConfigError):
        AppConfig.from_run_config({"protocol": "no-such-protocol"}).resolve()
    ckks = AppConfig.from_run_config({"protocol": "dp-ckks"}).resolve()
    assert ckks.aggregation == "ckks" and ckks.ckks is not None and ckks.ckks.max_abs > 0


def test_org_id_comes_from_node_config() -> None:
    assert org_id_of({"org-id": "hospital"}) == "hospital"
    assert org_id_of({"partition-id": 2, "num-partitions": 3}) == "law"
    assert org_id_of({"partition-id": 5, "num-partitions": 6}) == "org-5"
    with pytest.raises(InvalidFieldError, match="node_config.org-id"):
        org_id_of({})


@pytest.mark.parametrize("secagg", [False, True])
def test_reply_round_trips_in_both_formats(secagg: bool) -> None:
    flat = np.random.default_rng(1).normal(size=17).astype(np.float32)
    sent = UpdatePayload("bank", flat, '{"l": 1}', '{"e": 2}', "h" * 64)
    got = read_reply(write_reply(sent, secagg))
    np.testing.assert_array_equal(got.flat, flat)
    assert got.flat.dtype == np.float32
    assert (got.org_id, got.layout_json, got.ledger_json) == ("bank", '{"l": 1}', '{"e": 2}')
    assert got.content_hash == ("" if secagg else "h" * 64)  # no per-org hash under SecAgg+


def test_plain_request_round_trips() -> None:
    content = make_request(3, np.arange(5, dtype=np.float32))
    round_idx, flat = read_request(content)
    assert round_idx == 3 and flat.tolist() == [0, 1, 2, 3, 4]
    assert not is_secagg(content) and not is_secagg(RecordDict())


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages can only be built inside a Flower task: give this process one."""
    for attr in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


def _train_message(content: RecordDict) -> Message:
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def _context(tmp_path: Path) -> Context:
    write_policy(policy_for("dp-ckks", 100.0), tmp_path / "bank" / "policy.toml")
    return Context(run_id=1, node_id=1, node_config={"org-id": "bank",
                                                     "state-dir": str(tmp_path / "bank")},
                   state=RecordDict(), run_config={"protocol": "dp-ckks"})


def test_ckks_mod_keeps_the_vector_on_the_node_and_sends_metadata_only(tmp_path: Path) -> None:
    # Prepare: a CKKS training request; a handler that returns the plain reply.
    flat = np.random.default_rng(2).normal(size=3000).astype(np.float32)
    msg = _train_message(make_ckks_request(1, np.zeros(3000, np.float32)))
    assert read_request(msg.content)[0] == 1

    def handler(m: Message, _: Context) -> Message:
        sent = UpdatePayload("bank", flat, '{"l": 1}', '{"e": 2}', "h" * 64)
        return Message(write_reply(sent, secagg=False), reply_to=m)

    # Execute
    reply = make_ckks_mod()(msg, _context(tmp_path), handler)

    # Assert: no values and no hash left the organization; the vector waits on the node, and
    # the node's key is in the roster beside its state directory.
    assert not reply.content.array_records and UPDATE not in reply.content.array_records
    assert read_meta(reply.content) == {"org-id": "bank", "layout": '{"l": 1}',
                                        "ledger-entry": '{"e": 2}'}
    np.testing.assert_array_equal(np.load(tmp_path / "bank" / "ckks" / "1-1.vector.npy"), flat)
    assert (tmp_path / "roster" / "bank.pub.pem").exists()


def test_ckks_mod_refuses_an_unknown_stage_without_training(tmp_path: Path) -> None:
    content = make_request(1, np.zeros(4, np.float32))
    content[CKKS] = ConfigRecord({"stage": "export", "round": 1})

    def handler(m: Message, _: Context) -> Message:
        raise AssertionError("an unknown stage must not reach training")

    with pytest.raises(InvalidFieldError, match="gt.ckks.stage must be one of"):
        make_ckks_mod()(_train_message(content), _context(tmp_path), handler)


def test_ckks_mod_leaves_other_requests_alone(tmp_path: Path) -> None:
    msg = _train_message(make_request(1, np.zeros(4, np.float32)))
    seen: list[Message] = []

    def handler(m: Message, _: Context) -> Message:
        seen.append(m)
        return Message(RecordDict(), reply_to=m)

    make_ckks_mod()(msg, _context(tmp_path), handler)
    assert seen == [msg]
    assert not (tmp_path / "bank" / "ckks").exists()


def test_ckks_decrypt_reply_round_trips_and_a_malformed_one_is_refused() -> None:
    released = Decryption(np.array([0.5, -1.25]), ["bank", "law"], 2.0**-16)
    mean, orgs, error = read_decrypt_reply(decrypt_reply("bank", released))
    np.testing.assert_array_equal(mean, released.mean)
    assert (orgs, error) == (["bank", "law"], 2.0**-16)
    with pytest.raises(InvalidFieldError, match=r"reply\.gt\.ckks-reply must be a mean"):
        read_decrypt_reply(RecordDict({REPLY: ConfigRecord({"orgs": ["bank"]})}))
