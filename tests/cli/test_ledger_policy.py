"""The compliance officer reads an organization's ledger with the keys its policy names, and
sees an unprotected (plain) release as such (real CLI, subprocess)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gt_secure.organization.policy import policy_for, policy_toml
from tests.cli.conftest import IMPORTS, cli
from tests.cli.test_exit_codes import one_line
from tests.ledger.conftest import DPSGD, World, release
from tests.ledger.test_unprotected import plain


def state_dir(world: World, tmp_path: Path, keys: list[str] | None = None) -> Path:
    """An organization state folder: policy.toml (``ledger_keys`` when given) and its public key."""
    state = tmp_path / "state"
    state.mkdir()
    text = policy_toml(policy_for("dp-sgd-secagg", 8.0))
    if keys is not None:
        text = f"ledger_keys = {json.dumps(keys)}\n" + text
    (state / "policy.toml").write_text(text)
    shutil.copy(world.key_dir / "org-a.pub.pem", state)
    return state


def test_show_trusts_the_keys_beside_the_policy_and_lists_the_plain_release(
        world: World, tmp_path: Path) -> None:
    release(world, "org-a", "r1", [DPSGD])
    plain(world)
    policy = state_dir(world, tmp_path) / "policy.toml"
    ledger = str(world.ledger.path)
    data = json.loads(cli("ledger", "show", "--ledger", ledger, "--policy", str(policy),
                          "--format", "json").out)
    assert data["unverified"] is False and data["ledgers"][0]["ok"] is True
    (line,) = data["unprotected_releases"]
    assert line.startswith("org-a plain-1 (") and "no differential privacy" in line
    entry = data["ledgers"][0]["entries"][1]
    assert entry["kind"] == "unprotected_release" and entry["protocol"] == "plain"
    assert entry["statement"].startswith("no differential privacy: the released update "
                                         "protects neither the records nor the dataset")
    table = cli("ledger", "show", "--ledger", ledger, "--policy", str(policy))
    assert table.code == 0 and "OK: 2 entries verified" in table.out
    assert "UNPROTECTED release org-a plain-1" in table.out
    out = tmp_path / "report.html"
    run = cli("ledger", "report", "--ledger", ledger, "--policy", str(policy), "--out", str(out))
    assert run.code == 0 and "(verified)" in run.out
    page = out.read_text()
    assert "UNPROTECTED releases (no differential privacy" in page
    assert "<td>unprotected_release</td>" in page and "<td>no DP</td>" in page


def test_policy_ledger_keys_are_used_and_checked(populated: World, tmp_path: Path) -> None:
    ledger = str(populated.ledger.path)
    beside = state_dir(populated, tmp_path) / "policy.toml"  # org-a's key only: the
    run = cli("ledger", "verify", "--ledger", ledger, "--policy", str(beside))
    assert run.code == 1 and "not a trusted key" in run.out  # provider's entries fail
    named = tmp_path / "named"
    named.mkdir()
    policy = named / "policy.toml"
    policy.write_text(f"ledger_keys = [{json.dumps(str(populated.key_dir))}]\n"
                      + beside.read_text())
    run = cli("ledger", "verify", "--ledger", ledger, "--policy", str(policy))
    assert run.code == 0 and run.out.startswith("OK: 5 entries verified")
    run = cli("ledger", "show", "--ledger", ledger, "--policy", str(policy), python=IMPORTS)
    assert run.code == 0 and run.out.splitlines()[-1] == "HEAVY="  # reading a policy: no torch
    policy.write_text('ledger_keys = ["absent.pub.pem"]\n' + beside.read_text())
    run = cli("ledger", "show", "--ledger", ledger, "--policy", str(policy))
    assert run.code == 2 and one_line(run.err).startswith("error: --policy must be")
    assert "absent.pub.pem" in run.err
    run = cli("ledger", "show", "--ledger", ledger, "--policy", str(tmp_path / "nope.toml"))
    assert run.code == 2 and "--policy must be an existing organization policy" in run.err
    run = cli("ledger", "show", "--ledger", ledger, "--policy", str(policy), "--unverified")
    assert run.code == 2 and "not allowed with" in run.err
