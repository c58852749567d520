"""Federation audit: canaries at one organization, scored on what the federation released.

Default suite (no Flower simulation, seconds): the rare-token canary texts use no token of the
organizations' texts; the planted-bug swap makes the release run the bug while the ledger
records the planned mechanism, and restores the honest DP-SGD afterwards; the instrumented
DP-SGD inserts the Dirac gradient canaries the auditor's index map scores (noise off: "in"
canaries move further); the copying translator hands the TinyLM coordinates to the adapter score
exactly, the shipped one does not; an unchanged model scores every text canary exactly 0 (loss
drop); a bad CLI setting is a one-line usage error (exit 2).

``slow``: the whole federation (Flower simulation engine, 3 organizations, SecAgg+, translator)
with 256 Dirac gradient canaries at the bank, 64 local steps, 16 texts per organization: the
correct pipeline must PASS; noise off at the bank must FAIL on the aggregated TinyLM update;
noise off at the bank with a provider whose translator copies the update into the adapter must
FAIL on the adapter (the adapter audit's positive control); the shipped translator with noise
off at the bank is a strict ``xfail`` on the adapter (measured: not detected, docs/benchmarks.md
"Audit power"). Text canaries: the loss scores must FAIL a non-private fine-tune of the bank's
data scored before SecAgg+ and the translator (TinyLM update).
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


def test_instrumented_dp_sgd_inserts_the_scored_gradient_canaries(_checkpoint) -> None:
    from gt_secure.audit.federation_app import GradientCanarySpec
    from gt_secure.audit.federation_scores import canary_indices, coordinate_scores
    from gt_secure.organization import release
    from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd
    from gt_secure.provider.adapter import fresh_lora
    from gt_secure.update.lora import extract_update

    spec = GradientCanarySpec(n_canaries=128, seed=3)
    index, coins = canary_indices(spec)
    assert len(set(index.tolist())) == 128 and sum(coins) not in (0, 128)
    model, initial, layout, tokenizer = fresh_lora("tinylm")
    texts = org_texts("bank", "train", 16)
    dp = DpSgdConfig(target_epsilon=1.0, delta=1e-5, steps=16, batch_size=4, accountant="rdp",
                     secure_mode=False, seed=0)  # reproducible
    with planted("noise_off", spec):
        result = release.train_dp_sgd_texts(model, tokenizer, texts, dp)
    assert result.mechanism == plan_dp_sgd(dp, len(texts))  # the plan is what is reported
    scores = coordinate_scores(extract_update(model, initial, layout), index)
    member = np.asarray(coins)  # an "out" coordinate moves +-lr with the data (Adam), an "in"
    gap = scores[member].mean() - scores[~member].mean()  # one is pushed every inclusion
    assert gap > 3 * scores.std() / np.sqrt(member.sum()), (gap, scores.std())


def test_copy_translator_passes_the_update_the_shipped_one_compresses(_checkpoint) -> None:
    from gt_secure.audit.federation_app import GradientCanarySpec
    from gt_secure.audit.federation_provider import copy_translator, translator_scores
    from gt_secure.audit.federation_scores import canary_indices, coordinate_scores
    from gt_secure.provider.service import load_translator
    from gt_secure.update import UpdateVector

    index, _ = canary_indices(GradientCanarySpec(n_canaries=64, seed=0))
    copy, shipped = copy_translator(), load_translator()
    rng = np.random.default_rng(0)
    update = UpdateVector(copy.tiny_layout, rng.normal(0, 0.02, copy.tiny_layout.size)
                          .astype(np.float32))
    exact = coordinate_scores(update, index)
    np.testing.assert_allclose(translator_scores(copy.translate(update), copy, index), exact,
                               atol=1e-5)
    through = translator_scores(shipped.translate(update), shipped, index)
    assert abs(np.corrcoef(through, exact)[0, 1]) < 0.6  # rank-128 path of 2048 coordinates


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


SETTINGS = {"n_canaries": 256, "local_steps": 64, "num_texts": 16, "seed": 0}


@pytest.mark.slow
def test_federation_audit_passes_the_correct_pipeline(_checkpoint, tmp_path: Path) -> None:
    audit = run_federation_audit(FederationAuditConfig(**SETTINGS), tmp_path)
    assert audit.verdict == "PASS"
    assert [r.attack for r in audit.results] == ["federation_tinylm_update",
                                                 "federation_adapter"]
    assert all(r.claimed_epsilon == pytest.approx(1.0, abs=0.02) for r in audit.results)
    assert all(r.ledger_release_ids == [audit.release_id] for r in audit.results)


@pytest.mark.slow
def test_federation_audit_detects_noise_off_at_one_organization(_checkpoint,
                                                               tmp_path: Path) -> None:
    control = run_federation_audit(FederationAuditConfig(**SETTINGS, bug="noise_off"), tmp_path)
    tinylm = control.results[0]
    assert tinylm.claimed_epsilon == pytest.approx(1.0, abs=0.02)  # still claimed
    assert tinylm.verdict == "FAIL", tinylm.empirical_epsilon


@pytest.mark.slow
def test_adapter_audit_fails_a_translator_that_copies_the_update(_checkpoint,
                                                                 tmp_path: Path) -> None:
    """The adapter audit's positive control: noise off at the bank AND a provider whose
    translator copies the TinyLM update into the adapter -> FAIL on the delivered adapter."""
    cfg = FederationAuditConfig(**SETTINGS, bug="noise_off", provider_bug="translator_copy")
    adapter = run_federation_audit(cfg, tmp_path).results[1]
    assert adapter.attack == "federation_adapter"
    assert adapter.verdict == "FAIL", adapter.empirical_epsilon


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: the shipped translator (rank-128 linear path "
                   "of the 2048-number update) does not pass the noise-off leak to the adapter "
                   "(docs/benchmarks.md 'Audit power')")
def test_adapter_audit_detects_noise_off_through_the_shipped_translator(_checkpoint,
                                                                       tmp_path: Path) -> None:
    audit = run_federation_audit(FederationAuditConfig(**SETTINGS, bug="noise_off"), tmp_path)
    assert audit.results[1].verdict == "FAIL"


@pytest.mark.slow
def test_scores_detect_a_non_private_fine_tune(_checkpoint, tmp_path: Path) -> None:
    """Text canaries: the loss scores' own positive control: the bank's texts + "in" canaries
    fine-tuned without DP (800 steps, no update clip, no mean) must FAIL the claim on the
    TinyLM update."""
    from gt_secure.audit.federation import nonprivate_control

    cfg = FederationAuditConfig(**{**SETTINGS, "n_canaries": 64}, canaries="text")
    tinylm, adapter = nonprivate_control(cfg, 1.0, 1e-5, tmp_path, steps=800)
    assert tinylm.verdict == "FAIL", tinylm.empirical_epsilon
    assert adapter.attack == "federation_adapter"  # measured: the translator loses the signal
