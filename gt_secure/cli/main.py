"""Entry point of the ``gt-secure`` command.

Each role module in :mod:`gt_secure.cli` exposes ``register(subparsers)``; this file only
collects them, so adding a command never touches another role's code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMAND_MODULES = ("demo", "pretrain", "provider", "ledger", "audit", "protocol", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gt-secure", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gt_secure.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gt_secure.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _set_threads() -> None:
    """One intra-op thread by default: these models are small and a 2-core machine shared with
    Flower actors loses far more to OpenMP spin-waiting than it gains (GT_SECURE_THREADS=n)."""
    import torch

    torch.set_num_threads(int(os.environ.get("GT_SECURE_THREADS", "1")))


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    _set_threads()
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
