"""``gt-secure audit federation``: audit what the federation released (canaries at one org).

Runs the whole federation in Flower's simulation engine (3 organizations, the protocol's
aggregation, the shipped translator) with canaries at ``--org`` (``--canaries gradient``: Dirac
gradient canaries in its DP-SGD, the default; ``text``: rare-token texts in its data), then scores
the aggregated TinyLM update and the delivered LLM adapter against that organization's ledger
claim (:mod:`gt_secure.audit.federation`). ``--bug`` plants a DP-SGD bug at ``--org`` (its ledger
still records the plan); ``--with-control`` also runs the positive control (``noise_off``).

Exit codes: 0 PASS (and, with ``--with-control``, the control detected); 1 FAIL (a bound above
the claim) or INCONCLUSIVE (the control was not detected: the audit could not have found a
violation); 2 usage or input error; 3 internal error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

FLAGS = {"n_canaries": "--n", "org": "--org"}
BUGS = ("clipping_off", "noise_off", "steps_x2", "steps_x4", "sample_rate_x4")


def register_federation(sub: Any) -> None:
    """Add ``audit federation``."""
    fed = sub.add_parser("federation", help="audit the federation's released artifacts with "
                         "canaries at one organization")
    fed.add_argument("--org", default="bank", help="organization whose data holds the canaries")
    fed.add_argument("--protocol", default="dp-sgd-secagg", help="protocol of the federation")
    fed.add_argument("--n", type=int, default=256, help="number of canaries (half inserted; "
                     "256: the measured default, docs/benchmarks.md \"Audit power\")")
    fed.add_argument("--local-steps", type=int, default=64, help="DP-SGD steps per organization")
    fed.add_argument("--num-texts", type=int, default=16,
                     help="each organization's own training texts")
    fed.add_argument("--bug", choices=list(BUGS), help="plant a DP-SGD bug at --org")
    fed.add_argument("--with-control", action="store_true",
                     help="also run the positive control (noise off at --org)")
    fed.add_argument("--canaries", choices=["gradient", "text"], default="gradient",
                     help="Dirac gradient canaries in --org's DP-SGD (white-box) or rare-token "
                     "canary texts in its data")
    fed.add_argument("--seed", type=int, default=0, help="canary tokens and coins")
    fed.add_argument("--beta", type=float, default=0.05, help="1 - confidence of the bound")
    fed.add_argument("--work-dir", type=Path, help="keep the federation's files here")
    fed.add_argument("--out", type=Path, help="write federation_audit.json here")
    fed.set_defaults(func=_federation)


def _run(args: argparse.Namespace, bug: str | None, name: str) -> Any:
    from pydantic import ValidationError

    from gt_secure.audit.federation import FederationAuditConfig, run_federation_audit
    from gt_secure.errors import InvalidFieldError

    try:
        cfg = FederationAuditConfig(protocol=args.protocol, org=args.org, n_canaries=args.n,
                                    local_steps=args.local_steps, num_texts=args.num_texts,
                                    seed=args.seed, beta=args.beta, bug=bug,
                                    canaries=args.canaries)
    except ValidationError as err:  # one line naming the flag, the value and the constraint
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        flag = FLAGS.get(field, "--" + field.replace("_", "-"))
        raise InvalidFieldError(f"{flag} ({field})", first.get("input"),
                                str(first["msg"]).removeprefix("Input should be ")) from err
    work = None if args.work_dir is None else args.work_dir / name
    return run_federation_audit(cfg, work)


def _federation(args: argparse.Namespace) -> int:
    from gt_secure.audit.strength import largest_detectable_epsilon

    audits = {"audit": _run(args, args.bug, "audit")}
    if args.with_control:
        audits["control"] = _run(args, "noise_off", "control")
    body: dict[str, Any] = {}
    for name, audit in audits.items():
        for r in audit.results:
            ceiling = largest_detectable_epsilon(r)
            reach = "" if r.claimed_epsilon < ceiling else ": the claim is out of reach of "
            reach += f"{r.n_canaries} canaries" if reach else ""
            print(f"{name} {r.organization} {r.attack}: AUC {r.metrics.auc:.3f}, eps_lb "
                  f"{r.eps_lb:.3f} vs claimed {r.claimed_epsilon:.3f} (largest detectable "
                  f"{ceiling:.3f}{reach}) -> {r.verdict}")
        body[name] = {"verdict": audit.verdict, "release_id": audit.release_id,
                      "run_dir": audit.run_dir, "config": audit.config.model_dump(),
                      "results": [json.loads(r.model_dump_json()) for r in audit.results]}
    verdict = audits["audit"].verdict
    if verdict == "PASS" and args.with_control and audits["control"].verdict != "FAIL":
        verdict = "INCONCLUSIVE"  # the control was not detected: no power to find a violation
    body["verdict"] = verdict
    print(f"federation audit: {verdict}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "federation_audit.json"
        path.write_text(json.dumps(body, indent=2))
        print(f"wrote {path}")
    return 0 if verdict == "PASS" else 1
