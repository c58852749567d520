"""The DP-SGD hook factory, the ledger claim, the mechanism-reproducing config, ``audit run``."""

from __future__ import annotations

import json

import pytest
import torch

from gt_secure.audit.dp_pipeline import (
    AUDIT_DP_SGD,
    dp_sgd_hook,
    trainable_copy,
    with_noise,
)
from gt_secure.audit.ledger_audit import audit_config, faker_public_texts, ledger_claim
from gt_secure.cli.main import main
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import DpSgdMechanism, Ledger, VectorGaussianMechanism, generate_key
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.ledger.signing import save_keypair
from gt_secure.models.loading import base_model_hash, load_base
from gt_secure.organization.dp_sgd import plan_dp_sgd


@pytest.fixture(scope="module")
def shipped():
    return load_base("tinylm")


def _ledger(path, mechanisms):
    key = generate_key()
    save_keypair(key, path.parent / "keys", "org-a")  # public key in keys/: --trusted-keys
    ledger = Ledger.create(path, owner="org-a", budget={"example": 50.0, "organization": 50.0},
                           signing_key=key)
    for release_id, mech in mechanisms:
        ledger.append_release(org_id="org-a", release_id=release_id, mechanisms=[mech],
                              delta=1e-5,
                              base_model_hash=base_model_hash("tinylm"),
                              update_vector_hash="c" * 64, data_fingerprint="d" * 64,
                              signing_key=key)
    return ledger


def test_hook_claims_the_ledger_epsilon_and_refuses_other_sizes(shipped):
    model, tokenizer = shipped
    hook = dp_sgd_hook(model, tokenizer, 64)
    mechanism = plan_dp_sgd(AUDIT_DP_SGD, 64)
    assert hook.noise_multiplier == mechanism.noise_multiplier
    assert hook.claimed_epsilon == compute_epsilon([mechanism], 1e-5) == pytest.approx(1.0, 0.02)
    with pytest.raises(InvalidFieldError, match="len\\(texts\\) must be a size that keeps"):
        hook.make_train(0.0)(["too few"] * 10)  # q would be 1 instead of 1/4: refused


def test_trainable_copy_full_or_lora(shipped):
    model, _ = shipped
    full = trainable_copy(model)
    frozen = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert frozen and all("norm" in n for n in frozen)
    lora = trainable_copy(model, "lora")
    assert all("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)
    assert all(p.requires_grad for p in model.parameters())  # base untouched
    with pytest.raises(InvalidFieldError, match="target"):
        trainable_copy(model, "all")  # type: ignore[arg-type]


def test_dp_training_runs_the_planned_steps_and_keeps_norms(shipped):
    model, tokenizer = shipped
    cfg = with_noise(AUDIT_DP_SGD.model_copy(update={"steps": 2}), 1.0)
    texts = faker_public_texts(16)
    hook = dp_sgd_hook(model, tokenizer, 16, cfg)
    trained = hook.make_train(1.0)(texts)
    before, after = dict(model.named_parameters()), dict(trained.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert "model.embed_tokens.weight" in changed and not any("norm" in n for n in changed)


def test_audit_config_reproduces_the_recorded_mechanism():
    mechanism = plan_dp_sgd(AUDIT_DP_SGD, 64)  # q = 1/4, 24 steps
    cfg, n_public = audit_config(mechanism, n_members=30, n_public=40, delta=1e-5)
    assert (30 + n_public) % 4 == 0 and n_public <= 40
    assert plan_dp_sgd(cfg, 30 + n_public) == mechanism
    odd = DpSgdMechanism(sample_rate=0.3, noise_multiplier=1.0, steps=3, clip_norm=1.0)
    with pytest.raises(InvalidFieldError, match="sample_rate must be 1/k"):
        audit_config(odd, 30, 40, delta=1e-5)
    with pytest.raises(InvalidFieldError, match="public_texts must be >= 2"):
        audit_config(mechanism, 30, 1, delta=1e-5)


def test_ledger_claim_is_the_example_release_total(tmp_path):
    first = DpSgdMechanism(sample_rate=0.25, noise_multiplier=2.0, steps=8, clip_norm=1.0)
    second = DpSgdMechanism(sample_rate=0.5, noise_multiplier=3.0, steps=4, clip_norm=0.5)
    vector = VectorGaussianMechanism(noise_multiplier=2.0, clip_norm=1.0)
    ledger = _ledger(tmp_path / "l.jsonl", [("r1", first), ("r2", second), ("r2", vector)])
    claim = ledger_claim(ledger, "r2")
    assert claim.mechanism == second
    assert claim.epsilon == pytest.approx(compute_epsilon([first, second], 1e-5))
    summary = claim.summary()
    assert summary["release_id"] == "r2" and summary["org_id"] == "org-a"
    assert (summary["noise_multiplier"], summary["steps"], summary["clip_norm"]) == (3.0, 4, 0.5)
    assert summary["epsilon"] > summary["epsilon_spent"]
    with pytest.raises(InvalidFieldError, match="release_id must be the id of exactly one"):
        ledger_claim(ledger, "r9")


def test_cli_run_claims_from_the_ledger(tmp_path, memorised, capsys):
    model, manifest = memorised
    mech = DpSgdMechanism(sample_rate=0.25, noise_multiplier=1.5, steps=2, clip_norm=1.0)
    ledger = _ledger(tmp_path / "l.jsonl", [("rel-1", mech)])
    epsilon = ledger.entries()[0].epsilon_total
    manifest.save(tmp_path / "m.json")
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    rc = main(["audit", "run", "--target", str(tmp_path / "model"), "--manifest",
               str(tmp_path / "m.json"), "--tokenizer", "byte", "--attack", "loss",
               "--ledger", str(tmp_path / "l.jsonl"), "--release-id", "rel-1", "--trusted-keys",
               str(tmp_path / "keys"), "--out", str(out)])
    report = json.loads((out / "audit.json").read_text())
    assert report["ledger_verification"].startswith("verified: OK")
    assert report["audited"].startswith("the released artifact: the saved model directory")
    assert report["results"][0]["claimed_epsilon"] == epsilon
    assert report["ledger_entries"][0]["release_id"] == "rel-1"
    assert rc == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1}[report["verdict"]]
    assert report["verdict"] == ("FAIL" if report["results"][0]["empirical_epsilon"]["epsilon"]
                                 > epsilon else "INCONCLUSIVE")  # 16 canaries: a weak control
    capsys.readouterr()
    rc = main(["audit", "run", "--target", str(tmp_path / "model"), "--manifest",
               str(tmp_path / "m.json"), "--tokenizer", "byte", "--out", str(out)])
    assert rc == 2 and "--claimed-epsilon" in capsys.readouterr().err  # a usage error, one line


def test_cli_rerun_of_a_ledger_release(tmp_path, capsys):
    mech = DpSgdMechanism(sample_rate=0.5, noise_multiplier=2.0, steps=2, clip_norm=1.0)
    _ledger(tmp_path / "l.jsonl", [("rel-2", mech)])
    (tmp_path / "public.txt").write_text("\n".join(faker_public_texts(8)))
    out = tmp_path / "out"
    rc = main(["audit", "run", "--ledger", str(tmp_path / "l.jsonl"), "--release-id", "rel-2",
               "--public", str(tmp_path / "public.txt"), "--n", "8", "--unverified",
               "--out", str(out)])
    report = json.loads((out / "audit.json").read_text())
    # 8 canaries cannot exceed the claim even without DP: INCONCLUSIVE (exit 1), not PASS.
    assert rc == 1 and report["verdict"] == "INCONCLUSIVE"
    assert report["audited"].startswith("a re-simulation of the mechanism recorded by release")
    assert report["ledger_verification"].startswith("UNVERIFIED")
    assert report["ledger_entries"][0]["noise_multiplier"] == 2.0
    assert "org-a loss" in capsys.readouterr().out
