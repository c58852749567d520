"""The ServerApp's console lines: one per round, refusals reduced to the line naming the field."""

from __future__ import annotations

from gt_secure.app.progress import round_line, short_reason
from gt_secure.app.validation import Rejection

POLICY_REFUSAL = (
    "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'ray::ClientAppActor.run()\n"
    "  File \"policy_mod.py\", line 89, in enforce_policy\n    policy.enforce(request, org_id)\n"
    "gt_secure.errors.PolicyRefusalError: request.min_organizations must be >= 3 "
    "(policy.min_organizations), got request.min_organizations=1.\n"
    "refused by organization 'law' before any training\n\n"
    "Exception ClientAppException occurred. Message: request.min_organizations must be >= 3 "
    "(policy.min_organizations), got request.min_organizations=1.'>")


def test_a_policy_refusal_names_its_organization_and_field_in_one_line() -> None:
    rejection = Rejection.of(POLICY_REFUSAL, "?", 4, "plain")
    assert (rejection.org_id, rejection.field) == ("law", "request.min_organizations")
    assert short_reason(rejection.message) == (
        "request.min_organizations must be >= 3 (policy.min_organizations), got "
        "request.min_organizations=1.")
    assert short_reason("no reply within 60.0 s") == "no reply within 60.0 s"
    assert len(short_reason("x must be " + "y" * 1000)) == 300


def test_round_line_counts_heard_accepted_and_refused() -> None:
    record = {"round": 2, "num_nodes": 3, "accepted": ["bank"],
              "rejections": [{"org_id": "law", "field": "request.min_organizations",
                              "message": POLICY_REFUSAL},
                             {"org_id": "?", "field": "reply",
                              "message": "no reply within 60.0 s"}],
              "seconds": {"round": 12.345, "provider": 0.25}}
    assert round_line(record, 3) == (
        "round 2/3: heard 2 of 3 organizations, accepted 1 (bank), refused 2 (law: "
        "request.min_organizations, ?: reply); round 12.3 s, provider 0.2 s")


def test_round_line_lists_refusals_by_organization_whatever_the_reply_order() -> None:
    def line(order: list[str]) -> str:
        record = {"round": 1, "num_nodes": 3, "accepted": ["hospital"],
                  "rejections": [{"org_id": org, "field": f"update[{org}].l2_norm",
                                  "message": "m"} for org in order],
                  "seconds": {"round": 1.0, "provider": 0.0}}
        return round_line(record, 1)

    assert line(["law", "bank"]) == line(["bank", "law"])
    assert "refused 2 (bank: update[bank].l2_norm, law: update[law].l2_norm)" in line(
        ["law", "bank"])
