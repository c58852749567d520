"""The organization policy model: validation, TOML round trip, and what it refuses."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.errors import InvalidFieldError, PolicyRefusalError
from gt_secure.organization.policy import (
    OrganizationPolicy,
    PolicyError,
    ReleaseRequest,
    UnitPolicy,
    UnitRequest,
    load_policy,
    parse_policy,
    policy_for,
    policy_toml,
    write_policy,
)
from gt_secure.protocols import list_protocols

SGD = UnitRequest(noise_multiplier=1.2, epsilon=0.99, delta=1e-5)


def sgd_policy(**changes: object) -> OrganizationPolicy:
    return policy_for("dp-sgd-secagg", budget_epsilon=8.0).model_copy(update=changes)


def request(**changes: object) -> ReleaseRequest:
    fields: dict[str, object] = {"protocol": "dp-sgd-secagg", "aggregation": "secagg+",
                                 "min_organizations": 3, "clip_norm": 1.0, "example": SGD}
    return ReleaseRequest(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", list_protocols())
def test_policy_for_each_packaged_protocol_round_trips_and_accepts_it(protocol: str,
                                                                      tmp_path: Path) -> None:
    policy = policy_for(protocol, budget_epsilon=8.0)
    path = write_policy(policy, tmp_path / "policy.toml")
    assert load_policy(path) == policy
    assert parse_policy(tomllib.loads(policy_toml(policy))) == policy
    assert policy.protocols == (protocol,)
    assert "ledger_keys" not in policy_toml(policy)  # optional, written only when set
    keyed = policy.model_copy(update={"ledger_keys": ("org-a.pub.pem", "keys")})
    assert parse_policy(tomllib.loads(policy_toml(keyed))) == keyed


def test_a_policy_must_set_a_budget_and_a_limit_per_protected_unit() -> None:
    data = {"protocols": ["dp-sgd-secagg"], "min_organizations": 3, "max_clip_norm": 1.0,
            "example": {"max_epsilon": 1.0}}
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert err.value.field == "example.budget_epsilon"
    data["example"] = {"budget_epsilon": 8.0}
    with pytest.raises(PolicyError, match="example.max_epsilon must be set"):
        parse_policy(data)
    data["example"] = {"budget_epsilon": 8.0, "max_epsilon": 9.0}
    with pytest.raises(PolicyError, match="max_epsilon must be <= budget_epsilon=8.0"):
        parse_policy(data)


def test_a_policy_without_budget_for_a_unit_its_protocol_protects_is_invalid() -> None:
    # dp-sgd-secagg runs DP-SGD: its releases need an example budget, and none was set.
    data = {"protocols": ["dp-sgd-secagg"], "min_organizations": 3, "max_clip_norm": 1.0}
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert err.value.field == "protocols[0]"
    assert "request.example must be absent: policy.example is not set" in str(err.value)


def test_every_problem_is_named_at_once() -> None:
    data = {"protocols": ["plain", "nope"], "min_organizations": 0, "max_clip_norm": -1.0,
            "surprise": 1, "example": {"budget_epsilon": 1.0, "max_epsilon": 1.0}}
    with pytest.raises(PolicyError) as err:
        parse_policy(data, "bank/policy.toml")
    fields = [p.field for p in err.value.problems]
    assert fields == ["min_organizations", "max_clip_norm", "surprise"]
    text = str(err.value)
    assert text.startswith("bank/policy.toml: 3 problem(s)")
    assert "got max_clip_norm=-1.0." in text


def test_protocols_are_checked_against_the_policy() -> None:
    data = {"protocols": ["plain", "nope"], "min_organizations": 1, "max_clip_norm": 1.0,
            "example": {"budget_epsilon": 1.0, "max_epsilon": 1.0}}
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert [p.field for p in err.value.problems] == ["protocols[0]", "protocols[1]"]
    assert "policy.example requires it in every release" in str(err.value)
    assert "a loadable protocol spec" in str(err.value)
    data["example"] = {"budget_epsilon": 1.0, "max_epsilon": 0.5}
    data["protocols"] = ["dp-sgd-secagg"]  # its DP-SGD runs at epsilon 1 per release
    with pytest.raises(PolicyError, match=r"request.example.epsilon must be <= 0.5"):
        parse_policy(data)


def test_missing_policy_file_is_refused_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidFieldError) as err:
        load_policy(tmp_path / "policy.toml")
    assert err.value.field == "policy-file"
    assert "gt-secure organization policy init" in str(err.value)
    (tmp_path / "bad.toml").write_text("protocols = [")
    with pytest.raises(InvalidFieldError, match="valid UTF-8 TOML"):
        load_policy(tmp_path / "bad.toml")


def test_accepted_request_and_budgets() -> None:
    policy = sgd_policy()
    assert policy.refusals(request()) == []
    policy.enforce(request())
    assert policy.budgets() == (8.0, math.inf)


@pytest.mark.parametrize(("changes", "field", "requested", "required"), [
    ({"protocol": "plain", "example": None, "aggregation": "plain"}, "request.protocol",
     "'plain'", "one of ['dp-sgd-secagg'] (policy.protocols)"),
    ({"aggregation": "plain"}, "request.aggregation", "'plain'",
     "'secagg+' (the aggregation of accepted protocol 'dp-sgd-secagg')"),
    ({"min_organizations": 1}, "request.min_organizations", "1",
     ">= 3 (policy.min_organizations)"),
    ({"clip_norm": 4.0}, "request.clip_norm", "4.0", "<= 1.0 (policy.max_clip_norm)"),
    ({"example": None}, "request.example", "None", "example-level DP (policy.example"),
    ({"example": UnitRequest(0.5, 2.5, 1e-5)}, "request.example.epsilon", "2.5",
     "<= 1.0 (policy.example.max_epsilon)"),
    ({"example": UnitRequest(1.0, 0.9, 1e-3)}, "request.example.delta", "0.001",
     "<= 1e-05 (policy.example.max_delta)"),
    ({"organization": UnitRequest(1.0, 4.7, 1e-5)}, "request.organization",
     "'noise_multiplier=1'", "absent: policy.organization is not set"),
])
def test_each_refusal_names_field_requested_and_required(
        changes: dict[str, object], field: str, requested: str, required: str) -> None:
    with pytest.raises(PolicyRefusalError) as err:
        sgd_policy().enforce(request(**changes), "bank")
    assert err.value.field == field
    message = str(err.value)
    assert message.startswith(f"{field} must be {required}")
    assert f"got {field}={requested}" in message
    assert "refused by organization 'bank' before any training" in "".join(err.value.__notes__)


@settings(max_examples=200, deadline=None)
@given(max_eps=st.one_of(st.none(), st.floats(0.1, 10)),
       min_z=st.one_of(st.none(), st.floats(0.1, 10)),
       max_delta=st.floats(1e-9, 1e-3),
       eps=st.floats(0.01, 20), z=st.floats(0.0, 20), delta=st.floats(1e-10, 1e-2))
def test_unit_limits_refuse_exactly_the_requests_outside_them(
        max_eps: float | None, min_z: float | None, max_delta: float,
        eps: float, z: float, delta: float) -> None:
    if max_eps is None and min_z is None:
        return
    unit = UnitPolicy(budget_epsilon=20.0, max_epsilon=max_eps, min_noise_multiplier=min_z,
                      max_delta=max_delta)
    policy = OrganizationPolicy.model_construct(
        protocols=("dp-sgd-secagg",), min_organizations=3, max_clip_norm=1.0, example=unit,
        organization=None)
    refused = {e.field for e in policy.refusals(request(example=UnitRequest(z, eps, delta)))}
    expected = set()
    if max_eps is not None and eps > max_eps * (1 + 1e-9):
        expected.add("request.example.epsilon")
    if min_z is not None and z < min_z:
        expected.add("request.example.noise_multiplier")
    if delta > max_delta:
        expected.add("request.example.delta")
    assert refused == expected
