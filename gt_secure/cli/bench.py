"""``gt-secure bench ...``: benchmarks that print a table (scripts in bench/ call these)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmarks")
    cmds = parser.add_subparsers(dest="bench_command", required=True)
    utility = cmds.add_parser("utility", help="PGR of translator vs baselines")
    utility.add_argument("--out", type=Path, default=Path("runs/utility"),
                         help="output directory (default: runs/utility)")
    utility.add_argument("--cache", type=Path, default=Path(".cache/shadow"),
                         help="shadow-pair cache directory (default: .cache/shadow)")
    utility.add_argument("--quick", action="store_true", help="1 organization, 1 seed")
    utility.add_argument("--subsets", type=int, default=None,
                         help="K shadow subsets (default: the config's)")
    utility.add_argument("--seeds", type=int, default=3, help="seeds per organization "
                         "(default: 3)")
    utility.set_defaults(func=_utility)


def _utility(args: argparse.Namespace) -> int:
    from gt_secure.provider.benchmark import run_utility_benchmark
    from gt_secure.provider.shadow import ShadowConfig
    from gt_secure.provider.training import TrainConfig
    from gt_secure.provider.utility import UtilityConfig

    shadow = ShadowConfig(**({"subsets": args.subsets} if args.subsets else {}))
    utility = (
        UtilityConfig(orgs=("hospital",), seeds=(0,))
        if args.quick
        else UtilityConfig(seeds=tuple(range(args.seeds)))
    )
    run_utility_benchmark(shadow, TrainConfig(), utility, args.cache, args.out)
    return 0
