"""``gt-secure audit``: canary manifests and membership-inference audits of saved models.

``audit canaries`` writes a secret canary manifest for a trainer to insert. ``audit run`` bounds
epsilon from below and compares it with a claim, writing ``audit.json`` + ``audit.html``:

- ``--target DIR --manifest M``: attack a saved Hugging Face causal LM trained on the canaries;
  the claim is ``--claimed-epsilon/--delta`` or, with ``--ledger L --release-id R`` and no
  ``--claimed-epsilon``, the ledger entry's example-level ``epsilon_total`` and ``delta``;
- ``--ledger L --release-id R`` without ``--target``: re-run the DP-SGD mechanism the entry
  records with fresh canaries (:func:`gt_secure.audit.ledger_audit.audit_release`).

``audit gradient-canaries`` runs the white-box Dirac gradient-canary audit of the organization's
DP-SGD on a TinyLM LoRA adapter (:mod:`gt_secure.audit.gradient_canary`), optionally with a
planted bug (``--bug clipping_off|noise_off|steps_x2|steps_x4|sample_rate_x4``). ``audit
data-path`` runs the data-path canary audit (rare-token canary records through the real DP-SGD,
:mod:`gt_secure.audit.data_path`) with the same ``--bug`` choices.

``run``, ``gradient-canaries`` and ``data-path`` exit 1 when any verdict is FAIL.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BUGS = ("clipping_off", "noise_off", "steps_x2", "steps_x4", "sample_rate_x4")  # plant_bug's


def register(subparsers: Any) -> None:
    """Add the ``audit`` command and its sub-commands."""
    parser = subparsers.add_parser("audit", help="membership-inference and canary audits")
    sub = parser.add_subparsers(dest="audit_command", required=True)

    can = sub.add_parser("canaries", help="write a secret canary manifest")
    can.add_argument("--n", type=int, default=64, help="number of canaries")
    can.add_argument("--canary-seed", type=int, default=0, help="seed of the canary texts")
    can.add_argument("--split-seed", type=int, default=0,
                     help="seed of the member/non-member split")
    can.add_argument("--out", type=Path, required=True, help="manifest JSON path")
    can.set_defaults(func=_canaries)

    run = sub.add_parser("run", help="audit a saved model or a ledger release")
    run.add_argument("--target", type=Path, help="saved HF causal LM directory, or an adapter "
                     "exported/delivered by gt-secure (adapter_config.json)")
    run.add_argument("--manifest", type=Path, help="canary manifest JSON (with --target)")
    run.add_argument("--claimed-epsilon", type=float, help="default: from --ledger")
    run.add_argument("--delta", type=float, help="default: from --ledger")
    run.add_argument("--beta", type=float, default=0.05, help="1 - confidence of the bound")
    run.add_argument("--attack", action="append", choices=["loss", "zlib", "min_k"],
                     help="attack(s) to run (repeatable; default: all)")
    run.add_argument("--tokenizer", choices=["auto", "byte"], default="auto",
                     help="auto: the tokenizer saved in --target; byte: UTF-8 byte tokenizer")
    run.add_argument("--organization", default="", help="organization named in the report")
    run.add_argument("--release-id", action="append", default=[],
                     help="ledger release id the audited model came from (repeatable)")
    run.add_argument("--ledger", type=Path, help="ledger JSONL to link entries from")
    run.add_argument("--n", type=int, default=64, help="canaries of a ledger re-run")
    run.add_argument("--canary-seed", type=int, default=0, help="for a ledger re-run")
    run.add_argument("--split-seed", type=int, default=0, help="for a ledger re-run")
    run.add_argument("--public", type=Path,
                     help="public texts, one per line, for a ledger re-run (default: Faker)")
    run.add_argument("--out", type=Path, required=True, help="output directory")
    run.set_defaults(func=_run, check=_check_run)

    grad = sub.add_parser("gradient-canaries",
                          help="white-box gradient-canary audit of the organization's DP-SGD")
    grad.add_argument("--org", default="hospital", help="organization whose texts train")
    grad.add_argument("--n-texts", type=int, default=64, help="training texts (q = 16 / n)")
    grad.add_argument("--n", type=int, default=128, help="number of gradient canaries")
    grad.add_argument("--grad-norm", type=float, default=100.0, help="Dirac canary norm")
    grad.add_argument("--bug", choices=list(BUGS),
                      help="plant a DP-SGD bug in the run (the claim stays nominal)")
    grad.add_argument("--seed", type=int, default=0, help="canary coordinates, coins, sampling")
    grad.add_argument("--beta", type=float, default=0.05, help="1 - confidence of the bound")
    grad.add_argument("--out", type=Path, help="write audit.json + audit.html here")
    grad.set_defaults(func=_gradient_canaries)

    path = sub.add_parser("data-path", help="data-path canary audit of the organization's DP-SGD")
    path.add_argument("--org", default="hospital", help="organization whose records train")
    path.add_argument("--n-examples", type=int, default=256, help="records + 'in' canaries")
    path.add_argument("--n", type=int, default=256, help="number of canary records")
    path.add_argument("--bug", choices=list(BUGS),
                      help="plant a DP-SGD bug in the run (the claim stays nominal)")
    path.add_argument("--seed", type=int, default=0, help="canary tokens, coins, DP-SGD run")
    path.add_argument("--out", type=Path, help="write audit.json + audit.html here")
    path.set_defaults(func=_data_path)


def _canaries(args: argparse.Namespace) -> int:
    from gt_secure.audit.canary import make_manifest
    from gt_secure.errors import InvalidFieldError

    if args.n < 2:
        raise InvalidFieldError("--n", args.n, ">= 2 (half are inserted, half held out)")
    manifest = make_manifest(args.n, args.canary_seed, args.split_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(args.out)
    print(f"wrote {args.out}: {len(manifest.canaries)} canaries, "
          f"{len(manifest.members)} to insert")
    return 0


def _gradient_canaries(args: argparse.Namespace) -> int:
    from gt_secure.audit.gradient_canary import audit_org_dp_sgd
    from gt_secure.audit.report import build_report

    r = audit_org_dp_sgd(args.org, args.n_texts, bug=args.bug, n_canaries=args.n,
                         grad_norm=args.grad_norm, seed=args.seed, beta=args.beta)
    print(f"{r.organization} {r.attack}: AUC {r.metrics.auc:.3f}, eps_lb {r.eps_lb:.3f} "
          f"vs claimed {r.claimed_epsilon:.3f} -> {r.verdict}")
    if args.out is not None:
        json_path, html_path = build_report([r]).write(args.out)
        print(f"wrote {json_path} and {html_path}")
    return 1 if r.verdict == "FAIL" else 0


def _data_path(args: argparse.Namespace) -> int:
    from gt_secure.audit.data_path import DATA_PATH_DP_SGD, audit_org_data_path
    from gt_secure.audit.report import build_report

    r, check = audit_org_data_path(args.org, args.n_examples, DATA_PATH_DP_SGD, bug=args.bug,
                                   n_canaries=args.n, seed=args.seed)
    print(f"{r.organization} {r.attack}: noise ratio {check.noise_ratio:.3f} (p "
          f"{check.noise_p:.2g}), signal {check.signal_mean:.3f} vs <= {check.signal_bound:.3f} "
          f"(p {check.signal_p:.2g}), eps_lb {r.eps_lb:.3f} vs claimed "
          f"{r.claimed_epsilon:.3f} -> {r.verdict}")
    if args.out is not None:
        json_path, html_path = build_report([r]).write(args.out)
        print(f"wrote {json_path} and {html_path}")
    return 1 if r.verdict == "FAIL" else 0


def _check_run(args: argparse.Namespace) -> None:
    """Usage errors of ``audit run``, each naming its option, before anything heavy loads."""
    from gt_secure.errors import InvalidFieldError

    for option in ("manifest", "ledger", "public"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise InvalidFieldError(f"--{option}", str(path), "an existing file")
    if args.target is None:
        return
    target = args.target
    if not target.is_dir():
        raise InvalidFieldError("--target", str(target), "an existing model or adapter directory")
    if (target / "adapter_config.json").is_file():
        if not (target / "update_vector.safetensors").is_file():
            raise InvalidFieldError("--target", str(target), "a gt-secure adapter (with "
                                    "update_vector.safetensors) or a saved model directory")
    elif not (target / "config.json").is_file():
        raise InvalidFieldError("--target", str(target), "a saved model directory (config.json) "
                                "or a gt-secure adapter directory (adapter_config.json)")
    if args.manifest is None:
        raise InvalidFieldError("--manifest", None, "the canary manifest JSON, set with --target")
    if args.tokenizer == "auto" and not _is_adapter(target) and not any(
            (target / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InvalidFieldError("--tokenizer", "auto",
                                f"'byte' when --target {target} holds no saved tokenizer")


def _is_adapter(target: Path) -> bool:
    return (target / "adapter_config.json").is_file()


def _load_tokenizer(target: Path, kind: str) -> Any:
    from gt_secure.audit.tokens import ByteTokenizer

    if kind == "byte":
        return ByteTokenizer()
    if _is_adapter(target):
        from gt_secure.models.loading import load_tokenizer

        return load_tokenizer()
    if not any((target / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        from gt_secure.errors import InvalidFieldError

        raise InvalidFieldError("--tokenizer", "auto",
                                f"'byte' when {target} holds no saved tokenizer")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(target)


def _ledger_claim(args: argparse.Namespace) -> Any:
    """The ledger claim named by ``--ledger`` and one ``--release-id`` (or None)."""
    from gt_secure.errors import InvalidFieldError

    if args.claimed_epsilon is not None and args.delta is not None:
        return None
    if args.ledger is None or len(args.release_id) != 1:
        raise InvalidFieldError("--claimed-epsilon", args.claimed_epsilon,
                                "given with --delta, or taken from --ledger and one --release-id")
    from gt_secure.audit.ledger_audit import ledger_claim
    from gt_secure.ledger.store import Ledger

    return ledger_claim(Ledger(args.ledger), args.release_id[0])


def _rerun(args: argparse.Namespace) -> Any:
    from gt_secure.audit.attacks import make_attack
    from gt_secure.audit.ledger_audit import audit_release, faker_public_texts
    from gt_secure.ledger.store import Ledger
    from gt_secure.models.loading import load_base

    if args.public is not None:
        lines = args.public.read_text(encoding="utf-8").splitlines()
        public = [line for line in lines if line.strip()]
    else:
        public = faker_public_texts()
    base, tokenizer = load_base("tinylm")
    attacks = [make_attack(name, tokenizer) for name in (args.attack or ["loss"])]
    return audit_release(Ledger(args.ledger), args.release_id[0], public, base=base,
                         tokenizer=tokenizer, attacks=attacks, n_canaries=args.n,
                         canary_seed=args.canary_seed, split_seed=args.split_seed,
                         beta=args.beta)


def _run(args: argparse.Namespace) -> int:
    from gt_secure.errors import InvalidFieldError

    claim = _ledger_claim(args)
    if args.target is None:
        if claim is None:
            raise InvalidFieldError("--target", None, "set, or --ledger with one --release-id")
        report = _rerun(args)
    else:
        if args.manifest is None:
            raise InvalidFieldError("--manifest", None, "set with --target")
        report = _audit_target(args, claim)
    json_path, html_path = report.write(args.out)
    results = report.results
    for r in results:
        print(f"{r.organization or '-'} {r.attack}: AUC {r.metrics.auc:.3f}, "
              f"eps_lb {r.eps_lb:.3f} vs claimed {r.claimed_epsilon:g} -> {r.verdict}")
    print(f"wrote {json_path} and {html_path}")
    return 1 if report.verdict == "FAIL" else 0


def _audit_target(args: argparse.Namespace, claim: Any) -> Any:
    from transformers import AutoModelForCausalLM

    from gt_secure.audit.attacks import make_attack
    from gt_secure.audit.canary import CanaryManifest, audit_model
    from gt_secure.audit.report import build_report

    manifest = CanaryManifest.load(args.manifest)
    tokenizer = _load_tokenizer(args.target, args.tokenizer)
    if _is_adapter(args.target):  # the adapter as released, on its shipped base model
        from gt_secure.provider.adapter import load_adapter

        model = load_adapter(args.target).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(args.target)
    epsilon, delta = (args.claimed_epsilon, args.delta) if claim is None else (
        claim.epsilon, claim.delta)
    organization = args.organization or ("" if claim is None else claim.entry.org_id)
    results = [
        audit_model(model, manifest, make_attack(name, tokenizer), claimed_epsilon=epsilon,
                    delta=delta, beta=args.beta, organization=organization,
                    ledger_release_ids=args.release_id)
        for name in (args.attack or ["loss", "zlib", "min_k"])
    ]
    entries: list[dict[str, Any]] = []
    if claim is not None:
        entries = [claim.summary()]
    elif args.ledger is not None:
        lines = args.ledger.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
    return build_report(results, entries)
