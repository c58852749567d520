"""Run the real ``gt-secure`` CLI in a subprocess; the ledger fixtures of tests/ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ledger.conftest import populated, world  # noqa: F401 - fixtures reused here

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    """Exit code, output and wall time of one CLI run."""

    code: int
    out: str
    err: str
    seconds: float


def cli(*args: str, timeout: float = 300, python: str | None = None) -> Run:
    """``gt-secure ARGS`` (``python -m gt_secure.cli.main``) from this checkout; with
    ``python`` code, run that code instead (it calls ``main`` itself)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    command = ([sys.executable, "-c", python, *args] if python is not None
               else [sys.executable, "-m", "gt_secure.cli.main", *args])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)


# Runs main(argv) and prints which heavy modules it imported, as the last stdout line.
IMPORTS = ("import sys\nfrom gt_secure.cli.main import main\ncode = main(sys.argv[1:])\n"
           "heavy = sorted(m for m in ('torch', 'flwr', 'transformers', 'opacus') "
           "if m in sys.modules)\nprint('HEAVY=' + ','.join(heavy))\nsys.exit(code)\n")
