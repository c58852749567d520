"""CLI smoke tests through ``gt_secure.cli.main.main``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from gt_secure.cli.main import main
from tests.ledger.conftest import World


def test_verify_ok_and_tampered(populated: World, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ledger", "verify", "--ledger", str(populated.ledger.path), "--trusted-keys",
            str(populated.key_dir)]
    assert main(args) == 0
    assert "OK: 5 entries verified" in capsys.readouterr().out
    data = bytearray(populated.ledger.read_bytes())
    data[data.index(b"\n") + 40] ^= 0x01  # inside line 2
    populated.ledger.path.write_bytes(bytes(data))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL line 2 release_id='r1-org-a'" in out and "FAILED" in out


def test_verify_with_explicit_key_files(populated: World) -> None:
    files = [str(p) for p in sorted(populated.key_dir.glob("*.pub.pem"))]
    assert main(["ledger", "verify", "--ledger", str(populated.ledger.path),
                 "--trusted-keys", *files]) == 0
    assert main(["ledger", "verify", "--ledger", str(populated.ledger.path),
                 "--trusted-keys", files[0]]) == 1  # org-b and provider keys not trusted


def test_show_report_export(populated: World, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    ledger = str(populated.ledger.path)
    assert main(["ledger", "show", "--ledger", ledger, "--unverified"]) == 0
    shown = capsys.readouterr().out
    assert "org-a" in shown and "organization" in shown
    out = tmp_path / "report.html"
    assert main(["ledger", "report", "--ledger", ledger, "--out", str(out),
                 "--trusted-keys", str(populated.key_dir)]) == 0
    page = out.read_text()
    assert "data:image/png;base64," in page and "OK: 5 entries verified" in page
    assert "r1-org-a, r2-org-a" in page and "adapter-1" in page
    capsys.readouterr()
    assert main(["ledger", "export", "--ledger", ledger, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["release_id"] for r in rows] == ["r1-org-a", "r1-org-a", "r2-org-a", "agg-1",
                                               "adapter-1"]
    assert json.loads(rows[3]["parents"]) == ["r1-org-a", "r2-org-a"]
    target = tmp_path / "export.json"
    assert main(["ledger", "export", "--ledger", ledger, "--format", "json", "--out",
                 str(target)]) == 0
    assert json.loads(target.read_text())[0]["mechanisms"][0]["kind"] == "dp_sgd"


def test_torn_tail_is_warned_not_fatal_for_views(populated: World,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with open(populated.ledger.path, "ab") as handle:
        handle.write(b'{"acc')
    assert main(["ledger", "export", "--ledger", str(populated.ledger.path)]) == 0
    captured = capsys.readouterr()
    assert "line 7 is torn" in captured.err and len(json.loads(captured.out)) == 5
    assert main(["ledger", "verify", "--ledger", str(populated.ledger.path), "--trusted-keys",
                 str(populated.key_dir)]) == 1
    assert "FAIL line 7: [uncommitted]" in capsys.readouterr().out


def test_keygen_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "keygen", "--owner", "org-z", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "org-z.pub.pem").exists()
    assert main(["ledger", "keygen", "--owner", "org-z", "--out-dir", str(tmp_path)]) == 2
    assert main(["ledger", "verify", "--ledger", str(tmp_path / "missing.jsonl"),
                 "--trusted-keys", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
