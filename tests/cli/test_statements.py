"""Plain-language guarantees (after TF Privacy's compute_dp_sgd_privacy_statement) and file
line numbers of ledger views."""

from __future__ import annotations

from gt_secure.ledger.report import statements, view_of
from tests.ledger.conftest import World
from tests.ledger.test_ddp_mechanism import mechanism


def test_statements_name_unit_epsilon_delta_mechanism_accountant(populated: World) -> None:
    view = view_of(populated.ledger.path, None, {})
    assert view.lines[0] == 2  # line 1 is the ledger header
    texts = dict(zip(view.lines, statements(view.entries), strict=True))
    example, organization = view.entries[0], view.entries[1]
    assert texts[2] == (
        f"each training record of org-a is protected at ε={example.epsilon_total:.3g}, δ=1e-05 "
        f"over all its releases so far (this release ε={example.epsilon_spent:.3g}; DP-SGD, "
        "Poisson sampling rate 0.01, noise multiplier 1, 100 steps, clip norm 1; Rényi DP (RDP) "
        "accountant); the organization's dataset as a whole is also protected by its "
        "organization-level entry")
    assert texts[3].startswith(
        f"the whole dataset of org-a (any change to all of its records) is protected at "
        f"ε={organization.epsilon_total:.3g}, δ=1e-05")
    assert "Gaussian noise (multiplier 2) on the update vector clipped to L2 norm 1" in texts[3]
    assert any("post-processing" in t and "no additional privacy cost" in t
               for t in texts.values())


def test_distributed_gaussian_states_its_condition(populated: World) -> None:
    ddp = mechanism(sigma=10.0, sensitivity=20.0, organizations=5, min_survivors=4,
                    max_colluders=1)
    entry = populated.ledger.entries()[1].model_copy(update={"mechanisms": [ddp]})
    (text,) = statements([entry])
    assert "distributed discrete Gaussian (its share: sigma 10" in text
    assert "at most 1 of 5 organizations collude with the server" in text
