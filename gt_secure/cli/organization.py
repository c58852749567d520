"""``gt-secure organization policy init | check``: an organization writes and checks its policy.

The policy (:mod:`gt_secure.organization.policy`) is what the organization's node enforces on
every request before training. ``init`` takes the limits from the accepted protocols' own specs
unless given, but never invents a budget: each privacy unit an accepted protocol protects needs
its ``--budget-*``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``organization`` command and its ``policy init`` and ``policy check`` actions."""
    parser = subparsers.add_parser("organization", help="an organization's own policy")
    groups = parser.add_subparsers(dest="organization_group", required=True, metavar="GROUP")
    policy = groups.add_parser("policy", help="write or check the policy the node enforces")
    actions = policy.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="write DIR/policy.toml (e.g. the node's state dir)")
    init.add_argument("--out", type=Path, required=True, help="directory for policy.toml")
    init.add_argument("--protocol", action="append", required=True,
                      help="an accepted protocol (packaged name or .toml path); repeatable")
    init.add_argument("--budget-example", type=float,
                      help="total epsilon per training example (needed with DP-SGD protocols)")
    init.add_argument("--budget-organization", type=float, help="total epsilon for the "
                      "organization's dataset (needed with organization-level noise)")
    init.add_argument("--max-epsilon-example", type=float,
                      help="largest example-level epsilon of one release (default: the specs')")
    init.add_argument("--min-noise-organization", type=float, help="smallest organization-level "
                      "noise multiplier (default: the specs')")
    init.add_argument("--max-clip-norm", type=float,
                      help="largest update-vector clip norm (default: the specs')")
    init.add_argument("--min-organizations", type=int,
                      help="fewest organizations in a sum (default: the specs' smallest)")
    init.add_argument("--force", action="store_true", help="replace an existing policy.toml")
    init.set_defaults(func=_init, needs_torch=False)
    check = actions.add_parser("check", help="validate a policy file; exit 1 on problems")
    check.add_argument("path", type=Path, help="a policy.toml")
    check.set_defaults(func=_check, needs_torch=False)


def _unit(spec_units: list[Any], budget: float | None, flag: str, limits: dict[str, Any]
          ) -> dict[str, Any] | None:
    """The policy table of one unit: None when no accepted protocol protects it."""
    from gt_secure.errors import InvalidFieldError

    if not spec_units:
        if budget is not None:
            raise InvalidFieldError(flag, budget, "unset: no accepted protocol protects this "
                                    "unit (a request that does is refused)")
        return None
    if budget is None:
        raise InvalidFieldError(flag, None, "set: an accepted protocol protects this unit and "
                                "its releases are budgeted (there is no default budget)")
    return {"budget_epsilon": budget} | limits


def _given(value: Any, spec_values: list[Any], pick: Any) -> Any:
    """``value`` when given, else ``pick(spec_values)`` (None when there are none)."""
    if value is not None:
        return value
    return pick(spec_values) if spec_values else None


def build_policy(args: argparse.Namespace) -> Any:
    """The policy ``init`` writes for ``args``."""
    from gt_secure.organization.policy import parse_policy
    from gt_secure.protocols import load_protocol

    specs = [load_protocol(name) for name in args.protocol]
    examples = [s.dp.example for s in specs if s.dp is not None and s.dp.example is not None]
    orgs = [s.dp.organization for s in specs if s.dp is not None and s.dp.organization is not None]
    example_limits = {
        "max_epsilon": _given(args.max_epsilon_example, [e.epsilon for e in examples], max),
        "max_delta": max((e.delta for e in examples), default=1e-5)}
    noise = _given(args.min_noise_organization, [o.noise_multiplier for o in orgs], min)
    data = {
        "protocols": list(args.protocol),
        "min_organizations": _given(args.min_organizations,
                                    [s.min_organizations for s in specs], min),
        "max_clip_norm": _given(args.max_clip_norm, [o.clip_norm for o in orgs] or [1.0], max),
        "example": _unit(examples, args.budget_example, "--budget-example", example_limits),
        "organization": _unit(orgs, args.budget_organization, "--budget-organization",
                              {"min_noise_multiplier": noise}),
    }
    return parse_policy({k: v for k, v in data.items() if v is not None}, "policy init")


def _init(args: argparse.Namespace) -> int:
    from gt_secure.organization.policy import POLICY_FILE, write_policy

    path: Path = args.out / POLICY_FILE
    if path.exists() and not args.force:
        raise FileExistsError(17, "policy exists (use --force to replace it)", str(path))
    policy = build_policy(args)
    write_policy(policy, path)
    print(f"wrote {path}: accepts {', '.join(policy.protocols)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from gt_secure.errors import InvalidFieldError
    from gt_secure.organization.policy import load_policy

    if not args.path.is_file():
        raise FileNotFoundError(2, "no such policy file", str(args.path))
    try:
        policy = load_policy(args.path)
    except InvalidFieldError as err:
        print(f"INVALID: {err}", file=sys.stderr)
        return 1
    units = [f"{u}: budget eps={getattr(policy, u).budget_epsilon:g}"
             for u in ("example", "organization") if getattr(policy, u) is not None]
    print(f"OK: {args.path} accepts {', '.join(policy.protocols)}; min organizations "
          f"{policy.min_organizations}; max clip {policy.max_clip_norm:g}; "
          f"{'; '.join(units) or 'no DP required'}")
    return 0
