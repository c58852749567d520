"""The compliance officer's ledger commands through the real CLI (subprocess)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gt_secure.ledger import Ledger, generate_key, load_trusted_keys, save_keypair
from tests.cli.conftest import IMPORTS, cli
from tests.cli.test_exit_codes import one_line
from tests.ledger.conftest import BUDGET, DPSGD, World, release


def tamper_line_2(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[data.index(b"\n") + 40] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("verb", ["show", "report", "export", "verify"])
def test_missing_or_empty_ledger_is_exit_2_naming_the_path(verb: str, tmp_path: Path,
                                                           populated: World) -> None:
    keys = [] if verb == "export" else ["--trusted-keys", str(populated.key_dir)]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for path in (tmp_path / "absent.jsonl", empty):
        run = cli("ledger", verb, "--ledger", str(path), *keys)
        assert run.code == 2 and run.out == ""
        assert str(path) in one_line(run.err)


def test_bad_trusted_keys_are_input_errors(populated: World, tmp_path: Path) -> None:
    garbage = tmp_path / "org-a.pub.pem"
    garbage.write_text("not a key")
    for keys, named in ((garbage, "--trusted-keys must be"), (tmp_path / "absent", "absent")):
        run = cli("ledger", "verify", "--ledger", str(populated.ledger.path), "--trusted-keys",
                  str(keys))
        assert run.code == 2 and named in one_line(run.err)


def test_show_needs_keys_or_unverified_stamp(populated: World) -> None:
    ledger = str(populated.ledger.path)
    run = cli("ledger", "show", "--ledger", ledger)
    assert run.code == 2
    assert "--trusted-keys" in one_line(run.err) and "--unverified" in run.err
    run = cli("ledger", "show", "--ledger", ledger, "--unverified")
    assert run.code == 0 and "UNVERIFIED" in run.out
    data = json.loads(cli("ledger", "show", "--ledger", ledger, "--unverified", "--format",
                          "json").out)
    assert data["unverified"] is True and data["ledgers"][0]["verified"] is False


def test_verify_and_show_json(populated: World) -> None:
    ledger = populated.ledger.path
    args = ["--ledger", str(ledger), "--trusted-keys", str(populated.key_dir), "--format", "json"]
    verified = json.loads(cli("ledger", "verify", *args).out)
    assert verified["ok"] is True and verified["ledgers"][0]["issues"] == []
    shown = json.loads(cli("ledger", "show", *args).out)
    entry = shown["ledgers"][0]["entries"][0]
    assert entry["signer_name"].startswith("org-a (") and entry["failed"] is False
    # the plain-language statement quotes the recorded guarantee
    assert entry["statement"].startswith(
        f"each training record of org-a is protected at ε={entry['epsilon_total']:.3g}, δ=1e-05")
    assert "also protected by its organization-level entry" in entry["statement"]
    assert "post-processing" in shown["ledgers"][0]["entries"][3]["statement"]
    tamper_line_2(ledger)
    run = cli("ledger", "verify", *args)
    failed = json.loads(run.out)
    assert run.code == 1 and failed["ok"] is False
    assert any("line 2" in issue for issue in failed["ledgers"][0]["issues"])
    run = cli("ledger", "show", *args)
    assert run.code == 1
    failed_lines = [e["line"] for e in json.loads(run.out)["ledgers"][0]["entries"] if e["failed"]]
    assert failed_lines == [2, 3]  # line 2 altered; line 3's prev_hash no longer matches it


def test_report_red_banner_marks_failing_rows(populated: World, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    args = ["ledger", "report", "--ledger", str(populated.ledger.path), "--trusted-keys",
            str(populated.key_dir), "--out", str(out)]
    assert cli(*args).code == 0
    page = out.read_text()
    assert 'class="banner ok"' in page and "VERIFICATION FAILED" not in page
    assert 'class="failed"' not in page and "UNVERIFIED" not in page
    tamper_line_2(populated.ledger.path)
    run = cli(*args)
    assert run.code == 1 and "VERIFICATION FAILED" in run.out
    page = out.read_text()
    assert 'class="banner fail"' in page and "line 2 release_id=&#x27;r1-org-a&#x27;" in page
    assert page.count('<tr class="failed">') == 2  # the altered line and the next (chain)
    assert cli("ledger", "report", "--ledger", str(populated.ledger.path), "--unverified",
               "--out", str(out)).code == 0
    page = out.read_text()
    assert '<div class="stamp">UNVERIFIED</div>' in page and "<title>UNVERIFIED" in page


def test_rollup_over_ledgers_with_filters(populated: World, tmp_path: Path) -> None:
    populated.keys["org-c"] = generate_key()
    save_keypair(populated.keys["org-c"], populated.key_dir, "org-c")
    second = World(populated.keys, populated.key_dir, load_trusted_keys([populated.key_dir]),
                   Ledger.create(tmp_path / "org-c.jsonl", owner="org-c", budget=BUDGET,
                                 signing_key=populated.keys["org-c"]))
    release(second, "org-c", "r1-org-c", [DPSGD])
    args = ["ledger", "show", "--ledger", str(populated.ledger.path), str(second.ledger.path),
            "--trusted-keys", str(populated.key_dir), "--format", "json"]
    run = cli(*args)
    assert run.code == 0
    rows = {(r["org_id"], r["unit"]): r for r in json.loads(run.out)["rollup"]}
    assert set(rows) == {("org-a", "example"), ("org-a", "organization"),
                         ("org-c", "example"), ("*", "example"), ("*", "organization")}
    total = rows[("*", "example")]
    assert total["releases"] == 2
    assert total["epsilon_total"] == pytest.approx(
        rows[("org-a", "example")]["epsilon_total"] + rows[("org-c", "example")]["epsilon_total"])
    quick = [*args[:-4], "--unverified", "--format", "json"]  # filters: no need to re-verify
    only = {(r["org_id"], r["unit"]) for r in json.loads(cli(*quick, "--unit", "example").out)
            ["rollup"]}
    assert only == {("org-a", "example"), ("org-c", "example"), ("*", "example")}
    assert json.loads(cli(*quick, "--until", "2000-01-01").out)["rollup"] == []
    # a window holding only org-c's second release: its increase of the cumulative epsilon
    first = release(second, "org-c", "r2-org-c", [DPSGD])
    later = release(second, "org-c", "r3-org-c", [DPSGD])
    rows = json.loads(cli(*quick, "--since", later.timestamp).out)["rollup"]
    assert [(r["org_id"], r["releases"]) for r in rows] == [("org-c", 1), ("*", 1)]
    assert rows[0]["epsilon_total"] == pytest.approx(later.epsilon_total)
    assert rows[0]["spent_in_window"] == pytest.approx(later.epsilon_total - first.epsilon_total)
    run = cli(*quick, "--since", "yesterday")
    assert run.code == 2 and "--since" in one_line(run.err)


def test_ledger_commands_do_not_import_torch(populated: World) -> None:
    for verb in ("verify", "show"):
        run = cli("ledger", verb, "--ledger", str(populated.ledger.path), "--trusted-keys",
                  str(populated.key_dir), python=IMPORTS)
        assert run.code == 0, run.err
        assert run.out.strip().splitlines()[-1] == "HEAVY="


def test_keygen_keeps_the_private_key_apart(tmp_path: Path) -> None:
    run = cli("ledger", "keygen", "--owner", "org-z", "--out-dir", str(tmp_path))
    assert run.code == 0, run.err
    private = tmp_path / "private" / "org-z.key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["org-z.pub.pem", "private"]
    trusted = load_trusted_keys([tmp_path])  # the shareable folder holds only the public key
    assert [t.owner for t in trusted.values()] == ["org-z"]
    again = cli("ledger", "keygen", "--owner", "org-z", "--out-dir", str(tmp_path))
    assert again.code == 2 and "never overwritten" in one_line(again.err)
