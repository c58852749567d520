"""``gt-secure audit canaries`` and ``gt-secure audit run`` end to end on saved tiny models."""

from __future__ import annotations

import json

from gt_secure.cli.main import main


def test_cli_canaries_then_run(tmp_path, random_model, memorised, capsys):
    manifest_path = tmp_path / "manifest.json"
    assert main(["audit", "canaries", "--n", "16", "--canary-seed", "1", "--split-seed", "1",
                 "--out", str(manifest_path)]) == 0
    model, manifest = memorised
    assert json.loads(manifest_path.read_text())["canaries"] == manifest.canaries
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps({"release_id": "rel-7", "epsilon": 0.1}) + "\n")
    # 16 canaries: the memorised model FAILs a 0.1 claim; against a random model the positive
    # control cannot exceed a 1.0 claim either, so the run is INCONCLUSIVE (exit 1), never PASS.
    for name, target, claimed, verdict in (("random", random_model, "1.0", "INCONCLUSIVE"),
                                           ("memorised", model, "0.1", "FAIL")):
        target.save_pretrained(tmp_path / name)
        out = tmp_path / f"out-{name}"
        rc = main(["audit", "run", "--target", str(tmp_path / name), "--manifest",
                   str(manifest_path), "--tokenizer", "byte", "--claimed-epsilon", claimed,
                   "--delta", "1e-5", "--attack", "loss", "--organization", "org-a",
                   "--release-id", "rel-7", "--ledger", str(ledger), "--out", str(out)])
        report = json.loads((out / "audit.json").read_text())
        assert (rc, report["verdict"]) == (1, verdict)
        assert report["results"][0]["ledger_release_ids"] == ["rel-7"]
        assert "rel-7" in (out / "audit.html").read_text()
    assert "eps_lb" in capsys.readouterr().out
