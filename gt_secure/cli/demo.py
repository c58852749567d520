"""``gt-secure demo``: the main job on the embedded default, end to end.

Three organizations (hospital, bank, law firm) on Flower's simulation engine run the chosen
protocol (default dp-sgd-secagg: example-level DP-SGD at epsilon 1 + SecAgg+, no organization-
level noise; ``--protocol dp-secagg`` adds it, at a measured utility cost), each on 512 of its
training texts for 32 DP-SGD steps (``docs/benchmarks.md``, "Demo utility"); the provider
translates the mean TinyLM update with the shipped Grad-Transformer and exports a PEFT adapter;
every ledger is verified and reported; a short membership-inference audit runs on the released
models; the summary says what the protocol protects and what the update bought.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from gt_secure.protocols import DEFAULT_PROTOCOL


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="run the end-to-end demo: 3 organizations, one provider (~1.5-2.5 min)",
        description="Three organizations fine-tune a TinyLM under DP on Flower's simulation "
        "engine, the provider aggregates and translates the mean update into an LLM adapter, "
        "every ledger is verified and a short membership-inference audit runs. Measured with "
        "the defaults on a 2-core machine: 86-98 s (load 5-9; a simulation SuperLink the "
        "command starts and stops), up to about 2.5 minutes when the machine is busier.")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="output directory (default: runs/demo)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                        help=f"protocol name (gt-secure protocol list) or path to a protocol "
                        f"TOML (default: {DEFAULT_PROTOCOL})")
    parser.add_argument("--rounds", type=int, default=0,
                        help="federated rounds; 0 (default): the protocol's rounds")
    parser.add_argument("--local-steps", type=int, default=32,
                        help="DP-SGD steps per organization and round (default: 32)")
    parser.add_argument("--num-texts", type=int, default=512,
                        help="training texts per organization and round (default: 512)")
    parser.set_defaults(func=_run, check=check_args)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad input before anything heavy is imported (one line, exit 2)."""
    from gt_secure.errors import InvalidFieldError
    from gt_secure.protocols import load_protocol

    for name in ("rounds", "local_steps", "num_texts"):
        value = getattr(args, name)
        low = 0 if name == "rounds" else 1
        if value < low:
            raise InvalidFieldError(f"--{name.replace('_', '-')}", value, f">= {low}")
    load_protocol(args.protocol)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from gt_secure.demo.report import summarise
    from gt_secure.demo.simulation import run_protocol

    console = Console()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["GT_SECURE_STATE_DIR"] = str(out / "organizations")
    start = time.time()
    console.rule(f"gt-secure demo: protocol {args.protocol}")
    with console.status("organizations train under DP, the provider aggregates and translates"):
        summary = run_protocol(args.protocol, out, rounds=args.rounds,
                               local_steps=args.local_steps, num_texts=args.num_texts,
                               on_progress=lambda m: console.print(m, markup=False,
                                                                   highlight=False))
    console.print(
        f"federation finished in {time.time() - start:.0f}s: {len(summary['rounds'])} round(s)"
    )
    result = summarise(summary, out, console)
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    console.print(f"outputs in {out} ({time.time() - start:.0f}s in all)")
    return 0 if result["ledgers_ok"] else 1
