"""``audit run`` runs its positive control; ``audit verify-report`` checks the report's hash
and page (real CLI)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from gt_secure.audit.report import report_hash
from gt_secure.models.config import model_config
from tests.cli.conftest import cli
from tests.cli.test_exit_codes import one_line


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit of an untrained TinyLM with 48 canaries at claim 1: its positive control (a
    non-private copy trained on the 20 members) exceeds the claim, so the PASS has weight."""
    root = tmp_path_factory.mktemp("control")
    torch.manual_seed(0)
    LlamaForCausalLM(model_config("tinylm")).save_pretrained(root / "model")
    assert cli("audit", "canaries", "--n", "48", "--out", str(root / "m.json")).code == 0
    run = cli("audit", "run", "--target", str(root / "model"), "--tokenizer", "byte",
              "--manifest", str(root / "m.json"), "--claimed-epsilon", "1", "--delta", "1e-5",
              "--attack", "loss", "--out", str(root / "out"))
    (root / "console.txt").write_text(f"{run.code}\n{run.out}\n{run.err}")
    return root


def test_positive_control_detects_so_the_pass_is_clean(audited: Path) -> None:
    code, out = (audited / "console.txt").read_text().split("\n", 1)
    assert code == "0", out
    assert re.search(r"positive control loss: AUC [\d.]+, eps_lb [\d.]+ -> detected", out), out
    assert "verdict: PASS" in out
    report = json.loads((audited / "out" / "audit.json").read_text())
    assert report["verdict"] == "PASS"
    control = report["positive_control_results"][0]
    assert control["detected"] is True and control["eps_lb"] > 1.0 > report["results"][0][
        "empirical_epsilon"]["epsilon"]
    assert "non-private control" in report["positive_control"]
    assert report["settings"]["control_epochs"] == 30
    page = (audited / "out" / "audit.html").read_text()
    assert "id='positive-control'" in page and "<td class='PASS'>yes</td>" in page


@pytest.mark.slow
def test_weak_control_makes_the_run_inconclusive(audited: Path, tmp_path: Path) -> None:
    """The same 48 canaries, a control trained 1 epoch: it cannot exceed the claim, so the
    target's PASS is empty (the default suite's 8-canary case is in test_audit_config)."""
    run = cli("audit", "run", "--target", str(audited / "model"), "--tokenizer", "byte",
              "--manifest", str(audited / "m.json"), "--claimed-epsilon", "1", "--delta",
              "1e-5", "--attack", "loss", "--control-epochs", "1", "--out", str(tmp_path / "o"))
    assert run.code == 1 and "NOT detected" in run.out and "verdict: INCONCLUSIVE" in run.out
    assert json.loads((tmp_path / "o" / "audit.json").read_text())["verdict"] == "INCONCLUSIVE"


def test_control_epochs_must_train(audited: Path, tmp_path: Path) -> None:
    run = cli("audit", "run", "--target", str(audited / "model"), "--tokenizer", "byte",
              "--manifest", str(audited / "m.json"), "--claimed-epsilon", "1", "--delta",
              "1e-5", "--control-epochs", "0", "--out", str(tmp_path / "z"))
    assert run.code == 2 and "--control-epochs must be >= 1" in one_line(run.err)


def _copy(audited: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(audited / "out", tmp_path / name))


def test_verify_report_checks_hash_and_page(audited: Path, tmp_path: Path) -> None:
    report = json.loads((audited / "out" / "audit.json").read_text())
    digest = report["report_sha256"]
    page = (audited / "out" / "audit.html").read_text()
    assert f"<code id='report-sha256'>{digest}</code>" in page  # the page shows its hash
    run = cli("audit", "verify-report", str(audited / "out"), "--sha256", digest)
    assert run.code == 0 and digest in run.out, run.out + run.err
    # a reader-visible edit of the page: the verdict turned around
    edited = _copy(audited, tmp_path, "html")
    (edited / "audit.html").write_text(page.replace("<span class='PASS'>PASS</span>",
                                                    "<span class='PASS'>PASS!</span>"))
    run = cli("audit", "verify-report", str(edited))
    assert run.code == 1 and "audit.html: differs from the page" in run.out, run.out
    # the JSON edited and its hash recomputed: the verdict no longer follows from the results
    forged = _copy(audited, tmp_path, "json")
    report["results"][0]["verdict"] = "FAIL"
    report["report_sha256"] = report_hash(report)
    (forged / "audit.json").write_text(json.dumps(report, indent=1))
    run = cli("audit", "verify-report", str(forged), "--sha256", digest)
    assert run.code == 1, run.out
    for problem in ("verdict, verdict_means do not follow from its results", "is not the expected",
                    "embedded report differs"):
        assert problem in run.out, (problem, run.out)
    run = cli("audit", "verify-report", str(tmp_path / "nope"))
    assert run.code == 2 and "no audit.json" in one_line(run.err)


class _Page(HTMLParser):
    """Visible text and the embedded report of a DOM as the browser built it."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.embedded = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._in = dict(attrs).get("id") or tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is None:
            self.text.append(data)
        elif self._in == "gt-secure-audit-report":
            self.embedded += data


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed")
def test_browser_shows_the_hash_and_the_control(audited: Path) -> None:
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", (audited / "out" / "audit.html").resolve().as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    page = _Page()
    page.feed(dom)
    visible = " ".join(" ".join(page.text).split())
    report = json.loads((audited / "out" / "audit.json").read_text())
    assert json.loads(page.embedded) == report  # the embedded JSON, intact in the DOM
    assert f"report SHA-256 {report['report_sha256']}" in visible
    assert "Positive control: the same attacks, canaries and claim on a non-private" in visible
    assert re.search(r"loss \d\.\d{3} \d\.\d{3} 1 yes", visible), visible
    assert "overall verdict PASS" in visible
