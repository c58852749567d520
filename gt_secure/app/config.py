"""Typed, frozen configuration of the Flower app, read from ``run_config`` and ``node_config``.

``[tool.flwr.app.config]`` in pyproject.toml holds the defaults; ``flwr run --run-config`` or the
``overrides`` of :func:`AppConfig.from_run_config` change them. Every problem found is collected
before one :class:`~gt_secure.errors.InvalidFieldError` is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gt_secure.aggregation.quantization import SecAggParams
from gt_secure.errors import InvalidFieldError, ProtocolConfigError
from gt_secure.protocols import DEFAULT_PROTOCOL, CkksSpec, load_protocol

AGGREGATIONS = {"plain": "plain", "secagg+": "secagg", "ckks": "ckks"}
SECAGG_SOURCES = ("spec", "auto")


@dataclass(frozen=True)
class AppConfig:
    """Run-level settings shared by the ServerApp (provider) and every ClientApp.

    ``protocol`` names a spec of :mod:`gt_secure.protocols`; the fields whose run-config value is
    a "from the spec" sentinel (``num-rounds = 0``, ``min-orgs = 0``, ``clip-norm = 0.0``,
    ``noise-multiplier = -1.0``) take the spec's value (``rounds``, ``min_organizations``,
    ``dp.organization``; without organization-level DP: clip 1.0, no noise). ``secagg-params``:
    ``"spec"`` uses the spec's pinned ``[secagg]`` numbers, ``"auto"`` asks
    :func:`gt_secure.aggregation.quantization.choose_secagg_params` for the connected
    organizations (majority threshold, so dropouts are tolerated with 3 organizations).
    ``local-steps``: DP-SGD (or, without example-level DP, plain fine-tune) steps per round.
    ``num-texts``: training texts per organization and
    round (0: the node's ``num-texts``, else 512). Defaults (32 steps, 512 texts) are the demo's,
    measured in docs/benchmarks.md "Demo utility". ``org-keys-dir``: the organizations'
    registered ``<org>.pub.pem`` ledger keys; the aggregator's witness cosigns only ledgers signed
    by them ("": each key is trusted on first contact).
    """

    protocol: str = DEFAULT_PROTOCOL
    num_rounds: int = 0
    min_orgs: int = 0
    clip_norm: float = 0.0
    noise_multiplier: float = -1.0
    secagg_params: str = "spec"
    round_timeout: float = 300.0
    output_dir: str = "runs/app"
    local_steps: int = 32
    num_texts: int = 0
    org_keys_dir: str = ""

    def __post_init__(self) -> None:
        problems: list[InvalidFieldError] = []

        def need(ok: bool, field: str, constraint: str) -> None:
            if not ok:
                problems.append(InvalidFieldError(field, getattr(self, field), constraint))

        need(self.num_rounds >= 0, "num_rounds", ">= 0 (0: the protocol's rounds)")
        need(self.min_orgs >= 0, "min_orgs", ">= 0 (0: the protocol's min_organizations)")
        need(self.clip_norm >= 0, "clip_norm", ">= 0 (0: the protocol's clip_norm)")
        need(self.secagg_params in SECAGG_SOURCES, "secagg_params", f"one of {SECAGG_SOURCES}")
        need(self.round_timeout > 0, "round_timeout", "> 0")
        need(self.local_steps >= 1, "local_steps", ">= 1")
        need(self.num_texts >= 0, "num_texts", ">= 0 (0: node-config num-texts, else 512)")
        if problems:
            first = problems[0]
            for other in problems[1:]:
                first.add_note(str(other))
            raise first

    @classmethod
    def from_run_config(
        cls, run_config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> AppConfig:
        """Build from Flower's ``run_config`` (kebab-case keys), then apply ``overrides``."""
        defaults = cls()
        values: dict[str, Any] = {}
        for source in (run_config, overrides or {}):
            for key, value in source.items():
                name = key.replace("-", "_")
                if hasattr(defaults, name):
                    values[name] = value
        for name, value in list(values.items()):
            wanted = type(getattr(defaults, name))
            if wanted is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = float(value)
            elif not isinstance(value, wanted) or isinstance(value, bool):
                raise InvalidFieldError(name, value, f"of type {wanted.__name__}")
        return cls(**values)

    def resolve(self) -> Resolved:
        """Fill the sentinels from the protocol spec (raises ``ProtocolConfigError``)."""
        spec = load_protocol(self.protocol)
        if spec.aggregation not in AGGREGATIONS:
            raise ProtocolConfigError("protocol.aggregation", spec.aggregation,
                                      f"one of {sorted(AGGREGATIONS)} (supported by the app)")
        org_dp = spec.dp.organization if spec.dp is not None else None
        clip = self.clip_norm or (org_dp.clip_norm if org_dp else 1.0)
        noise = self.noise_multiplier
        if noise < 0:
            noise = org_dp.noise_multiplier if org_dp else 0.0
        pinned = spec.secagg.to_params() if spec.secagg and self.secagg_params == "spec" else None
        min_orgs = self.min_orgs or spec.min_organizations
        if AGGREGATIONS[spec.aggregation] == "secagg":
            min_orgs = max(min_orgs, 3)
        distributed = org_dp is not None and org_dp.distributed is not None
        return Resolved(self, AGGREGATIONS[spec.aggregation], self.num_rounds or spec.rounds,
                        min_orgs, clip, noise, pinned, spec.ckks, distributed)


@dataclass(frozen=True)
class Resolved:
    """An :class:`AppConfig` with every protocol-derived value filled in."""

    app: AppConfig
    aggregation: str
    num_rounds: int
    min_orgs: int
    clip_norm: float
    noise_multiplier: float
    secagg: SecAggParams | None
    ckks: CkksSpec | None = None
    distributed: bool = False  # organization-level noise as discrete Gaussian shares (ddp)


def org_id_of(node_config: Mapping[str, Any]) -> str:
    """Organization of a SuperNode: ``org-id`` from its node config; in simulation, the
    ``partition-id``-th of :data:`gt_secure.data.organizations.ORGANIZATIONS`, else
    ``org-<partition-id>``."""
    if "org-id" in node_config:
        org = str(node_config["org-id"])
    elif "partition-id" in node_config:
        from gt_secure.data.organizations import ORGANIZATIONS

        pid = int(node_config["partition-id"])
        org = ORGANIZATIONS[pid] if pid < len(ORGANIZATIONS) else f"org-{pid}"
    else:
        raise InvalidFieldError("node_config.org-id", None, "set on every SuperNode")
    if not org or len(org) > 64:
        raise InvalidFieldError("node_config.org-id", org, "a non-empty string of <= 64 chars")
    return org
