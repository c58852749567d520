"""Federation audit: canaries at one organization, scored on what the federation released.

Default suite (no Flower simulation, seconds): the canaries are rare-token texts none of the
organizations' texts use; the planted-bug swap makes the release run the bug while the ledger
records the planned mechanism, and restores the honest DP-SGD afterwards; an unchanged model
scores every canary exactly 0 (loss drop); a bad CLI setting is a one-line usage error (exit 2).

``slow``: the whole federation (Flower simulation engine, 3 organizations, SecAgg+, shipped
translator) with 64 canaries at the bank, 64 local steps, 16 texts per organization; the correct
pipeline must PASS. Positive controls: noise off at the bank is a strict ``xfail`` (measured, the
federation audit does not detect it: docs/benchmarks.md "Audit power"; if it starts to, the
test errors so the docs get updated); the scores themselves must FAIL a non-private fine-tune
of the bank's data scored before SecAgg+ and the translator (TinyLM update).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gt_secure.audit.federation import FederationAuditConfig, run_federation_audit
from gt_secure.audit.federation_app import planted
from gt_secure.audit.federation_scores import canary_losses, rare_token_canaries
from gt_secure.cli.main import main
from gt_secure.data.organizations import ORGANIZATIONS, org_texts


@pytest.fixture(scope="module")
def _checkpoint(shipped):  # skips without the shipped TinyLM
    return shipped


def test_canaries_use_no_token_of_any_organization(_checkpoint) -> None:
    from gt_secure.models.loading import load_tokenizer

    used_texts = [t for o in ORGANIZATIONS for t in org_texts(o, "train", 16)]
    texts = rare_token_canaries(used_texts, 32, 8, seed=0)
    tokenizer = load_tokenizer()
    used = {i for enc in tokenizer(used_texts)["input_ids"] for i in enc}
    drawn = {i for enc in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in enc}
    assert len(set(texts)) == 32
    assert not drawn & used
    assert texts != rare_token_canaries(used_texts, 32, 8, seed=1)


def test_planted_bug_runs_the_bug_and_records_the_plan(_checkpoint, tmp_path: Path) -> None:
    from gt_secure.ledger.signing import generate_key
    from gt_secure.ledger.store import Ledger
    from gt_secure.organization import release
    from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd

    honest = release.train_dp_sgd_texts
    texts = org_texts("bank", "train", 16)
    dp = DpSgdConfig(target_epsilon=1.0, delta=1e-5, steps=2, batch_size=4, accountant="prv")
    cfg = release.ReleaseConfig(budget=release.PrivacyBudget(example=10.0, organization=math.inf),
                                dp_sgd=dp)
    key = generate_key()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.ensure(owner="bank", budget={"example": 10.0, "organization": math.inf},
                  signing_key=key)
    ran: list[float] = []
    with planted("noise_off"):
        assert release.train_dp_sgd_texts is not honest
        inner = release.train_dp_sgd_texts

        def spy(model, tokenizer, texts, cfg):  # type: ignore[no-untyped-def]
            ran.append(cfg.noise_multiplier)
            return inner(model, tokenizer, texts, cfg)

        release.train_dp_sgd_texts = spy  # type: ignore[assignment]
        out = release.prepare_release("bank", texts, cfg, ledger, key, salt=b"s" * 16,
                                      release_id="bank-1-1")
        release.train_dp_sgd_texts = inner  # type: ignore[assignment]
    assert release.train_dp_sgd_texts is honest
    planned = plan_dp_sgd(dp, len(texts))
    assert planned.noise_multiplier > 0
    assert list(out.entries[0].mechanisms) == [planned]  # the ledger claims the plan ...
    assert out.epsilon["example"] == pytest.approx(1.0, abs=0.01)


def test_an_unchanged_model_scores_every_canary_zero(_checkpoint) -> None:
    from gt_secure.provider.adapter import fresh_lora

    model, _, _, tokenizer = fresh_lora("tinylm")
    texts = rare_token_canaries(org_texts("bank", "train", 16), 8, 8, seed=0)
    first, again = canary_losses(model, tokenizer, texts), canary_losses(model, tokenizer, texts)
    assert np.all(first > 0)
    np.testing.assert_array_equal(first - again, 0.0)


def test_cli_bad_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "federation", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_canaries" in err[0]


def test_config_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="bug"):
        FederationAuditConfig(bug="typo")  # type: ignore[arg-type]


SETTINGS = {"n_canaries": 64, "local_steps": 64, "num_texts": 16, "seed": 0}


@pytest.mark.slow
def test_federation_audit_passes_the_correct_pipeline(_checkpoint, tmp_path: Path) -> None:
    audit = run_federation_audit(FederationAuditConfig(**SETTINGS), tmp_path)
    assert audit.verdict == "PASS"
    assert [r.attack for r in audit.results] == ["federation_tinylm_update",
                                                 "federation_adapter"]
    assert all(r.claimed_epsilon == pytest.approx(1.0, abs=0.02) for r in audit.results)
    assert all(r.ledger_release_ids == [audit.release_id] for r in audit.results)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: no power (docs/benchmarks.md 'Audit power'); "
                   "noise off at one organization is not detected through SecAgg+'s clipped "
                   "mean of 3 updates and the translator")
def test_federation_audit_detects_noise_off_at_one_organization(_checkpoint,
                                                               tmp_path: Path) -> None:
    control = run_federation_audit(FederationAuditConfig(**SETTINGS, bug="noise_off"), tmp_path)
    assert control.results[0].claimed_epsilon == pytest.approx(1.0, abs=0.02)  # still claimed
    assert control.verdict == "FAIL"


@pytest.mark.slow
def test_scores_detect_a_non_private_fine_tune(_checkpoint, tmp_path: Path) -> None:
    """The scores' own positive control: the bank's texts + "in" canaries fine-tuned without DP
    (800 steps, no update clip, no mean) must FAIL the claim on the TinyLM update."""
    from gt_secure.audit.federation import nonprivate_control

    tinylm, adapter = nonprivate_control(FederationAuditConfig(**SETTINGS), 1.0, 1e-5, tmp_path,
                                         steps=800)
    assert tinylm.verdict == "FAIL", tinylm.empirical_epsilon
    assert adapter.attack == "federation_adapter"  # measured: the translator loses the signal
