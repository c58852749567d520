"""``gt-secure audit run``: audit a released artifact or re-simulate a ledger release.

- ``--target T --manifest M``: attack the released artifact (an adapter delivered by gt-secure,
  an update vector such as the provider's aggregated ``tinylm_update.safetensors``, a saved
  Hugging Face causal LM directory, or a Hugging Face model id ``owner/name`` found in the
  local cache) with the auditor's secret canary manifest;
- ``--ledger L --release-id R`` without ``--target``: re-run the DP-SGD mechanism the entry
  records with fresh canaries (:func:`gt_secure.audit.ledger_audit.audit_release`).

The claim is ``--claimed-epsilon/--delta`` or, without them, the ledger entry's example-level
``epsilon_total`` and ``delta``; that ledger is verified first (``--trusted-keys``) unless
``--unverified``. ``--config F`` (:mod:`gt_secure.audit.config`) supplies any of these; flags
override it.

Every run also runs its positive control: the same attacks and canaries against the same claim
on a non-private copy of the target (fine-tuned without DP on the members; for a re-simulation,
the same texts trained without DP), stated in the report and on the console. Exit codes: 0 PASS
(no evidence of a violation, and every attack's control detected); 1 FAIL (a violation found),
INCONCLUSIVE (some attack's control did not exceed the claim, so that attack could not have
found one) or a claim ledger that fails verification; 2 usage or input error; 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError

ATTACKS = ("loss", "zlib", "min_k")
_DEFAULTS: dict[str, Any] = {"beta": 0.05, "tokenizer": "auto", "organization": "",
                             "release_id": [], "trusted_keys": []}


def register_run(sub: Any) -> None:
    """Add ``audit run``."""
    run = sub.add_parser("run", help="audit a released artifact or a ledger release")
    run.add_argument("--config", type=Path, help="audit config TOML (target, data, attacks, "
                     "claim); flags override it")
    run.add_argument("--target", type=Path, help="the released artifact: an adapter delivered "
                     "by gt-secure, an update vector (.safetensors, e.g. the aggregated TinyLM "
                     "update), a saved HF causal LM directory, or a cached HF model id")
    run.add_argument("--manifest", type=Path, help="SECRET canary manifest JSON (with --target)")
    run.add_argument("--members", type=Path, help="instead of --manifest: texts trained on, "
                     "one per line (with --nonmembers)")
    run.add_argument("--nonmembers", type=Path, help="texts held out, one per line")
    run.add_argument("--claimed-epsilon", type=float, help="default: from --ledger")
    run.add_argument("--delta", type=float, help="default: from --ledger")
    run.add_argument("--beta", type=float, help="1 - confidence of the bound (default 0.05)")
    run.add_argument("--attack", action="append", choices=list(ATTACKS),
                     help="attack(s) to run (repeatable; default: all)")
    run.add_argument("--tokenizer", choices=["auto", "byte"],
                     help="auto (default): the tokenizer saved in --target; byte: UTF-8 bytes")
    run.add_argument("--organization", help="organization named in the report")
    run.add_argument("--release-id", action="append",
                     help="ledger release id the audited model came from (repeatable)")
    run.add_argument("--ledger", type=Path, help="ledger JSONL the claim or linked entries "
                     "come from")
    run.add_argument("--trusted-keys", type=Path, action="append",
                     help="public keys (.pub.pem files or folders) that verify --ledger")
    run.add_argument("--unverified", action="store_true",
                     help="take the claim from --ledger without verifying it (stated in the "
                     "report)")
    run.add_argument("--n", type=int, default=64, help="canaries of a ledger re-run")
    run.add_argument("--canary-seed", type=int, default=0, help="for a ledger re-run")
    run.add_argument("--split-seed", type=int, default=0, help="for a ledger re-run")
    run.add_argument("--public", type=Path,
                     help="public texts, one per line, for a ledger re-run (default: Faker)")
    run.add_argument("--control-epochs", type=int, default=30,
                     help="epochs of the positive control, a copy of the target fine-tuned "
                     "without DP on the members (default: 30)")
    run.add_argument("--out", type=Path, help="output directory (or audit.out in --config)")
    run.set_defaults(func=_run, check=_check_run)


def _merge_config(args: argparse.Namespace) -> None:
    """Fill every option not given on the command line from ``--config``, then the defaults."""
    if args.config is not None:
        from gt_secure.audit.config import load_audit_config

        cfg = load_audit_config(args.config)
        claim, audit = cfg.claim, cfg.audit
        values: dict[str, Any] = {
            "ledger": claim.ledger, "claimed_epsilon": claim.epsilon, "delta": claim.delta,
            "release_id": None if claim.release_id is None else [claim.release_id],
            "trusted_keys": claim.trusted_keys or None, "attack": audit.attacks,
            "beta": audit.beta, "organization": audit.organization, "out": audit.out}
        if cfg.target is not None:
            values.update(target=cfg.target.path, tokenizer=cfg.target.tokenizer)
        if cfg.data is not None:
            values.update(manifest=cfg.data.manifest, members=cfg.data.members,
                          nonmembers=cfg.data.nonmembers)
        for name, value in values.items():
            if getattr(args, name) is None and value is not None:
                setattr(args, name, value)
        args.unverified = args.unverified or claim.unverified
    for name, value in _DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def claim_from_ledger(args: argparse.Namespace) -> bool:
    """Whether the claim is read from ``--ledger`` (no explicit epsilon and delta)."""
    return not (args.claimed_epsilon is not None and args.delta is not None)


def _check_run(args: argparse.Namespace) -> None:
    """Usage errors of ``audit run``, each naming its option, before anything heavy loads."""
    _merge_config(args)
    if args.out is None:
        raise InvalidFieldError("--out", None, "the output directory, or audit.out in --config")
    if args.control_epochs < 1:
        raise InvalidFieldError("--control-epochs", args.control_epochs, ">= 1 (the positive "
                                "control must be trained)")
    for option in ("manifest", "members", "nonmembers", "ledger", "public"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise InvalidFieldError(f"--{option}", str(path), "an existing file")
    if args.ledger is not None and claim_from_ledger(args) and not args.unverified and \
            not args.trusted_keys:
        raise InvalidFieldError("--trusted-keys", None, "the public keys that verify --ledger "
                                "before its claim is used, or pass --unverified")
    if args.target is None:
        return
    args.target = target = resolve_target(args.target)
    if target.is_file():  # an update vector, e.g. the provider's aggregated TinyLM update
        if target.suffix != ".safetensors":
            raise InvalidFieldError("--target", str(target), "a directory, an update vector "
                                    "(.safetensors) or a cached Hugging Face model id")
        _check_data(args)
        return
    if not target.is_dir():
        raise InvalidFieldError("--target", str(target), "an existing model or adapter directory")
    if (target / "adapter_config.json").is_file():
        if not (target / "update_vector.safetensors").is_file():
            raise InvalidFieldError("--target", str(target), "a gt-secure adapter (with "
                                    "update_vector.safetensors) or a saved model directory")
    elif not (target / "config.json").is_file():
        raise InvalidFieldError("--target", str(target), "a saved model directory (config.json) "
                                "or a gt-secure adapter directory (adapter_config.json)")
    _check_data(args)
    if args.tokenizer == "auto" and not _is_adapter(target) and not any(
            (target / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise InvalidFieldError("--tokenizer", "auto",
                                f"'byte' when --target {target} holds no saved tokenizer")


def _check_data(args: argparse.Namespace) -> None:
    if (args.members is None) != (args.nonmembers is None):
        missing = "--nonmembers" if args.nonmembers is None else "--members"
        raise InvalidFieldError(missing, None, "set with the other")
    if args.members is not None and args.manifest is not None:
        raise InvalidFieldError("--manifest", str(args.manifest), "left out with --members")
    if args.manifest is None and args.members is None:
        raise InvalidFieldError("--manifest", None, "the canary manifest JSON (or --members "
                                "and --nonmembers), set with --target")


def resolve_target(target: Path) -> Path:
    """``target`` itself if it exists, else the cached snapshot of the Hugging Face model id
    ``owner/name`` it spells (read offline from the local cache), else ``target`` unchanged."""
    text = str(target)
    if target.exists() or text.startswith(("/", ".", "~")) or text.count("/") != 1:
        return target
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError):
        return target


def _is_adapter(target: Path) -> bool:
    return (target / "adapter_config.json").is_file()


def _verify(args: argparse.Namespace) -> tuple[bool, str]:
    """``(ok, statement)`` for the ledger the claim comes from."""
    if args.unverified:
        return True, f"UNVERIFIED: {args.ledger} read without verification (--unverified)"
    from gt_secure.ledger.signing import load_trusted_keys
    from gt_secure.ledger.verify import verify_ledger

    try:
        trusted = load_trusted_keys(args.trusted_keys)
    except ValueError as err:
        raise InvalidFieldError("--trusted-keys", [str(p) for p in args.trusted_keys],
                                f"PEM Ed25519 public keys ({err})") from err
    check = verify_ledger(args.ledger, trusted)
    return check.ok, f"verified: {check.summary()}" if check.ok else check.summary()


def _run(args: argparse.Namespace) -> int:
    from gt_secure.cli.audit_target import audit_target, rerun, settings

    verification = "no ledger claim: the claim was given with --claimed-epsilon and --delta"
    if claim_from_ledger(args):
        if args.ledger is None or len(args.release_id) != 1:
            raise InvalidFieldError("--claimed-epsilon", args.claimed_epsilon, "given with "
                                    "--delta, or taken from --ledger and one --release-id")
        ok, verification = _verify(args)
        if not ok:
            print(f"refused: the claim's ledger failed verification: {verification}",
                  file=sys.stderr)
            return 1
    if args.target is None:
        if not claim_from_ledger(args):
            raise InvalidFieldError("--target", None, "set, or --ledger with one --release-id")
        report = rerun(args)
    else:
        report = audit_target(args)
    report = report.model_copy(update={"ledger_verification": verification,
                                       "settings": settings(args)})
    json_path, html_path = report.write(args.out)
    _print(report)
    print(f"wrote {json_path} and {html_path} (claim: {verification.split(':')[0]}; "
          f"report SHA-256 {report.sha256})")
    return 0 if report.verdict == "PASS" else 1


def _print(report: Any) -> None:
    """Each result, its positive control, and the verdict with what it means."""
    from gt_secure.audit.strength import MEANS, control_of, detected

    for r in report.results:
        print(f"{r.organization or '-'} {r.attack}: AUC {r.metrics.auc:.3f}, "
              f"eps_lb {r.eps_lb:.3f} vs claimed {r.claimed_epsilon:g} -> {r.verdict}")
        c = control_of(r, report.controls or [])
        if c is not None:
            print(f"  positive control {c.attack}: AUC {c.metrics.auc:.3f}, eps_lb "
                  f"{c.eps_lb:.3f} -> {'detected' if detected(c) else 'NOT detected'}")
    print(f"verdict: {report.verdict}: {MEANS[report.verdict]}")
