"""The heavy half of ``gt-secure audit run``: load the target or re-run the ledger mechanism."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's resolved options, JSON-safe (what the report lists as run settings)."""
    skip = {"func", "check", "debug", "command", "audit_command", "needs_torch"}
    data = {k: v for k, v in vars(args).items() if k not in skip}
    return dict(json.loads(json.dumps(data, default=str)))


def _load_tokenizer(target: Path, kind: str) -> Any:
    from gt_secure.audit.tokens import ByteTokenizer

    if kind == "byte":
        return ByteTokenizer()
    if target.is_file() or (target / "adapter_config.json").is_file():
        from gt_secure.models.loading import load_tokenizer

        return load_tokenizer()  # the BPE every shipped base model shares
    if not any((target / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InvalidFieldError("--tokenizer", "auto",
                                f"'byte' when {target} holds no saved tokenizer")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(target)


def rerun(args: argparse.Namespace) -> Any:
    """Re-simulate the recorded DP-SGD of ``--release-id`` with fresh canaries."""
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
    common = {"base": base, "tokenizer": tokenizer, "attacks": attacks, "n_canaries": args.n,
              "canary_seed": args.canary_seed, "split_seed": args.split_seed, "beta": args.beta}
    report = audit_release(Ledger(args.ledger), args.release_id[0], public, **common)
    # the positive control: the same texts and canaries, trained without DP (memorises)
    control = audit_release(Ledger(args.ledger), args.release_id[0], public, **common,
                            trainer=lambda _cfg: _control_trainer(base, tokenizer, args))
    return report.model_copy(update={
        "controls": [_as_control(r) for r in control.results],
        "positive_control": _control_text(args, "the shipped TinyLM, on the re-simulation's "
                                          "public texts and member canaries"),
        "audited": (
        f"a re-simulation of the mechanism recorded by release {args.release_id[0]} in "
        f"{args.ledger}: its DP-SGD parameters re-run on the shipped TinyLM with "
        f"{len(public)} public texts and {args.n} fresh canaries, not the released artifact")})


def _control_trainer(model: Any, tokenizer: Any, args: argparse.Namespace) -> Any:
    """``train(texts)``: full fine-tuning of a copy of ``model`` without DP, every parameter
    trainable (a merged adapter's base comes frozen), as the audits/ suite's control."""
    import copy

    from gt_secure.audit.finetune import finetune_causal_lm
    from gt_secure.audit.strength import CONTROL_TRAINING

    def train(texts: list[str]) -> Any:
        fresh = copy.deepcopy(model).requires_grad_(True)
        return finetune_causal_lm(fresh, texts, tokenizer,
                                  **{**CONTROL_TRAINING, "epochs": args.control_epochs})

    return train


def _control_text(args: argparse.Namespace, start: str) -> str:
    from gt_secure.audit.strength import CONTROL_TRAINING

    lr, batch = CONTROL_TRAINING["lr"], CONTROL_TRAINING["batch_size"]
    return (f"the same attacks, canaries and claim on a non-private control: a copy of {start} "
            f"fine-tuned without DP ({args.control_epochs} epochs, AdamW lr {lr:g}, batch "
            f"{batch}) so that it memorises its members; it detects when its lower bound "
            "exceeds the claim")


def _as_control(result: Any) -> Any:
    from gt_secure.audit.strength import CONTROL_ORGANIZATION

    return result.model_copy(update={"organization": CONTROL_ORGANIZATION})


def audit_target(args: argparse.Namespace) -> Any:
    """Score the auditor's canaries against the released artifact ``--target``."""
    from transformers import AutoModelForCausalLM

    from gt_secure.audit.attacks import make_attack
    from gt_secure.audit.canary import CanaryManifest, audit_model
    from gt_secure.audit.report import build_report

    claim = None
    if args.claimed_epsilon is None or args.delta is None:
        from gt_secure.audit.ledger_audit import ledger_claim
        from gt_secure.ledger.store import Ledger

        claim = ledger_claim(Ledger(args.ledger), args.release_id[0])
    if args.manifest is not None:
        manifest = CanaryManifest.load(args.manifest)
        data = f"the {len(manifest.canaries)} canaries of the secret manifest {args.manifest}"
    else:
        members, nonmembers = _lines(args.members), _lines(args.nonmembers)
        manifest = CanaryManifest(canary_seed=-1, split_seed=-1, canaries=members + nonmembers,
                                  is_member=[True] * len(members) + [False] * len(nonmembers))
        data = (f"{len(members)} member texts ({args.members}) and {len(nonmembers)} "
                f"non-member texts ({args.nonmembers}); the bound assumes each was in or out "
                "by an independent fair coin")
    tokenizer = _load_tokenizer(args.target, args.tokenizer)
    if args.target.is_file():  # an update vector: its LoRA factors set on its shipped base
        from gt_secure.provider.adapter import adapted_model
        from gt_secure.update import UpdateVector

        update = UpdateVector.load(args.target)
        model = adapted_model(update).merge_and_unload()
        what = (f"the update vector {args.target} applied to the shipped "
                f"{update.layout.base_model}")
    elif (args.target / "adapter_config.json").is_file():  # as released, on its shipped base
        from gt_secure.provider.adapter import load_adapter

        model = load_adapter(args.target).merge_and_unload()
        what = f"the adapter delivered by gt-secure at {args.target} (on its shipped base)"
    else:
        model = AutoModelForCausalLM.from_pretrained(args.target)
        what = f"the saved model directory {args.target}"
    epsilon, delta = (args.claimed_epsilon, args.delta) if claim is None else (
        claim.epsilon, claim.delta)
    organization = args.organization or ("" if claim is None else claim.entry.org_id)
    attacks = [make_attack(name, tokenizer) for name in (args.attack or ["loss", "zlib", "min_k"])]
    claim_args = {"claimed_epsilon": epsilon, "delta": delta, "beta": args.beta}
    results = [audit_model(model, manifest, attack, **claim_args, organization=organization,
                           ledger_release_ids=args.release_id) for attack in attacks]
    # the positive control: the same canaries and attacks on a non-private copy of the target
    control = _control_trainer(model, tokenizer, args)(manifest.members)
    controls = [_as_control(audit_model(control, manifest, attack, **claim_args))
                for attack in attacks]
    entries: list[dict[str, Any]] = []
    if claim is not None:
        entries = [claim.summary()]
    elif args.ledger is not None:
        lines = args.ledger.read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
    return build_report(results, entries, audited=(
        f"the released artifact: {what}, scored with {data}"), controls=controls,
        positive_control=_control_text(args, f"the audited model, on the "
                                       f"{len(manifest.members)} member texts"))


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
