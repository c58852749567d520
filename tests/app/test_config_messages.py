"""App configuration (protocol specs, sentinels) and the wire format of updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from gt_secure.aggregation.ckks import SECRET_FILE, ProviderKeys, decrypt_sum
from gt_secure.aggregation.ckks_params import CkksParams
from gt_secure.app.config import AppConfig, org_id_of
from gt_secure.app.messages import (
    UPDATE,
    UpdatePayload,
    is_secagg,
    make_ckks_request,
    make_request,
    read_encrypted_reply,
    read_reply,
    read_request,
    write_reply,
)
from gt_secure.app.mods import ckks_encrypt_mod
from gt_secure.app.server_app import provider_keys
from gt_secure.errors import InvalidFieldError, ProtocolConfigError, SecretKeyExposureError


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


def _context() -> Context:
    return Context(run_id=1, node_id=1, node_config={"org-id": "bank"}, state=RecordDict(),
                   run_config={})


def test_ckks_mod_encrypts_the_reply_for_the_provider_only() -> None:
    # Prepare: the provider's keys; a handler that returns a plain reply.
    keys = ProviderKeys.generate()
    flat = np.random.default_rng(2).normal(size=3000).astype(np.float32)
    msg = _train_message(make_ckks_request(1, np.zeros(3000, np.float32),
                                           keys.public_context_bytes(), 64.0))
    assert read_request(msg.content)[0] == 1

    def handler(m: Message, _: Context) -> Message:
        sent = UpdatePayload("bank", flat, '{"l": 1}', '{"e": 2}', "h" * 64)
        return Message(write_reply(sent, secagg=False), reply_to=m)

    # Execute
    reply = ckks_encrypt_mod(msg, _context(), handler)

    # Assert: no plaintext and no hash left the organization; the provider decrypts the vector.
    assert UPDATE not in reply.content.array_records
    meta, chunks = read_encrypted_reply(reply.content)
    assert meta == {"org-id": "bank", "layout": '{"l": 1}', "ledger-entry": '{"e": 2}'}
    got = decrypt_sum(chunks, keys, 3000)
    assert float(np.max(np.abs(got - flat))) < keys.params.error_bound(1)


def test_ckks_mod_refuses_a_context_with_the_secret_key_before_training() -> None:
    keys = ProviderKeys.generate()
    leaked = bytes(keys.secret_context.serialize(save_secret_key=True))
    msg = _train_message(make_ckks_request(1, np.zeros(4, np.float32), leaked, 64.0))

    def handler(m: Message, _: Context) -> Message:
        raise AssertionError("the organization must not train under a leaked key")

    with pytest.raises(SecretKeyExposureError, match="secret key"):
        ckks_encrypt_mod(msg, _context(), handler)


def test_ckks_mod_leaves_other_requests_alone() -> None:
    msg = _train_message(make_request(1, np.zeros(4, np.float32)))
    seen: list[Message] = []

    def handler(m: Message, _: Context) -> Message:
        seen.append(m)
        return Message(RecordDict(), reply_to=m)

    ckks_encrypt_mod(msg, _context(), handler)
    assert seen == [msg]


def test_provider_keys_come_from_the_key_dir_and_must_match_the_protocol(
    tmp_path: Path,
) -> None:
    fresh = AppConfig.from_run_config({"protocol": "dp-ckks"}).resolve()
    keys = provider_keys(fresh, tmp_path / "out")
    assert (tmp_path / "out" / "ckks" / SECRET_FILE).exists()
    assert fresh.ckks is not None and keys.params == fresh.ckks.to_params()
    other = CkksParams(poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 60),
                       global_scale_bits=40)
    ProviderKeys.generate(other).save(tmp_path / "keys")
    cfg = AppConfig.from_run_config({"protocol": "dp-ckks",
                                     "ckks-key-dir": str(tmp_path / "keys")}).resolve()
    with pytest.raises(ProtocolConfigError, match="ckks_key_dir"):
        provider_keys(cfg, tmp_path / "out2")
