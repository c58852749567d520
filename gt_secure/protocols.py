"""Declarative protocol specs: one TOML file per collaboration mode, validated by pydantic.

The canonical specs ship inside the package (``gt_secure/protocol_specs/<name>.toml``) so that
:func:`load_protocol` finds them by name in a checkout and in an installed wheel alike; the
threat-model documents they point to live in the repository's ``protocols/`` directory. A spec
loaded from a path is validated the same way. Every problem is collected before raising one
:class:`ProtocolSpecError` whose ``problems`` each name the field and the offending value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from gt_secure.aggregation.ckks_masks import MaskedEncoding
from gt_secure.aggregation.ckks_params import (
    CkksParams,
    check_bit_sizes,
    check_degree,
)
from gt_secure.aggregation.quantization import SecAggParams, secagg_error_bound
from gt_secure.errors import ProtocolConfigError
from gt_secure.protocol_checks import Shown, cross_problems

__all__ = [
    "DEFAULT_PROTOCOL",
    "CkksSpec",
    "DistributedDp",
    "DpSpec",
    "ExampleDp",
    "OrganizationDp",
    "ProtocolSpec",
    "ProtocolSpecError",
    "SecAggSpec",
    "list_protocols",
    "load_protocol",
    "parse_protocol",
    "threat_model_path",
]

_SPEC_DIR = ("protocol_specs",)
DEFAULT_PROTOCOL = "dp-sgd-secagg"  # demo, `flwr run` (pyproject) and AppConfig share it
_REPO_PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExampleDp(_Frozen):
    """Example-level DP: DP-SGD on the TinyLM (privacy unit: one training example)."""

    epsilon: Positive
    delta: Annotated[float, Field(gt=0, lt=1)]
    clip: Positive
    accountant: Literal["rdp", "prv"]


class DistributedDp(_Frozen):
    """Distributed discrete Gaussian inside SecAgg+ (:mod:`gt_secure.aggregation.ddp`) or CKKS
    (:mod:`gt_secure.aggregation.ckks_ddp`, ``bits = ckks.mask_bits``): each organization adds
    a share sized so that the noise of ``min_survivors - max_colluders`` organizations reaches
    ``noise_multiplier``; integers modulo ``2**bits``."""

    bits: Annotated[int, Field(ge=2, le=31)]
    min_survivors: Annotated[int, Field(ge=1)]
    max_colluders: Annotated[int, Field(ge=0)]
    basis: Literal["shipped"] | None = None  # release k coordinates in the provider's public
    k: Annotated[int, Field(ge=1)] | None = None  # basis (None: its published k), SecAgg+ only


class OrganizationDp(_Frozen):
    """Organization-level DP: clip the update vector to ``clip_norm``, add Gaussian noise
    (each organization the full noise; ``distributed``: the sum carries it)."""

    noise_multiplier: Positive
    clip_norm: Positive
    distributed: DistributedDp | None = None


class DpSpec(_Frozen):
    """Either or both DP guarantees; each is recorded in the ledger."""

    example: ExampleDp | None = None
    organization: OrganizationDp | None = None


class SecAggSpec(_Frozen):
    """Arguments of Flower's ``SecAggPlusWorkflow`` (integers: absolute counts)."""

    num_shares: int
    reconstruction_threshold: int
    clipping_range: Positive
    quantization_range: int
    modulus_range: int

    def to_params(self) -> SecAggParams:
        """The validated :class:`SecAggParams` for the Flower app."""
        return SecAggParams(**self.model_dump())


class CkksSpec(_Frozen):
    """CKKS parameters, ``max_abs`` (the largest coordinate an organization may encrypt) and
    ``mask_bits`` (the modulus ``2**mask_bits`` of the pairwise masks; see
    :mod:`gt_secure.aggregation.ckks_masks`)."""

    poly_modulus_degree: Annotated[int, AfterValidator(check_degree)]
    coeff_mod_bit_sizes: Annotated[tuple[int, ...], AfterValidator(check_bit_sizes)]
    global_scale_bits: int
    max_abs: Positive
    mask_bits: Annotated[int, Field(ge=2, le=32)]

    def to_params(self) -> CkksParams:
        """The :class:`CkksParams` for :meth:`CkksKeyPair.generate`."""
        return CkksParams(**self.model_dump(exclude={"max_abs", "mask_bits"}))

    def encoding(self, max_organizations: int) -> MaskedEncoding:
        """Quantization step and mask modulus for sums of up to ``max_organizations``."""
        return MaskedEncoding.for_sum(self.max_abs, max_organizations, self.mask_bits)


class ProtocolSpec(_Frozen):
    """One collaboration mode: aggregation mechanism, DP guarantees, rounds and threat model."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+-]*$")]
    description: Annotated[str, Field(min_length=1)]
    aggregation: Literal["plain", "secagg+", "ckks"]
    rounds: Annotated[int, Field(ge=1)]
    min_organizations: Annotated[int, Field(ge=1)]
    max_organizations: Annotated[int, Field(ge=1)]
    threat_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+\.md$")]
    dp: DpSpec | None = None
    secagg: SecAggSpec | None = None
    ckks: CkksSpec | None = None

    @model_validator(mode="after")
    def _cross_fields(self) -> ProtocolSpec:
        problems = [ProtocolConfigError(f, v, c) for f, v, c in cross_problems(self)]
        if problems:
            raise ProtocolSpecError(problems)
        return self

    def secagg_sum_error(self) -> float | None:
        """Documented max abs error of the SecAgg+ sum at ``max_organizations`` (or None)."""
        if self.secagg is None:
            return None
        s = self.secagg
        return secagg_error_bound(s.clipping_range, s.quantization_range, self.max_organizations)

    def ckks_sum_error(self) -> float | None:
        """Max abs error of the CKKS sum at ``max_organizations`` (or None): the quantization
        (``step / 2`` per organization); the CKKS error is rounded away by the key holder."""
        if self.ckks is None:
            return None
        return self.max_organizations * self.ckks.encoding(self.max_organizations).step / 2


class ProtocolSpecError(ProtocolConfigError):
    """One or more problems in a protocol spec; ``problems`` lists each field error."""

    def __init__(self, problems: list[ProtocolConfigError], source: str = "protocol spec") -> None:
        first = problems[0]
        super().__init__(first.field, first.value, first.constraint)
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        self.args = (f"{source}: {len(problems)} problem(s):\n{lines}",)


def _problems_from(err: ValidationError) -> list[ProtocolConfigError]:
    out: list[ProtocolConfigError] = []
    for item in err.errors(include_url=False):
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, ProtocolSpecError):
            out.extend(cause.problems)
            continue
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(
            "."
        )
        msg = str(item["msg"])
        if item["type"] == "missing":
            out.append(ProtocolConfigError(field, Shown(), "present (a required field)"))
            continue
        if item["type"] == "extra_forbidden":
            constraint = "absent (not a field of this table)"
        else:
            constraint = msg.removeprefix("Value error, ").removeprefix("Input should be ")
            constraint = constraint.replace("String should match", "a string matching")
            constraint = constraint.replace("String should have", "a string with")
        out.append(ProtocolConfigError(field or "spec", item.get("input"), constraint))
    return out


def parse_protocol(data: Mapping[str, Any], source: str = "protocol spec") -> ProtocolSpec:
    """Validate a spec given as a mapping (e.g. parsed TOML)."""
    try:
        return ProtocolSpec.model_validate(dict(data))
    except ValidationError as err:
        raise ProtocolSpecError(_problems_from(err), source) from None


def list_protocols() -> list[str]:
    """Names of the packaged protocol specs."""
    root = resources.files("gt_secure").joinpath(*_SPEC_DIR)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_protocol(name_or_path: str | os.PathLike[str]) -> ProtocolSpec:
    """Load a packaged spec by name (``"dp-ckks"``) or any spec by path (``"x/y.toml"``)."""
    text = str(name_or_path)
    by_path = isinstance(name_or_path, os.PathLike) or text.endswith(".toml") or os.sep in text
    if by_path:
        path = Path(text)
        if not path.is_file():
            raise ProtocolConfigError("path", text, "an existing TOML file")
        raw, source = path.read_bytes(), text
    else:
        names = list_protocols()
        if text not in names:
            raise ProtocolConfigError("name", text, f"one of {names} or a path to a .toml file")
        raw = resources.files("gt_secure").joinpath(*_SPEC_DIR, f"{text}.toml").read_bytes()
        source = f"protocol {text!r}"
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProtocolConfigError("toml", source, f"valid UTF-8 TOML ({err})") from None
    spec = parse_protocol(data, source)
    if not by_path and spec.name != text:
        raise ProtocolSpecError(
            [ProtocolConfigError("name", spec.name, f"{text!r}, the file name")], source
        )
    return spec


def threat_model_path(spec: ProtocolSpec) -> Path | None:
    """The spec's threat-model document in the repository checkout, if present."""
    path = _REPO_PROTOCOLS / spec.threat_model
    return path if path.is_file() else None
