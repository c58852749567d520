"""Round time of the Flower app per protocol: the real organization and provider steps, 3
organizations on the simulation engine, measured side by side in one run.

``dp-plain`` is the dp-secagg spec with plain aggregation (written to a temporary file), so
``x dp-plain`` isolates the cost of SecAgg+ or CKKS from the cost of DP-SGD. Round = request ->
every organization trains and sends -> the mean is known (wall time, organizations 2 at a time
on 2 cores); provider = translate + export the adapter.

    python -m bench.app_rounds                  # 3 rounds per protocol, writes docs
    python -m bench.app_rounds --rounds 2 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.docs import table_records, write_results, write_section
from gt_secure.protocols import load_protocol

HEADING = "## Flower app rounds"
PROTOCOLS = ("plain", "dp-plain", "dp-secagg", "dp-ckks")
COLUMNS = ("protocol", "aggregation", "rounds", "round 1 s", "later rounds s (mean)",
           "x dp-plain", "provider s", "accepted", "mean error bound")


def dp_plain_spec(directory: Path) -> Path:
    """dp-secagg's DP settings with plain aggregation, as a spec file."""
    spec = load_protocol("dp-secagg").model_dump(mode="json", exclude={"secagg", "ckks"})
    spec |= {"name": "dp-plain", "aggregation": "plain", "threat_model": "plain.md",
             "description": "dp-secagg's DP, plain aggregation (benchmark reference only)."}
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items()
             if v is not None and not isinstance(v, dict)]
    for section, body in spec["dp"].items():
        if body is not None:
            lines += [f"[dp.{section}]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in body.items() if v is not None]
    path = directory / "dp-plain.toml"
    path.write_text("\n".join(lines) + "\n")
    load_protocol(path)  # validated like any spec
    return path


def run_one(protocol: str, rounds: int, local_steps: int, work: Path) -> dict[str, Any]:
    """One federation (64 texts per organization); its summary.json."""
    from gt_secure.demo.simulation import run_protocol

    name = Path(protocol).stem
    os.environ["GT_SECURE_STATE_DIR"] = str(work / name / "orgs")
    return run_protocol(protocol, work / name, rounds, local_steps, num_texts=64)


def later_rounds(summary: dict[str, Any]) -> float:
    """Mean wall seconds of rounds 2..n (round 1 also pays the ClientApps' imports)."""
    later = [r["seconds"]["round"] for r in summary["rounds"][1:]]
    return sum(later) / len(later)


def row(name: str, summary: dict[str, Any], reference: float) -> list[str]:
    rounds = summary["rounds"]
    steady = later_rounds(summary)
    provider_s = sum(r["seconds"]["provider"] for r in rounds) / len(rounds)
    accepted = "/".join(str(len(r["accepted"])) for r in rounds)
    bound = max(r["mean_error_bound"] for r in rounds)
    return [name, rounds[0]["aggregation"], str(len(rounds)),
            f"{rounds[0]['seconds']['round']:.1f}", f"{steady:.1f}",
            f"{steady / reference:.2f}x", f"{provider_s:.1f}", accepted,
            f"{bound:.1e}" if bound else "0 (exact)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help=">= 2")
    parser.add_argument("--local-steps", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error(f"--rounds must be >= 2, got --rounds={args.rounds}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    summaries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        specs = {"dp-plain": str(dp_plain_spec(work))}
        for name in PROTOCOLS:
            started = time.monotonic()
            summaries[name] = run_one(specs.get(name, name), args.rounds, args.local_steps, work)
            print(f"{name}: {time.monotonic() - started:.0f} s in all")
    reference = later_rounds(summaries["dp-plain"])
    rows = [row(name, summaries[name], reference) for name in PROTOCOLS]
    table = Table(title="Flower app: seconds per round, 3 organizations")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for cells in rows:
        table.add_row(*cells)
    Console(width=160).print(table)
    if args.no_write:
        return
    command = f"python -m bench.app_rounds --rounds {args.rounds} --local-steps {args.local_steps}"
    lines = [HEADING, "",
             f"- Command: `{command}`, {time.strftime('%Y-%m-%d')}, {platform.machine()} with "
             f"{os.cpu_count()} CPU cores shared with other jobs; wall time.",
             "- 3 organizations (hospital, bank, law), Flower simulation engine (2 at a time), "
             "real steps: TinyLM LoRA fine-tune (DP-SGD where the spec has it), vector noise, "
             "signed ledger entries; provider translates and exports the adapter each round.",
             "- Round 1 also pays each ClientApp's imports and model loading; the ratio uses "
             "rounds 2..n.",
             "- `dp-plain` = dp-secagg's DP with plain aggregation: `x dp-plain` is the cost of "
             "the secure aggregation alone. Per-operation costs at other sizes and organization "
             "counts: `## Aggregation`.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    write_section("\n".join(lines) + "\n")
    write_results("app_rounds", {
        "command": command, "rounds": args.rounds, "local_steps": args.local_steps,
        "later_rounds_s": {name: later_rounds(summaries[name]) for name in PROTOCOLS},
        "ratio_vs_dp_plain": {name: later_rounds(summaries[name]) / reference
                              for name in PROTOCOLS},
        "table": table_records(COLUMNS, rows)})


if __name__ == "__main__":
    main()
