"""Typed, frozen configuration of the Flower app, read from ``run_config`` and ``node_config``.

``[tool.flwr.app.config]`` in pyproject.toml holds the defaults; ``flwr run --run-config`` or the
``overrides`` of :func:`AppConfig.from_run_config` change them. Every problem found is collected
before one :class:`~gt_secure.errors.InvalidFieldError` is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gt_secure.errors import InvalidFieldError

AGGREGATIONS = {"plain": "plain", "dp-secagg": "secagg", "secagg": "secagg"}


@dataclass(frozen=True)
class AppConfig:
    """Run-level settings shared by the ServerApp (provider) and every ClientApp."""

    protocol: str = "plain"
    num_rounds: int = 1
    min_orgs: int = 2
    clip_norm: float = 1.0
    noise_multiplier: float = 0.0
    secagg_threshold: float = 0.67
    round_timeout: float = 300.0
    output_dir: str = "runs/app"
    base_seed: int = 0
    local_steps: int = 2
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        problems: list[InvalidFieldError] = []

        def need(ok: bool, field: str, constraint: str) -> None:
            if not ok:
                problems.append(InvalidFieldError(field, getattr(self, field), constraint))

        need(self.protocol in AGGREGATIONS, "protocol", f"one of {sorted(AGGREGATIONS)}")
        need(self.num_rounds >= 1, "num_rounds", ">= 1")
        need(self.min_orgs >= 2, "min_orgs", ">= 2")
        need(self.clip_norm > 0, "clip_norm", "> 0")
        need(self.noise_multiplier >= 0, "noise_multiplier", ">= 0")
        need(0 < self.secagg_threshold <= 1, "secagg_threshold", "in (0, 1]")
        need(self.round_timeout > 0, "round_timeout", "> 0")
        need(self.local_steps >= 1, "local_steps", ">= 1")
        need(self.learning_rate > 0, "learning_rate", "> 0")
        if problems:
            first = problems[0]
            for other in problems[1:]:
                first.add_note(str(other))
            raise first

    @property
    def aggregation(self) -> str:
        """How updates are summed: ``"plain"`` or ``"secagg"`` (SecAgg+)."""
        return AGGREGATIONS[self.protocol]

    @classmethod
    def from_run_config(
        cls, run_config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> AppConfig:
        """Build from Flower's ``run_config`` (kebab-case keys), then apply ``overrides``."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for source in (run_config, overrides or {}):
            for key, value in source.items():
                name = key.replace("-", "_")
                if name in known:
                    values[name] = value
        defaults = cls()
        for name, value in list(values.items()):
            wanted = type(getattr(defaults, name))
            if wanted is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = float(value)
            elif not isinstance(value, wanted):
                raise InvalidFieldError(name, value, f"of type {wanted.__name__}")
        return cls(**values)


def org_id_of(node_config: Mapping[str, Any]) -> str:
    """Organization of a SuperNode: ``org-id`` from its node config, else ``org-<partition-id>``."""
    if "org-id" in node_config:
        org = str(node_config["org-id"])
    elif "partition-id" in node_config:
        org = f"org-{node_config['partition-id']}"
    else:
        raise InvalidFieldError("node_config.org-id", None, "set on every SuperNode")
    if not org or len(org) > 64:
        raise InvalidFieldError("node_config.org-id", org, "a non-empty string of <= 64 chars")
    return org
