"""The ``ddp-secagg`` spec: its distributed table is cross-checked against [secagg], its grid is
derivable, and the Flower app runs it with shares instead of full per-organization noise."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import pytest

from gt_secure.aggregation.ddp_round import params_for
from gt_secure.app.config import AppConfig
from gt_secure.app.roles import mechanism_configs
from gt_secure.protocols import ProtocolSpecError, load_protocol, parse_protocol


def _raw() -> dict[str, Any]:
    text = resources.files("gt_secure").joinpath("protocol_specs", "ddp-secagg.toml").read_text()
    return tomllib.loads(text)


def test_spec_loads_and_its_grid_fits_max_organizations() -> None:
    spec = load_protocol("ddp-secagg")
    p = params_for(spec, 2048)
    assert p.no_wrap_bound() <= 2**15 - 1 and p.organizations == spec.max_organizations
    secagg = p.secagg_params(5, 2)
    assert spec.secagg is not None and spec.secagg.to_params() == secagg.model_copy(
        update={"reconstruction_threshold": 2})


def test_distributed_table_is_cross_checked_naming_each_field() -> None:
    data = _raw()
    data["dp"]["organization"]["distributed"] |= {"bits": 12, "min_survivors": 4,
                                                  "max_colluders": 4}
    with pytest.raises(ProtocolSpecError) as err:
        parse_protocol(data)
    fields = [p.field for p in err.value.problems]
    assert fields == ["dp.organization.distributed.min_survivors",
                      "dp.organization.distributed.max_colluders",
                      "secagg.quantization_range", "secagg.clipping_range"]
    assert "2**bits = 4096" in str(err.value)


def test_flower_app_runs_shares_not_full_vector_noise() -> None:
    cfg = AppConfig(protocol="ddp-secagg").resolve()
    assert cfg.distributed and cfg.noise_multiplier == 1.0
    _, vector = mechanism_configs(cfg, 2)
    assert vector is None  # no per-organization full Gaussian: the share replaces it
    assert not AppConfig(protocol="dp-secagg").resolve().distributed
