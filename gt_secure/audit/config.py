"""``gt-secure audit run --config F``: one TOML file naming target, data, attacks and claim.

::

    [target]
    path = "orgs/hospital/adapter"   # delivered adapter, update vector (.safetensors), saved
                                     # model dir, or a cached Hugging Face model id owner/name
    tokenizer = "auto"               # or "byte"
    [data]
    manifest = "secret/canaries.json" # the auditor's SECRET canary manifest, or two files:
    # members = "in.txt"             # texts trained on, one per line, and
    # nonmembers = "out.txt"         # texts held out (each should have been in/out by a coin)
    [claim]                          # either a ledger release ...
    ledger = "hospital.ledger.jsonl"
    release_id = "r-1"
    trusted_keys = ["keys/"]         # verify the ledger first (or unverified = true)
    # epsilon = 1.0                  # ... or an explicit claim
    # delta = 1e-5
    [audit]
    attacks = ["loss", "zlib"]
    beta = 0.05
    organization = "hospital"
    out = "runs/audit"

Relative paths are read relative to the config file. A command-line flag overrides the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gt_secure.errors import InvalidFieldError

Attack = Literal["loss", "zlib", "min_k"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TargetSection(_Section):
    """The released artifact under audit."""

    path: Path
    tokenizer: Literal["auto", "byte"] = "auto"


class DataSection(_Section):
    """Which texts were trained on: the auditor's secret canary manifest, or two text files
    (one text per line) of members and non-members."""

    manifest: Path | None = None
    members: Path | None = None
    nonmembers: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        pair = (self.members is None, self.nonmembers is None)
        if pair[0] != pair[1]:
            raise InvalidFieldError("data.nonmembers" if pair[1] else "data.members", None,
                                    "set with the other")
        if (self.manifest is None) == (self.members is None):
            raise InvalidFieldError("data", "manifest" if self.manifest else "nothing",
                                    "either manifest, or members + nonmembers")
        return self


class ClaimSection(_Section):
    """Where the claimed epsilon comes from: a ledger release, or an explicit (epsilon, delta)."""

    ledger: Path | None = None
    release_id: str | None = None
    trusted_keys: list[Path] = Field(default_factory=list)
    unverified: bool = False
    epsilon: float | None = Field(default=None, ge=0)
    delta: float | None = Field(default=None, ge=0, lt=1)

    @model_validator(mode="after")
    def _one_source(self) -> ClaimSection:
        explicit = self.epsilon is not None and self.delta is not None
        if (self.epsilon is None) != (self.delta is None):
            missing, given = ("delta", "epsilon") if self.delta is None else ("epsilon", "delta")
            raise InvalidFieldError(f"claim.{missing}", None, f"set with claim.{given}")
        if self.release_id is not None and self.ledger is None:
            raise InvalidFieldError("claim.ledger", None, "set with claim.release_id")
        if not explicit and self.release_id is None:
            raise InvalidFieldError("claim", "no source", "epsilon + delta, or ledger + "
                                    "release_id")
        return self


class AuditSection(_Section):
    """Attacks, confidence and where the report goes."""

    attacks: list[Attack] | None = None
    beta: float | None = Field(default=None, gt=0, lt=1)
    organization: str | None = None
    out: Path | None = None


class AuditConfig(_Section):
    """One ``audit run`` (every section optional except ``claim``)."""

    target: TargetSection | None = None
    data: DataSection | None = None
    claim: ClaimSection
    audit: AuditSection = Field(default_factory=AuditSection)


def load_audit_config(path: str | Path) -> AuditConfig:
    """Read and validate ``path``; relative paths become relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise InvalidFieldError("--config", str(path), "an existing audit config TOML file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InvalidFieldError("--config", str(path), f"valid UTF-8 TOML ({err})") from None
    try:
        config = AuditConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        original = first.get("ctx", {}).get("error")
        if isinstance(original, InvalidFieldError):
            raise original from None
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidFieldError(field, first.get("input"), f"valid ({first['msg']}) in "
                                f"{path}") from None
    return _resolve(config, path.parent)


def _resolve(config: AuditConfig, root: Path) -> AuditConfig:
    def rel(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else root / p)

    claim = config.claim.model_copy(update={
        "ledger": rel(config.claim.ledger),
        "trusted_keys": [rel(p) for p in config.claim.trusted_keys]})
    update: dict[str, object] = {"claim": claim, "audit": config.audit.model_copy(
        update={"out": rel(config.audit.out)})}
    if config.target is not None:
        path = config.target.path  # a path beside the config, else as written (a hub id)
        update["target"] = config.target.model_copy(update={
            "path": root / path if (root / path).exists() else path})
    if config.data is not None:
        d = config.data
        update["data"] = d.model_copy(update={"manifest": rel(d.manifest), "members":
                                              rel(d.members), "nonmembers": rel(d.nonmembers)})
    return config.model_copy(update=update)
