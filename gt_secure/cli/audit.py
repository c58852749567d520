"""``gt-secure audit``: canary manifests and membership-inference audits of saved models.

``audit canaries`` writes a secret canary manifest for a trainer to insert; ``audit run`` loads
a saved Hugging Face causal LM trained on them, attacks it, bounds epsilon, compares with the
claim and writes ``audit.json`` + ``audit.html``. ``run`` exits 1 when any verdict is FAIL.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``audit`` command and its sub-commands."""
    parser = subparsers.add_parser("audit", help="membership-inference and canary audits")
    sub = parser.add_subparsers(dest="audit_command", required=True)

    can = sub.add_parser("canaries", help="write a secret canary manifest")
    can.add_argument("--n", type=int, default=64, help="number of canaries")
    can.add_argument("--canary-seed", type=int, default=0)
    can.add_argument("--split-seed", type=int, default=0)
    can.add_argument("--out", type=Path, required=True, help="manifest JSON path")
    can.set_defaults(func=_canaries)

    run = sub.add_parser("run", help="audit a saved model against a canary manifest")
    run.add_argument("--target", type=Path, required=True, help="saved HF causal LM directory")
    run.add_argument("--manifest", type=Path, required=True, help="canary manifest JSON")
    run.add_argument("--claimed-epsilon", type=float, required=True)
    run.add_argument("--delta", type=float, required=True)
    run.add_argument("--beta", type=float, default=0.05, help="1 - confidence of the bound")
    run.add_argument("--attack", action="append", choices=["loss", "zlib", "min_k"],
                     help="attack(s) to run (repeatable; default: all)")
    run.add_argument("--tokenizer", choices=["auto", "byte"], default="auto",
                     help="auto: the tokenizer saved in --target; byte: UTF-8 byte tokenizer")
    run.add_argument("--organization", default="")
    run.add_argument("--release-id", action="append", default=[],
                     help="ledger release id the audited model came from (repeatable)")
    run.add_argument("--ledger", type=Path, help="ledger JSONL to link entries from")
    run.add_argument("--out", type=Path, required=True, help="output directory")
    run.set_defaults(func=_run)


def _canaries(args: argparse.Namespace) -> int:
    from gt_secure.audit.canary import make_manifest

    manifest = make_manifest(args.n, args.canary_seed, args.split_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(args.out)
    print(f"wrote {args.out}: {len(manifest.canaries)} canaries, "
          f"{len(manifest.members)} to insert")
    return 0


def _load_tokenizer(target: Path, kind: str) -> Any:
    from gt_secure.audit.tokens import ByteTokenizer

    if kind == "byte":
        return ByteTokenizer()
    if not any((target / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        from gt_secure.errors import InvalidFieldError

        raise InvalidFieldError("--tokenizer", "auto",
                                f"'byte' when {target} holds no saved tokenizer")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(target)


def _run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM

    from gt_secure.audit.attacks import make_attack
    from gt_secure.audit.canary import CanaryManifest, audit_model
    from gt_secure.audit.report import build_report

    manifest = CanaryManifest.load(args.manifest)
    tokenizer = _load_tokenizer(args.target, args.tokenizer)
    model = AutoModelForCausalLM.from_pretrained(args.target)
    results = [
        audit_model(model, manifest, make_attack(name, tokenizer),
                    claimed_epsilon=args.claimed_epsilon, delta=args.delta, beta=args.beta,
                    organization=args.organization, ledger_release_ids=args.release_id)
        for name in (args.attack or ["loss", "zlib", "min_k"])
    ]
    entries: list[dict[str, Any]] = []
    if args.ledger is not None:
        lines = args.ledger.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
    report = build_report(results, entries)
    json_path, html_path = report.write(args.out)
    for r in results:
        print(f"{r.organization or '-'} {r.attack}: AUC {r.metrics.auc:.3f}, "
              f"eps_lb {r.eps_lb:.3f} vs claimed {r.claimed_epsilon:g} -> {r.verdict}")
    print(f"wrote {json_path} and {html_path}")
    return 1 if report.verdict == "FAIL" else 0
