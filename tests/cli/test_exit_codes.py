"""Exit codes and one-line errors of the real CLI: 0 pass, 1 check failed, 2 usage or input
error (one line naming the fix, no traceback), 3 internal error (traceback only with --debug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gt_secure import __version__
from tests.cli.conftest import IMPORTS, cli


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_version() -> None:
    run = cli("--version")
    assert run.code == 0 and run.out.strip() == f"gt-secure {__version__}"


@pytest.mark.parametrize("args, names", [
    (["no-such-command"], "invalid choice: 'no-such-command'"),
    (["demo", "--rounds", "two"], "--rounds"),
    (["ledger", "show"], "--ledger"),
    (["audit", "run", "--out", "x", "--beta"], "--beta"),
])
def test_usage_errors_are_one_line(args: list[str], names: str) -> None:
    run = cli(*args)
    assert run.code == 2
    line = one_line(run.err)
    assert names in line and "--help" in line


def test_demo_protocol_typo_fails_fast_without_heavy_imports() -> None:
    run = cli("demo", "--protocol", "dp-sgd-secag", "--out", "/tmp/never-written")
    assert run.code == 2
    line = one_line(run.err)
    assert "dp-sgd-secag" in line and "'dp-sgd-secagg'" in line
    assert run.seconds < 3.0, run.seconds  # ~0.5 s here; generous for a loaded CI machine
    imports = cli("demo", "--protocol", "dp-sgd-secag", python=IMPORTS)
    assert imports.code == 2 and imports.out.strip().splitlines()[-1] == "HEAVY="


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text('name = "mine"\naggregation = \n')
    for args in (["demo", "--protocol", str(spec)], ["protocol", "run", str(spec)]):
        run = cli(*args)
        assert run.code == 2
        line = one_line(run.err)
        assert "toml" in line and str(spec) in line


def test_bad_numbers_and_missing_spec(tmp_path: Path) -> None:
    run = cli("demo", "--local-steps", "0")
    assert run.code == 2 and "--local-steps must be >= 1" in one_line(run.err)
    run = cli("protocol", "validate", str(tmp_path / "absent.toml"))
    assert run.code == 2 and "absent.toml" in one_line(run.err)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n')
    assert cli("protocol", "validate", str(bad)).code == 1  # a failed check, not a usage error


PLANTED = ("import sys\nimport gt_secure.cli.protocol as p\n"
           "def boom(args):\n    raise RuntimeError('planted failure')\n"
           "p._list = boom\nfrom gt_secure.cli.main import main\nsys.exit(main(sys.argv[1:]))\n")


def test_internal_error_is_exit_3_traceback_only_with_debug() -> None:
    run = cli("protocol", "list", python=PLANTED)
    assert run.code == 3
    line = one_line(run.err)
    assert "internal error: RuntimeError: planted failure" in line and "--debug" in line
    debug = cli("--debug", "protocol", "list", python=PLANTED)
    assert debug.code != 0 and "Traceback" in debug.err and "planted failure" in debug.err
