"""``gt-secure ledger prove|check-proof|witness`` and ``verify --checkpoint/--receipt``.

The transparency-log side of the ledger commands (see :mod:`gt_secure.ledger.witness` and
:mod:`gt_secure.ledger.proof`). Exit codes as the other ledger commands: 0 checked, 1 a check
failed (a fork, truncation, bad proof or refused cosignature), 2 usage or input error. None of
these commands imports torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError


def add_verify_options(verify: argparse.ArgumentParser) -> None:
    """``--checkpoint`` and ``--receipt`` for ``ledger verify``."""
    verify.add_argument("--checkpoint", type=Path, metavar="FILE",
                        help="a checkpoint signed by the ledger owner, kept elsewhere: the "
                        "ledger must extend it (catches truncation, rollback, deletion, forks)")
    verify.add_argument("--receipt", type=Path, metavar="FILE",
                        help="as --checkpoint, but it must also be cosigned by another trusted "
                        "party (the aggregator's receipt or a witness organization's)")


def external(args: argparse.Namespace) -> dict[str, str | None]:
    """``verify_ledger`` keyword arguments from ``--checkpoint`` / ``--receipt``."""
    def read(path: Path | None) -> str | None:
        return None if path is None else path.read_text(encoding="utf-8")

    given = [o for o in ("checkpoint", "receipt") if getattr(args, o, None) is not None]
    if given and len(args.ledger) != 1:
        raise InvalidFieldError("--ledger", [str(p) for p in args.ledger],
                                f"one ledger when --{given[0]} is given")
    return {"checkpoint": read(getattr(args, "checkpoint", None)),
            "receipt": read(getattr(args, "receipt", None))}


def _prove(args: argparse.Namespace) -> int:
    from gt_secure.ledger.proof import make_bundle
    from gt_secure.ledger.store import Ledger

    receipt = args.receipt.read_text(encoding="utf-8") if args.receipt else None
    bundle = make_bundle(Ledger(args.ledger), args.entry, receipt)
    text = bundle.model_dump_json(indent=2)
    args.out.write_text(text + "\n", encoding="utf-8")
    proof_bytes = 3 * len(bundle.entry_proof) // 4
    print(f"wrote {args.out}: entry {bundle.index} of a tree of "
          f"{bundle.checkpoint.splitlines()[1]} lines; inclusion proof {proof_bytes} bytes, "
          f"bundle {len(text)} bytes")
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gt_secure.ledger._model import as_invalid_field
    from gt_secure.ledger.proof import ProofBundle, check_bundle
    from gt_secure.ledger.signing import load_trusted_keys

    try:
        bundle = ProofBundle.model_validate_json(args.bundle.read_bytes())
    except ValidationError as err:
        raise as_invalid_field(err) from err
    try:
        check = check_bundle(bundle, load_trusted_keys(args.trusted_keys), args.require_cosigner)
    except LedgerIntegrityError as err:
        print(f"FAIL {err}")
        return 1
    entry = check.entry
    cosigners = sorted(n for n, kind in check.signers.items() if kind == "cosignature")
    print(f"OK: line {bundle.index + 1} ({entry.kind} {entry.release_id!r} of {entry.org_id!r}) "
          f"is in the checkpoint of size {check.size}, signed by the owner"
          + (f" and cosigned by {', '.join(cosigners)}" if cosigners else " (no cosigner)"))
    if check.epsilon_spent is not None:
        print(f"   unit={entry.unit} epsilon_spent={entry.epsilon_spent:.6g} (recomputed "
              f"{check.epsilon_spent:.6g}), epsilon_total={entry.epsilon_total:.6g} <= "
              f"budget {check.budget.get(str(entry.unit))} from the signed header")
    elif entry.kind == "unprotected_release":
        from gt_secure.ledger.statement import statement

        print(f"   UNPROTECTED: {statement(entry)}")
    return 0


def _witness(args: argparse.Namespace) -> int:
    from gt_secure.ledger.signing import load_private_key
    from gt_secure.ledger.store import Ledger
    from gt_secure.ledger.witness import LogConsistencyError, Witness, witness_ledger

    witness = Witness(args.name, load_private_key(args.key), args.state)
    try:
        receipt = witness_ledger(witness, Ledger(args.ledger))
    except LogConsistencyError as err:
        print(f"FAIL refused to cosign: {err}")
        return 1
    args.out.write_text(receipt.text(), encoding="utf-8")
    print(f"{args.name} cosigned {receipt.checkpoint.origin} at size {receipt.checkpoint.size}:"
          f" wrote {args.out}")
    return 0


def register(add: Any) -> None:
    """Add ``prove``, ``check-proof`` and ``witness`` through the ledger group's ``add``."""
    prove = add("prove", _prove, "write a proof bundle of one entry for offline checking")
    prove.add_argument("--ledger", type=Path, required=True, help="ledger JSONL file")
    prove.add_argument("--entry", type=int, required=True, metavar="N",
                       help="entry number (1 = first entry after the header, on line 2)")
    prove.add_argument("--out", type=Path, required=True, help="bundle JSON to write")
    prove.add_argument("--receipt", type=Path, metavar="FILE",
                       help="prove against this cosigned checkpoint (default: the owner's)")
    check = add("check-proof", _check_proof, "check a proof bundle offline; exit 1 if it fails")
    check.add_argument("bundle", type=Path, help="bundle JSON written by ledger prove")
    check.add_argument("--trusted-keys", nargs="+", required=True, metavar="PATH",
                       help="directories of <owner>.pub.pem files, or such files")
    check.add_argument("--require-cosigner", action="store_true",
                       help="fail unless a trusted party other than the owner cosigned")
    witness = add("witness", _witness, "check a ledger only grew since this witness last "
                  "cosigned it, then cosign its checkpoint (exit 1 on rollback or fork)")
    witness.add_argument("--ledger", type=Path, required=True, help="the ledger to witness")
    witness.add_argument("--key", type=Path, required=True, help="the witness's <name>.key.pem")
    witness.add_argument("--name", required=True, help="the witness's name (its key owner id)")
    witness.add_argument("--state", type=Path, required=True,
                         help="the witness's memory: last cosigned checkpoint per log")
    witness.add_argument("--out", type=Path, required=True, help="receipt file to write")

