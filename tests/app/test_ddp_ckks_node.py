"""ddp-ckks on the organization's node: the fewest organizations it encrypts for and, as key
holder, decrypts is at least the count its noise share was sized for, whatever its policy says."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from gt_secure.app.ckks_node import member_of
from gt_secure.app.config import AppConfig
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.policy import policy_for, write_policy


def _context(tmp_path: Path, min_organizations: int) -> Context:
    write_policy(policy_for("ddp-ckks", 10.0, min_organizations=min_organizations),
                 tmp_path / "bank" / "policy.toml")
    return Context(run_id=1, node_id=1, node_config={"org-id": "bank",
                                                     "state-dir": str(tmp_path / "bank")},
                   state=RecordDict(), run_config={"protocol": "ddp-ckks"})


@pytest.mark.parametrize(("policy_min", "wanted"), [(1, 2), (2, 2), (3, 3)])
def test_minimum_is_the_larger_of_the_policy_and_min_survivors(
        tmp_path: Path, policy_min: int, wanted: int) -> None:
    cfg = AppConfig(protocol="ddp-ckks").resolve()
    member = member_of(_context(tmp_path, policy_min), cfg)
    assert member.min_orgs == wanted == member.key_holder().min_orgs
    assert member_of(_context(tmp_path, policy_min)).min_orgs == policy_min  # no cfg: policy


def test_a_share_beyond_max_abs_is_refused_naming_the_noise_multiplier(tmp_path: Path) -> None:
    cfg = AppConfig(protocol="ddp-ckks", noise_multiplier=20.0).resolve()
    with pytest.raises(InvalidFieldError) as err:
        member_of(_context(tmp_path, 2), cfg)
    assert err.value.field == "noise_multiplier"
