"""``gt-secure audit``: canary manifests and membership-inference audits of saved models.

``audit canaries`` writes the PUBLIC canary texts an organization inserts and the SECRET
manifest the auditor keeps (:func:`gt_secure.audit.canary.write_parts`). ``audit run`` bounds
epsilon from below and compares it with a claim, writing ``audit.json`` + ``audit.html``
(:mod:`gt_secure.cli.audit_run`); ``audit verify-report DIR`` checks such a report
(:mod:`gt_secure.cli.audit_verify`).

``audit gradient-canaries`` runs the white-box Dirac gradient-canary audit of the organization's
DP-SGD on a TinyLM LoRA adapter (:mod:`gt_secure.audit.gradient_canary`), optionally with a
planted bug (``--bug clipping_off|noise_off|steps_x2|steps_x4|sample_rate_x4``). ``audit
data-path`` runs the data-path canary audit (rare-token canary records through the real DP-SGD,
:mod:`gt_secure.audit.data_path`) with the same ``--bug`` choices. ``audit federation`` audits
the federation's released artifacts (:mod:`gt_secure.cli.audit_federation`).

``run``, ``gradient-canaries`` and ``data-path`` exit 1 when any verdict is FAIL.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gt_secure.cli.audit_federation import register_federation
from gt_secure.cli.audit_run import register_run
from gt_secure.cli.audit_verify import register_verify_report

BUGS = ("clipping_off", "noise_off", "steps_x2", "steps_x4", "sample_rate_x4")  # plant_bug's


def register(subparsers: Any) -> None:
    """Add the ``audit`` command and its sub-commands."""
    parser = subparsers.add_parser("audit", help="membership-inference and canary audits")
    sub = parser.add_subparsers(dest="audit_command", required=True)

    can = sub.add_parser("canaries", help="write a public canary file and its secret manifest")
    can.add_argument("--n", type=int, default=64, help="number of canaries")
    can.add_argument("--canary-seed", type=int, default=0, help="seed of the canary texts")
    can.add_argument("--split-seed", type=int, default=0,
                     help="seed of the member/non-member split")
    can.add_argument("--out", type=Path, required=True,
                     help="folder for canaries_public.txt + canaries_secret.json; or a .json "
                     "path for the secret manifest (the public file goes beside it)")
    can.set_defaults(func=_canaries)

    register_run(sub)
    register_federation(sub)
    register_verify_report(sub)

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
    from gt_secure.audit.canary import make_manifest, write_parts
    from gt_secure.errors import InvalidFieldError

    if args.n < 2:
        raise InvalidFieldError("--n", args.n, ">= 2 (half are inserted, half held out)")
    manifest = make_manifest(args.n, args.canary_seed, args.split_seed)
    public, secret = write_parts(manifest, args.out)
    print(f"wrote PUBLIC {public}: {len(manifest.members)} texts for the organization to insert "
          f"(its node config's canaries option, or <state-dir>/canaries.txt)")
    print(f"wrote SECRET {secret}: all {len(manifest.canaries)} canaries and which were "
          "inserted; keep it (audit run --manifest)")
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
