"""Utility benchmark: the Grad-Transformer vs every baseline, PGR per organization (issue #10).

    python bench/utility.py [--quick] [--out runs/utility] [--translator-out DIR]

Shadow set in the paper's regime (K=300 public subsets x 1,024 records, 3 late checkpoints,
multi-organization groups, DP-SGD TinyLM copies at epsilon 8 and 1), translators fitted per
epsilon, organizations whose style the public pool lacks, 3 seeds. Runs on CUDA when present
(about minutes on one H100/H200); ``--quick`` is a small CPU smoke run. Prints the tables and the
targets (PASS/FAIL), writes ``<out>/utility.json`` (and docs/results/utility.json unless quick).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

from gt_secure.provider.benchmark import run_utility_benchmark
from gt_secure.provider.shadow import ShadowConfig
from gt_secure.provider.training import TrainConfig
from gt_secure.provider.utility import UtilityConfig

QUICK = (
    ShadowConfig(subsets=20, subset_size=64, steps=4, checkpoints=(2, 4), groups=2,
                 epsilons=(8.0,), max_length=48),
    TrainConfig(epochs=3, patience=2),
    UtilityConfig(seeds=(0,), train_size=64, eval_size=8, public_size=64,
                  mixture_orgs=("clinic",)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CPU smoke run")
    parser.add_argument("--out", type=Path, default=Path("runs/utility"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/shadow"))
    parser.add_argument("--translator-out", type=Path, default=None,
                        help="also save the epsilon=inf translator here")
    parser.add_argument("--subsets", type=int, default=None, help="K (default 300)")
    parser.add_argument("--groups", type=int, default=None, help="multi-org groups (default 100)")
    parser.add_argument("--epsilons", type=float, nargs="+", default=None,
                        help="epsilons to evaluate (default: inf 8 1)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    shadow, train, utility = QUICK if args.quick else (ShadowConfig(), TrainConfig(),
                                                       UtilityConfig())
    if args.subsets:
        shadow = shadow.model_copy(update={"subsets": args.subsets})
    eps = (math.inf,) if args.quick else (math.inf, 8.0, 1.0)
    if args.epsilons:
        eps = tuple(args.epsilons)
        shadow = shadow.model_copy(update={"epsilons": tuple(e for e in eps if e != math.inf)})
    if args.groups is not None:
        shadow = shadow.model_copy(update={"groups": args.groups})
    result = run_utility_benchmark(shadow, train, utility, args.cache, args.out,
                                   epsilons=eps, translator_dir=args.translator_out)
    if not args.quick:
        docs = Path(__file__).resolve().parent.parent / "docs" / "results"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out / "utility.json", docs / "utility.json")
    print(json.dumps({"seconds": result["seconds"]}))


if __name__ == "__main__":
    main()
