"""App configuration (protocol specs, sentinels) and the wire format of updates."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import RecordDict

from gt_secure.app.config import AppConfig, org_id_of
from gt_secure.app.messages import (
    UpdatePayload,
    is_secagg,
    make_request,
    read_reply,
    read_request,
    write_reply,
)
from gt_secure.errors import InvalidFieldError, ProtocolConfigError


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
    with pytest.raises(ProtocolConfigError, match="aggregation"):
        AppConfig.from_run_config({"protocol": "dp-ckks"}).resolve()


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
