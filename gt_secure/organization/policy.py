"""An organization's own policy: what it agrees to release, enforced on its node before training.

Each organization writes ``policy.toml`` in its state directory (or names another file with the
node config ``policy-file``); nothing the server or the run config says can relax it. A request
(:class:`ReleaseRequest`: the protocol the run names, the aggregation its messages carry and the
mechanisms the organization would run for it) is checked field by field
(:meth:`OrganizationPolicy.refusals`); each violation is a
:class:`~gt_secure.errors.PolicyRefusalError` naming the field, the requested and the required
value. There are no default budgets: a unit the organization protects carries its own.

.. code-block:: toml

    protocols = ["dp-sgd-secagg"]  # accepted protocol specs (packaged names or .toml paths)
    min_organizations = 3          # fewest organizations in any sum the server may learn
    max_clip_norm = 1.0            # largest L2 clip norm of the update vector
    ledger_keys = ["org-a.pub.pem"]  # optional: public keys that verify this organization's
                                   # ledger (files or folders, relative to this file; default:
                                   # the *.pub.pem files beside it, as in its state directory)

    [example]                      # example-level DP-SGD, required in every release
    budget_epsilon = 8.0           # total epsilon per example over all releases (ledger)
    max_epsilon = 1.0              # epsilon of one release
    max_delta = 1e-5

    [organization]                 # organization-level vector noise, required in every release
    budget_epsilon = 10.0
    min_noise_multiplier = 1.0

A unit table present means that unit must be protected in every release, within its limits; a
unit table absent means the organization does not require it, and refuses a request that would
protect it anyway (its releases would need a budget the organization never set).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gt_secure.errors import InvalidFieldError, PolicyRefusalError

POLICY_FILE = "policy.toml"
VECTOR_DELTA = 1e-5  # delta of the organization-level Gaussian mechanism (VectorDpConfig default)
Epsilon = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Delta = Annotated[float, Field(gt=0, lt=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UnitPolicy(_Frozen):
    """Limits for one privacy unit; set ``max_epsilon`` and/or ``min_noise_multiplier``."""

    budget_epsilon: Epsilon
    max_epsilon: Epsilon | None = None
    min_noise_multiplier: Epsilon | None = None
    max_delta: Delta = 1e-5

    @model_validator(mode="after")
    def _limits(self) -> UnitPolicy:
        if self.max_epsilon is None and self.min_noise_multiplier is None:
            raise InvalidFieldError("max_epsilon", None, "set (or min_noise_multiplier set): "
                                    "a limit per release")
        if self.max_epsilon is not None and self.max_epsilon > self.budget_epsilon:
            raise InvalidFieldError("max_epsilon", self.max_epsilon,
                                    f"<= budget_epsilon={self.budget_epsilon}")
        return self


@dataclass(frozen=True)
class UnitRequest:
    """What one release would run for one unit: noise multiplier, its epsilon alone, delta."""

    noise_multiplier: float
    epsilon: float
    delta: float


@dataclass(frozen=True)
class ReleaseRequest:
    """What a request asks of the organization, as its node would carry it out.

    ``aggregation`` is what the request's messages carry (``plain``, ``secagg+`` or ``ckks``);
    ``min_organizations`` the fewest organizations the server's sum may hold (run config, or the
    SecAgg+ threshold, or the live organizations at unmasking); a unit is ``None`` when the
    release would not protect it.
    """

    protocol: str
    aggregation: str
    min_organizations: int
    clip_norm: float
    example: UnitRequest | None = None
    organization: UnitRequest | None = None
    basis_sha256: str | None = None  # the public basis the release's coordinates are in


class OrganizationPolicy(_Frozen):
    """An organization's policy (see the module docstring)."""

    protocols: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
    min_organizations: Annotated[int, Field(ge=1)]
    max_clip_norm: Epsilon
    example: UnitPolicy | None = None
    organization: UnitPolicy | None = None
    ledger_keys: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    # SHA-256s of public bases (gt_secure.aggregation.ddp_basis) whose k coordinates this
    # organization consents to release; empty: full-space releases only
    public_bases: tuple[Annotated[str, Field(pattern="^[0-9a-f]{64}$")], ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> OrganizationPolicy:
        problems = self.protocol_problems()
        if problems:
            raise PolicyError(problems)
        return self

    def protocol_problems(self) -> list[InvalidFieldError]:
        """Each accepted protocol, run as specified, must satisfy this policy."""
        from gt_secure.protocols import load_protocol

        if len(set(self.protocols)) != len(self.protocols):
            return [InvalidFieldError("protocols", list(self.protocols), "without repeats")]
        problems: list[InvalidFieldError] = []
        for i, name in enumerate(self.protocols):
            try:
                spec = load_protocol(name)
            except InvalidFieldError as err:
                problems.append(InvalidFieldError(f"protocols[{i}]", name,
                                                  f"a loadable protocol spec ({err})"))
                continue
            request = _spec_request(name, spec, self.min_organizations)
            problems += [InvalidFieldError(f"protocols[{i}]", name, f"a protocol whose own "
                                           f"settings satisfy this policy ({r})")
                         for r in self.refusals(request)]
        return problems

    def refusals(self, request: ReleaseRequest) -> list[PolicyRefusalError]:
        """Every way ``request`` falls short of this policy (empty: accepted)."""
        out: list[PolicyRefusalError] = []

        def need(ok: bool, field: str, requested: object, required: str) -> None:
            if not ok:
                out.append(PolicyRefusalError(f"request.{field}", requested, required))

        need(request.protocol in self.protocols, "protocol", request.protocol,
             f"one of {list(self.protocols)} (policy.protocols)")
        if request.protocol in self.protocols:
            from gt_secure.protocols import load_protocol

            wanted = load_protocol(request.protocol).aggregation
            need(request.aggregation == wanted, "aggregation", request.aggregation,
                 f"{wanted!r} (the aggregation of accepted protocol {request.protocol!r})")
        need(request.min_organizations >= self.min_organizations, "min_organizations",
             request.min_organizations, f">= {self.min_organizations} (policy.min_organizations)")
        need(request.clip_norm <= self.max_clip_norm, "clip_norm", request.clip_norm,
             f"<= {self.max_clip_norm} (policy.max_clip_norm)")
        need(request.basis_sha256 is None or request.basis_sha256 in self.public_bases,
             "basis_sha256", request.basis_sha256,
             f"one of {list(self.public_bases)} (policy.public_bases) or a full-space release")
        for unit in ("example", "organization"):
            out += _unit_refusals(unit, getattr(self, unit), getattr(request, unit))
        return out

    def enforce(self, request: ReleaseRequest, org_id: str = "") -> None:
        """Raise the first refusal (the others as notes); return when ``request`` is accepted."""
        problems = self.refusals(request)
        if problems:
            first = problems[0]
            for other in problems[1:]:
                first.add_note(str(other))
            if org_id:
                first.add_note(f"refused by organization {org_id!r} before any training")
            raise first

    def budgets(self) -> tuple[float, float]:
        """Budget per unit (example, organization); ``inf`` for a unit the policy leaves open.

        A release never reaches an open unit with a mechanism: :meth:`refusals` refuses it."""
        example, organization = self.example, self.organization
        return (math.inf if example is None else example.budget_epsilon,
                math.inf if organization is None else organization.budget_epsilon)


def _unit_refusals(unit: str, policy: UnitPolicy | None,
                   request: UnitRequest | None) -> list[PolicyRefusalError]:
    field = f"request.{unit}"
    if policy is None:
        if request is None:
            return []
        return [PolicyRefusalError(field, f"noise_multiplier={request.noise_multiplier:.6g}",
                                   f"absent: policy.{unit} is not set, so no {unit}-level budget "
                                   "exists for this release")]
    if request is None:
        return [PolicyRefusalError(field, None, f"{unit}-level DP (policy.{unit} requires it in "
                                   "every release)")]
    out = []
    if policy.max_epsilon is not None and request.epsilon > policy.max_epsilon * (1 + 1e-9):
        out.append(PolicyRefusalError(f"{field}.epsilon", round(request.epsilon, 6),
                                      f"<= {policy.max_epsilon} (policy.{unit}.max_epsilon)"))
    z_min = policy.min_noise_multiplier
    if z_min is not None and request.noise_multiplier < z_min:
        out.append(PolicyRefusalError(f"{field}.noise_multiplier", request.noise_multiplier,
                                      f">= {z_min} (policy.{unit}.min_noise_multiplier)"))
    if request.delta > policy.max_delta:
        out.append(PolicyRefusalError(f"{field}.delta", request.delta,
                                      f"<= {policy.max_delta} (policy.{unit}.max_delta)"))
    return out


def _spec_request(name: str, spec: Any, min_organizations: int) -> ReleaseRequest:
    """The request a protocol makes when run as specified. DP-SGD's noise multiplier depends on
    the data size and steps of a round, so it is checked per request, not here."""
    from gt_secure.ledger.accountant import VectorGaussianMechanism, compute_epsilon

    dp = spec.dp
    example = organization = None
    if dp is not None and dp.example is not None:
        example = UnitRequest(math.inf, dp.example.epsilon, dp.example.delta)
    clip = 1.0
    if dp is not None and dp.organization is not None:
        z, clip = dp.organization.noise_multiplier, dp.organization.clip_norm
        mech = VectorGaussianMechanism(noise_multiplier=z, clip_norm=clip)
        organization = UnitRequest(z, compute_epsilon([mech], VECTOR_DELTA, "rdp"), VECTOR_DELTA)
    return ReleaseRequest(name, spec.aggregation, min_organizations, clip, example, organization)


class PolicyError(InvalidFieldError):
    """One or more problems in a policy; ``problems`` lists each field error."""

    def __init__(self, problems: list[InvalidFieldError], source: str = "policy") -> None:
        first = problems[0]
        super().__init__(first.field, first.value, first.constraint)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        self.args = (f"{source}: {len(problems)} problem(s):\n{lines}",)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


def parse_policy(data: Mapping[str, Any], source: str = "policy") -> OrganizationPolicy:
    """Validate a policy given as a mapping; one :class:`PolicyError` naming every bad field."""
    try:
        return OrganizationPolicy.model_validate(dict(data))
    except ValidationError as err:
        problems: list[InvalidFieldError] = []
        for item in err.errors(include_url=False):
            cause = item.get("ctx", {}).get("error")
            where = ".".join(str(p) for p in item["loc"])
            if isinstance(cause, PolicyError):
                problems += cause.problems
            elif isinstance(cause, InvalidFieldError):
                field = f"{where}.{cause.field}" if where else cause.field
                problems.append(InvalidFieldError(field, cause.value, cause.constraint))
            elif item["type"] == "missing":
                problems.append(InvalidFieldError(where, _Missing(), "set (a required field)"))
            elif item["type"] == "extra_forbidden":
                problems.append(InvalidFieldError(where, item.get("input"),
                                                  "absent (not a policy field)"))
            else:
                msg = str(item["msg"]).removeprefix("Value error, ")
                msg = msg.removeprefix("Input should be ")
                problems.append(InvalidFieldError(where or "policy", item.get("input"), msg))
        raise PolicyError(problems, source) from None


def load_policy(path: str | Path) -> OrganizationPolicy:
    """Read and validate a policy TOML file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidFieldError("policy-file", str(path), "an existing organization policy "
                                "TOML file (write one with `gt-secure organization policy init`)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InvalidFieldError("policy-file", str(path), f"valid UTF-8 TOML ({err})") from None
    return parse_policy(data, str(path))


def policy_toml(policy: OrganizationPolicy) -> str:
    """The policy as TOML (round-trips through :func:`parse_policy`)."""
    data = policy.model_dump(mode="json", exclude_none=True)
    if not data.get("ledger_keys"):
        data.pop("ledger_keys", None)
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for unit in ("example", "organization"):
        if unit in data:
            lines += ["", f"[{unit}]"] + [f"{k} = {json.dumps(v)}" for k, v in data[unit].items()]
    return "\n".join(lines) + "\n"


def write_policy(policy: OrganizationPolicy, path: str | Path) -> Path:
    """Write ``policy`` to ``path`` (parents created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policy_toml(policy), encoding="utf-8")
    return path


def policy_for(protocol: str, budget_epsilon: float,
               min_organizations: int | None = None) -> OrganizationPolicy:
    """The policy that accepts exactly ``protocol`` as specified, with ``budget_epsilon`` per
    protected unit: what setup code (demo, simulation, tests) writes for its organizations."""
    from gt_secure.protocols import load_protocol

    spec = load_protocol(protocol)
    dp = spec.dp
    example = organization = None
    clip = 1.0
    if dp is not None and dp.example is not None:
        example = UnitPolicy(budget_epsilon=budget_epsilon, max_epsilon=dp.example.epsilon,
                             max_delta=dp.example.delta)
    if dp is not None and dp.organization is not None:
        clip = dp.organization.clip_norm
        organization = UnitPolicy(budget_epsilon=budget_epsilon,
                                  min_noise_multiplier=dp.organization.noise_multiplier)
    fewest = spec.min_organizations
    if dp is not None and dp.organization is not None and dp.organization.distributed:
        fewest = dp.organization.distributed.min_survivors  # SecAgg+ may finish with these
    from gt_secure.provider.public_basis import spec_basis

    basis = spec_basis(spec)  # the spec's public basis, consented to by hash
    return OrganizationPolicy(protocols=(protocol,), max_clip_norm=clip,
                              min_organizations=min_organizations or fewest,
                              example=example, organization=organization,
                              public_bases=() if basis is None else (basis.sha256(),))
