"""Policy consent to a public basis: a release in a basis the organization did not list is
refused naming the field; a listed one (and a full-space release) is accepted; TOML round-trips."""

from __future__ import annotations

import tomllib

import pytest

from gt_secure.errors import InvalidFieldError
from gt_secure.organization.policy import parse_policy, policy_toml
from tests.organization.test_policy import request, sgd_policy

LISTED, OTHER = "a" * 64, "b" * 64


def test_release_in_an_unlisted_basis_is_refused_and_a_listed_one_accepted() -> None:
    policy = sgd_policy(public_bases=(LISTED,))
    assert policy.refusals(request()) == []  # full space
    assert policy.refusals(request(basis_sha256=LISTED)) == []
    (refusal,) = policy.refusals(request(basis_sha256=OTHER))
    assert refusal.field == "request.basis_sha256" and LISTED in str(refusal)
    (refusal,) = sgd_policy().refusals(request(basis_sha256=LISTED))  # default: none consented
    assert "policy.public_bases" in str(refusal)


def test_public_bases_round_trip_through_toml_and_must_be_sha256() -> None:
    policy = sgd_policy(public_bases=(LISTED,))
    assert parse_policy(tomllib.loads(policy_toml(policy))).public_bases == (LISTED,)
    with pytest.raises(InvalidFieldError, match="public_bases"):
        parse_policy(tomllib.loads(policy_toml(policy).replace(LISTED, "not-a-hash")))
