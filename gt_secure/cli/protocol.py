"""``gt-secure protocol list | show NAME | validate PATH | run NAME``: the protocol specs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gt_secure.protocols import ProtocolSpec

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``protocol`` command and its ``list``, ``show``, ``validate`` and ``run``
    actions."""
    parser = subparsers.add_parser("protocol", help="list, show, validate and run protocol specs")
    actions = parser.add_subparsers(dest="protocol_action", required=True, metavar="ACTION")
    actions.add_parser("list", help="packaged protocol specs").set_defaults(
        func=_list, needs_torch=False)
    show = actions.add_parser("show", help="one spec, its error bounds and threat model")
    show.add_argument("name", help="packaged spec name (e.g. dp-ckks) or path to a .toml file")
    show.set_defaults(func=_show, needs_torch=False)
    validate = actions.add_parser("validate", help="validate a spec file; exit 1 on problems")
    validate.add_argument("path", help="path to a .toml spec (or a packaged name)")
    validate.set_defaults(func=_validate, needs_torch=False)
    run = actions.add_parser("run", help="run a protocol on Flower's simulation engine with the "
                             "3 shipped organizations (deployment: docs/deployment.md)")
    run.add_argument("name", help="packaged spec name or path to a .toml file")
    run.add_argument("--out", type=Path, default=Path("runs/protocol"),
                     help="output directory (default: runs/protocol)")
    run.add_argument("--rounds", type=int, default=0, help="0 (default): the spec's rounds")
    run.add_argument("--local-steps", type=int, default=8,
                     help="training steps per organization and round (default: 8)")
    run.add_argument("--num-texts", type=int, default=64,
                     help="training texts per organization (default: 64)")
    run.set_defaults(func=_run, check=lambda args: _load(args.name))


def _load(name: str) -> ProtocolSpec:
    from gt_secure.protocols import load_protocol

    return load_protocol(name)


def _dp_summary(spec: ProtocolSpec) -> str:
    parts: list[str] = []
    if spec.dp and spec.dp.example:
        e = spec.dp.example
        parts.append(f"example eps={e.epsilon:g} delta={e.delta:g}")
    if spec.dp and spec.dp.organization:
        o = spec.dp.organization
        parts.append(f"org sigma={o.noise_multiplier:g} C={o.clip_norm:g}")
    return "; ".join(parts) or "none"


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gt_secure.protocols import list_protocols, load_protocol

    table = Table(title="gt-secure protocols")
    for col in ("name", "aggregation", "DP", "organizations", "description"):
        table.add_column(col)
    for name in list_protocols():
        spec = load_protocol(name)
        orgs = f"{spec.min_organizations}-{spec.max_organizations}"
        table.add_row(spec.name, spec.aggregation, _dp_summary(spec), orgs, spec.description)
    Console().print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from gt_secure.protocols import threat_model_path

    spec = _load(args.name)
    print(json.dumps(spec.model_dump(mode="json", exclude_none=True), indent=2))
    if (bound := spec.secagg_sum_error()) is not None:
        print(f"SecAgg+ max abs error of the sum at {spec.max_organizations} orgs: {bound:.3g}")
    if (bound := spec.ckks_sum_error()) is not None:
        print(f"CKKS max abs error of the sum at {spec.max_organizations} orgs: {bound:.3g}")
    path = threat_model_path(spec)
    print(
        f"threat model: {path if path else spec.threat_model + ' (protocols/ in the repository)'}"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from gt_secure.errors import ProtocolConfigError

    if (args.path.endswith(".toml") or os.sep in args.path) and not Path(args.path).is_file():
        raise FileNotFoundError(2, "no such protocol spec file", args.path)
    try:
        spec = _load(args.path)
    except ProtocolConfigError as err:
        print(f"INVALID: {err}", file=sys.stderr)
        return 1
    print(f"OK: {args.path} is a valid protocol spec ({spec.name}, {spec.aggregation})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gt_secure.demo.simulation import run_protocol

    out: Path = args.out.resolve()
    os.environ["GT_SECURE_STATE_DIR"] = str(out / "organizations")
    console = Console()
    summary = run_protocol(args.name, out, rounds=args.rounds, local_steps=args.local_steps,
                           num_texts=args.num_texts,
                           on_progress=lambda m: console.print(m, markup=False, highlight=False))
    table = Table(title=f"protocol {args.name}: {len(summary['rounds'])} round(s)")
    for col in ("round", "aggregation", "accepted", "refused (field)", "mean error bound",
                "seconds"):
        table.add_column(col)
    for r in summary["rounds"]:
        refused = ", ".join(f"{x['org_id']} ({x['field']})" for x in r["rejections"]) or "-"
        table.add_row(str(r["round"]), r["aggregation"], ", ".join(r["accepted"]) or "-",
                      refused, f"{r['mean_error_bound']:.1e}", f"{r['seconds']['round']:.1f}")
    console.print(table)
    for org, scores in ((summary.get("delivery") or {}).get("evaluations") or {}).items():
        console.print(f"{org}: adapter received; its validation perplexity base LLM "
                      f"{scores['base_llm_ppl']:.1f} -> generated LLM "
                      f"{scores['generated_llm_ppl']:.1f}")
    console.print(f"outputs: {out / 'provider'} (summary.json, round<k>/adapter), "
                  f"{out / 'organizations'} (ledgers, released vectors, received adapters)")
    return 0
