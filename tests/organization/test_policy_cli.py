"""``gt-secure organization policy init | check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gt_secure.cli.main import main
from gt_secure.organization.policy import load_policy, policy_for


def test_init_writes_the_protocols_limits_with_the_given_budget(tmp_path: Path) -> None:
    assert main(["organization", "policy", "init", "--out", str(tmp_path), "--protocol",
                 "dp-sgd-secagg", "--budget-example", "8"]) == 0
    policy = load_policy(tmp_path / "policy.toml")
    assert policy == policy_for("dp-sgd-secagg", budget_epsilon=8.0)
    assert main(["organization", "policy", "check", str(tmp_path / "policy.toml")]) == 0


def test_init_sets_explicit_limits_and_refuses_to_overwrite(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    args = ["organization", "policy", "init", "--out", str(tmp_path), "--protocol", "dp-secagg",
            "--protocol", "dp-ckks", "--budget-example", "8", "--budget-organization", "4",
            "--min-noise-organization", "1.5", "--min-organizations", "4"]
    assert main(args) == 2  # dp-secagg and dp-ckks specify noise 1 < 1.5: contradictory
    assert "request.organization.noise_multiplier must be >= 1.5" in capsys.readouterr().err
    args[args.index("1.5")] = "1.0"
    assert main(args) == 0
    policy = load_policy(tmp_path / "policy.toml")
    assert policy.protocols == ("dp-secagg", "dp-ckks") and policy.min_organizations == 4
    assert policy.organization is not None and policy.organization.budget_epsilon == 4.0
    assert main(args) == 2
    assert "use --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_init_never_invents_a_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["organization", "policy", "init", "--out", str(tmp_path), "--protocol",
                 "dp-secagg", "--budget-example", "8"]) == 2
    assert "--budget-organization must be set" in capsys.readouterr().err
    assert not (tmp_path / "policy.toml").exists()
    assert main(["organization", "policy", "init", "--out", str(tmp_path), "--protocol",
                 "plain", "--budget-example", "8"]) == 2
    assert "--budget-example must be unset" in capsys.readouterr().err


def test_check_reports_every_problem_and_exits_1(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('protocols = ["plain"]\nmax_clip_norm = -1\n')
    assert main(["organization", "policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "min_organizations must be set" in err and "got max_clip_norm=-1" in err
    assert main(["organization", "policy", "check", str(tmp_path / "missing.toml")]) == 2
