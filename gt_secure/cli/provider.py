"""``gt-secure provider ...``: build the translator; translate an update."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("provider", help="provider: shadow pairs, translator, translation")
    cmds = parser.add_subparsers(dest="provider_command", required=True)
    build = cmds.add_parser(
        "build-translator", help="generate shadow pairs and train the translator"
    )
    build.add_argument("--out", type=Path, required=True, help="directory for the translator")
    build.add_argument("--cache", type=Path, default=Path(".cache/shadow"),
                       help="shadow-pair cache directory (default: .cache/shadow)")
    build.add_argument("--subsets", type=int, default=None, help="K shadow subsets")
    build.add_argument("--steps", type=int, default=None, help="LoRA steps per subset")
    build.add_argument("--epochs", type=int, default=None,
                       help="translator training epochs (default: the config's)")
    build.set_defaults(func=_build)
    translate = cmds.add_parser(
        "translate", help="translate a TinyLM update vector into a PEFT adapter"
    )
    translate.add_argument("update", type=Path, help="TinyLM update vector (.safetensors)")
    translate.add_argument("--translator", type=Path, default=None,
                           help="translator directory (default: the shipped one)")
    translate.add_argument("--out", type=Path, required=True,
                           help="directory for the LLM update and its PEFT adapter")
    translate.set_defaults(func=_translate)


def _build(args: argparse.Namespace) -> int:
    from gt_secure.provider.build import build_translator
    from gt_secure.provider.shadow import ShadowConfig
    from gt_secure.provider.training import TrainConfig

    shadow = {k: v for k, v in (("subsets", args.subsets), ("steps", args.steps)) if v}
    train = {"epochs": args.epochs} if args.epochs else {}
    _, metrics = build_translator(
        ShadowConfig(**shadow), TrainConfig(**train), args.cache, args.out
    )
    print(json.dumps(metrics, indent=2))
    return 0


def _translate(args: argparse.Namespace) -> int:
    from gt_secure.provider.service import finish_round, load_translator
    from gt_secure.update import UpdateVector

    result = finish_round(
        UpdateVector.load(args.update), load_translator(args.translator), args.out
    )
    print(result.model_dump_json(indent=2))
    return 0
