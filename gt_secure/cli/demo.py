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


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the end-to-end demo (3 organizations, ~10 min)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--protocol", default="dp-sgd-secagg", help="protocol name or TOML path")
    parser.add_argument("--rounds", type=int, default=0, help="0: the protocol's rounds")
    parser.add_argument("--local-steps", type=int, default=32, help="DP-SGD steps per round")
    parser.add_argument("--num-texts", type=int, default=512,
                        help="training texts per organization and round")
    parser.set_defaults(func=_run)


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
                               local_steps=args.local_steps, num_texts=args.num_texts)
    console.print(
        f"federation finished in {time.time() - start:.0f}s: {len(summary['rounds'])} round(s)"
    )
    result = summarise(summary, out, console)
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    console.print(f"outputs in {out} ({time.time() - start:.0f}s in all)")
    return 0 if result["ledgers_ok"] else 1
