"""``audit run --config``, the claim ledger's verification, and what the report says (real CLI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from gt_secure.audit.config import load_audit_config
from gt_secure.audit.report import report_hash
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import DpSgdMechanism, Ledger, generate_key
from gt_secure.ledger.signing import save_keypair
from gt_secure.models.config import model_config
from gt_secure.models.loading import base_model_hash
from gt_secure.provider.adapter import fresh_lora
from gt_secure.update import UpdateVector
from tests.cli.conftest import cli
from tests.cli.test_exit_codes import one_line


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random TinyLM, a secret manifest, and a signed ledger with release rel-1."""
    root = tmp_path_factory.mktemp("auditor")
    torch.manual_seed(0)
    LlamaForCausalLM(model_config("tinylm")).save_pretrained(root / "model")
    assert cli("audit", "canaries", "--n", "8", "--out", str(root / "m.json")).code == 0
    key = generate_key()
    save_keypair(key, root / "keys", "org-a")
    ledger = Ledger.create(root / "l.jsonl", owner="org-a", budget={"example": 50.0},
                           signing_key=key)
    mech = DpSgdMechanism(sample_rate=0.25, noise_multiplier=1.5, steps=2, clip_norm=1.0)
    ledger.append_release(org_id="org-a", release_id="rel-1", mechanisms=[mech], delta=1e-5,
                          base_model_hash=base_model_hash("tinylm"),
                          update_vector_hash="c" * 64, data_fingerprint="d" * 64,
                          signing_key=key)
    (root / "audit.toml").write_text(
        '[target]\npath = "model"\ntokenizer = "byte"\n[data]\nmanifest = "m.json"\n'
        '[claim]\nledger = "l.jsonl"\nrelease_id = "rel-1"\ntrusted_keys = ["keys"]\n'
        '[audit]\nattacks = ["loss"]\norganization = "org-a"\nout = "out"\n')
    return root


def test_config_runs_the_audit_and_the_report_says_what_and_how(world: Path) -> None:
    run = cli("audit", "run", "--config", str(world / "audit.toml"))
    # 8 canaries: even the non-private positive control cannot exceed the claim, so the
    # target's PASS is empty: INCONCLUSIVE, exit 1 (never a clean 0)
    assert run.code == 1, run.err
    assert "positive control loss" in run.out and "NOT detected" in run.out
    assert "verdict: INCONCLUSIVE" in run.out
    report = json.loads((world / "out" / "audit.json").read_text())
    assert report["verdict"] == "INCONCLUSIVE" and report["results"][0]["verdict"] == "PASS"
    assert report["positive_control_results"][0]["detected"] is False
    assert report["controls"][0]["organization"] == "positive control"
    assert report["ledger_verification"].startswith("verified: OK")
    assert report["audited"].startswith("the released artifact: the saved model directory")
    assert report["results"][0]["ledger_release_ids"] == ["rel-1"]
    assert report["ledger_entries"][0]["release_id"] == "rel-1"
    assert report["settings"]["attack"] == ["loss"] and report["tool_version"]
    # 8 canaries cannot reject any epsilon at beta 0.05: the report must say the claim was
    # out of this audit's reach (its PASS is empty)
    assert report["strength"][0] == {"n_canaries": 8, "largest_detectable_epsilon": 0.0,
                                     "claim_within_reach": False}
    assert report["report_sha256"] == report_hash(report)
    page = (world / "out" / "audit.html").read_text()
    for text in ("What was audited", "How strong the test was", "INCONCLUSIVE means",
                 "this attack's PASS is inconclusive",
                 "Run settings", report["report_sha256"], "this audit cannot FAIL it",
                 "&quot;release_id&quot;: &quot;rel-1"):
        assert text in page, text


def test_flags_override_the_config(world: Path, tmp_path: Path) -> None:
    run = cli("audit", "run", "--config", str(world / "audit.toml"), "--claimed-epsilon", "7",
              "--delta", "1e-6", "--out", str(tmp_path / "o"))
    assert run.code == 1 and "verdict: INCONCLUSIVE" in run.out, run.err  # 8 canaries
    report = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert report["results"][0]["claimed_epsilon"] == 7 and report["results"][0]["delta"] == 1e-6
    assert report["ledger_verification"].startswith("no ledger claim")


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    cases = [
        ('[claim]\nepsilon = 1.0\n', "claim.delta must be set with claim.epsilon"),
        ('[claim]\nepsilon = -1.0\ndelta = 1e-5\n', "claim.epsilon must be valid"),
        ('[claim]\nrelease_id = "r"\n', "claim.ledger must be set with claim.release_id"),
        ('[claim]\n', "claim must be epsilon + delta, or ledger + release_id"),
        ('[claim]\nepsilon = 1.0\ndelta = 1e-5\n[audit]\nattacks = ["nope"]\n',
         "audit.attacks.0 must be valid"),
        ('[claim]\nepsilon = 1.0\ndelta = 1e-5\n[target]\npth = "x"\n', "target.path"),
        ('[claim\n', "--config must be valid UTF-8 TOML"),
        ('[data]\nmembers = "in.txt"\n[claim]\nepsilon = 1.0\ndelta = 1e-5\n',
         "data.nonmembers must be set with the other"),
        ('[data]\n[claim]\nepsilon = 1.0\ndelta = 1e-5\n',
         "data must be either manifest, or members + nonmembers"),
    ]
    for text, expected in cases:
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(InvalidFieldError) as err:
            load_audit_config(tmp_path / "c.toml")
        assert expected in str(err.value), (text, str(err.value))
    (tmp_path / "c.toml").write_text('[claim]\nepsilon = "high"\ndelta = 1e-5\n')
    run = cli("audit", "run", "--config", str(tmp_path / "c.toml"))  # the real CLI: one line
    assert run.code == 2 and "claim.epsilon must be valid" in one_line(run.err), run.err
    assert "'high'" in run.err


def test_the_claims_ledger_is_verified(world: Path, tmp_path: Path) -> None:
    base = ["audit", "run", "--target", str(world / "model"), "--manifest", str(world / "m.json"),
            "--tokenizer", "byte", "--attack", "loss", "--ledger"]
    run = cli(*base, str(world / "l.jsonl"), "--release-id", "rel-1", "--out", str(tmp_path))
    assert run.code == 2 and "--trusted-keys must be" in one_line(run.err)
    lines = (world / "l.jsonl").read_bytes().splitlines(keepends=True)
    tampered = tmp_path / "t.jsonl"
    tampered.write_bytes(lines[0] + lines[1].replace(b'"steps":2', b'"steps":1'))
    assert tampered.read_bytes() != (world / "l.jsonl").read_bytes()
    run = cli(*base, str(tampered), "--release-id", "rel-1", "--trusted-keys",
              str(world / "keys"), "--out", str(tmp_path / "o"))
    assert run.code == 1 and "failed verification" in run.err
    assert not (tmp_path / "o").exists()
    run = cli(*base, str(world / "l.jsonl"), "--release-id", "rel-1", "--unverified",
              "--out", str(tmp_path / "u"))
    assert run.code in (0, 1), run.err
    report = json.loads((tmp_path / "u" / "audit.json").read_text())
    assert report["ledger_verification"].startswith("UNVERIFIED")


def test_aggregated_tinylm_update_and_cached_hub_model_are_targets(
        world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = fresh_lora("tinylm")[2]
    flat = np.random.default_rng(0).normal(0, 0.02, layout.size).astype(np.float32)
    UpdateVector(layout, flat).save(tmp_path / "tinylm_update.safetensors")
    claim = ["--manifest", str(world / "m.json"), "--claimed-epsilon", "1", "--delta", "1e-5",
             "--attack", "loss"]
    run = cli("audit", "run", "--target", str(tmp_path / "tinylm_update.safetensors"), *claim,
              "--out", str(tmp_path / "agg"))
    assert run.code in (0, 1), run.err
    report = json.loads((tmp_path / "agg" / "audit.json").read_text())
    assert "the update vector" in report["audited"] and "shipped tinylm" in report["audited"]
    # a Hugging Face model id, read offline from the local cache (a hand-made cache entry)
    cache = tmp_path / "hub"
    snapshot = cache / "models--gt-test--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(world / "model", snapshot)
    (cache / "models--gt-test--tiny" / "refs").mkdir()
    (cache / "models--gt-test--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    run = cli("audit", "run", "--target", "gt-test/tiny", "--tokenizer", "byte", *claim,
              "--out", str(tmp_path / "hub-out"))
    assert run.code in (0, 1), run.err
    report = json.loads((tmp_path / "hub-out" / "audit.json").read_text())
    assert str(snapshot) in report["audited"]
    run = cli("audit", "run", "--target", "gt-test/absent", *claim, "--out", str(tmp_path / "x"))
    assert run.code == 2 and "--target must be an existing" in one_line(run.err)


def test_member_and_nonmember_text_files_instead_of_a_manifest(world: Path,
                                                               tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("alpha beta gamma\ndelta epsilon zeta\n")
    (tmp_path / "out.txt").write_text("eta theta iota\nkappa lambda mu\nnu xi omicron\n")
    (tmp_path / "a.toml").write_text(
        f'[target]\npath = "{world / "model"}"\ntokenizer = "byte"\n'
        '[data]\nmembers = "in.txt"\nnonmembers = "out.txt"\n'
        '[claim]\nepsilon = 2.0\ndelta = 1e-5\n[audit]\nattacks = ["loss"]\nout = "o"\n')
    run = cli("audit", "run", "--config", str(tmp_path / "a.toml"))
    assert run.code == 1 and "verdict: INCONCLUSIVE" in run.out, run.err  # 5 texts: no power
    report = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert report["results"][0]["is_member"] == [True, True, False, False, False]
    assert "2 member texts" in report["audited"] and "fair coin" in report["audited"]
    run = cli("audit", "run", "--target", str(world / "model"), "--members",
              str(tmp_path / "in.txt"), "--claimed-epsilon", "1", "--delta", "1e-5",
              "--out", str(tmp_path / "x"))
    assert run.code == 2 and "--nonmembers must be set with the other" in one_line(run.err)
