"""Flower's deprecation notice for ``run_simulation`` (which flwr 1.42 still needs: its only
replacement is the ``flwr run`` CLI, not an in-process API) never reaches CLI output."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import ROOT

# What ``run_simulation`` logs first, through Flower's own logger, before any simulation starts.
NOTICE = ("import sys\nfrom gt_secure.cli.main import quiet_third_party\n"
          "if sys.argv[1] == 'cli':\n    quiet_third_party()\n"
          "from flwr.common.logger import warn_deprecated_feature\n"
          "warn_deprecated_feature('The `run_simulation` function is deprecated')\n"
          "print('after')\n")


def _output(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", NOTICE, mode], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    return done.stdout + done.stderr


def test_run_simulation_notice_is_dropped_from_cli_output() -> None:
    assert "DEPRECATED FEATURE" in _output("raw")  # control: Flower does print it
    quiet = _output("cli")
    assert "DEPRECATED" not in quiet and "deprecated" not in quiet and "after" in quiet
