"""Protocol specs: the packaged ones load; bad specs name every field and value; CLI works."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gt_secure.aggregation.ckks_params import INTEGER_CKKS_PARAMS, choose_ckks_params
from gt_secure.aggregation.quantization import choose_secagg_params
from gt_secure.cli.main import main
from gt_secure.errors import ProtocolConfigError
from gt_secure.protocols import (
    ProtocolSpecError,
    list_protocols,
    load_protocol,
    parse_protocol,
    threat_model_path,
)

NAMES = ["ddp-ckks", "ddp-secagg", "ddp-secagg-basis", "dp-ckks", "dp-secagg", "dp-sgd-secagg",
         "plain"]


def _raw(name: str) -> dict[str, Any]:
    text = resources.files("gt_secure").joinpath("protocol_specs", f"{name}.toml").read_text()
    return tomllib.loads(text)


def _problems(data: dict[str, Any]) -> dict[str, ProtocolConfigError]:
    with pytest.raises(ProtocolSpecError) as info:
        parse_protocol(data, "test")
    return {p.field: p for p in info.value.problems}


@pytest.mark.parametrize("name", NAMES)
def test_packaged_specs_load_and_have_threat_models(name: str) -> None:
    spec = load_protocol(name)
    assert spec.name == name and spec.threat_model == f"{name}.md"
    path = threat_model_path(spec)
    assert path is not None and path.read_text().startswith("# ")
    assert list_protocols() == NAMES


def test_secure_specs_match_the_choosers() -> None:
    ckks = load_protocol("dp-ckks")
    assert ckks.ckks is not None and ckks.ckks.to_params() == INTEGER_CKKS_PARAMS
    assert INTEGER_CKKS_PARAMS == choose_ckks_params(2.0**28, ckks.max_organizations, 0.05)
    assert ckks.ckks.encoding(ckks.max_organizations).step == 2.0**-15
    secagg = load_protocol("dp-secagg")
    assert secagg.secagg is not None
    chosen = choose_secagg_params(1.0, secagg.max_organizations, 1e-3, max_abs=9.0)
    assert secagg.secagg.quantization_range == chosen.quantization_range
    assert secagg.secagg.to_params().max_clients() >= secagg.max_organizations
    assert (secagg.secagg_sum_error() or 1.0) < 1e-4
    assert ckks.ckks_sum_error() == ckks.max_organizations * 2.0**-15 / 2  # quantization only


def test_dp_sgd_secagg_has_example_dp_only_and_exact_secagg_range() -> None:
    spec = load_protocol("dp-sgd-secagg")
    assert spec.dp is not None and spec.dp.organization is None
    assert spec.dp.example is not None and spec.dp.example.epsilon == 1.0
    chosen = choose_secagg_params(1.0, spec.max_organizations, 1e-3)  # no noise: max_abs = clip
    assert spec.secagg is not None
    assert spec.secagg.clipping_range == chosen.clipping_range == 1.0
    assert spec.secagg.quantization_range == chosen.quantization_range
    assert (spec.secagg_sum_error() or 1.0) < 1e-5


def test_load_by_path_and_unknown_name(tmp_path: Path) -> None:
    src = resources.files("gt_secure").joinpath("protocol_specs", "plain.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(src)
    assert load_protocol(path).name == "plain"
    with pytest.raises(ProtocolConfigError) as info:
        load_protocol("no-such-protocol")
    assert info.value.field == "name" and "dp-ckks" in str(info.value)
    with pytest.raises(ProtocolConfigError, match="path must be an existing TOML file"):
        load_protocol(tmp_path / "missing.toml")


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x\n')
    with pytest.raises(ProtocolConfigError) as info:
        load_protocol(path)
    assert info.value.field == "toml"


def test_field_errors_are_all_collected_with_values() -> None:
    data = _raw("dp-secagg")
    data["rounds"] = 0
    data["aggregation"] = "magic"
    data["dp"]["example"]["epsilon"] = -1.0
    data["dp"]["example"]["accountant"] = "gdp"
    data["secagg"]["bogus"] = 1
    del data["description"]
    problems = _problems(data)
    assert set(problems) == {
        "rounds",
        "aggregation",
        "dp.example.epsilon",
        "dp.example.accountant",
        "secagg.bogus",
        "description",
    }
    assert str(problems["rounds"]) == ("rounds must be greater than or equal to 1, got rounds=0.")
    assert "got dp.example.epsilon=-1.0." in str(problems["dp.example.epsilon"])
    assert "got aggregation='magic'" in str(problems["aggregation"])
    assert "description must be present" in str(problems["description"])


def test_secagg_cross_field_rules() -> None:
    data = _raw("dp-secagg")
    data["min_organizations"] = 2
    data["secagg"].update(reconstruction_threshold=5, clipping_range=0.5, modulus_range=2**30)
    with pytest.raises(ProtocolSpecError) as info:
        parse_protocol(data, "test")
    text = str(info.value)
    assert text.startswith("test: 5 problem(s):")
    for expected in (
        "secagg.reconstruction_threshold must be in [2, num_shares) (Flower: < num_shares), "
        "got secagg.reconstruction_threshold=5.",
        "secagg.reconstruction_threshold must be <= min_organizations=2",
        "min_organizations must be >= 3 with secagg+",
        "secagg.clipping_range must be >= dp.organization.clip_norm=1.0, "
        "got secagg.clipping_range=0.5.",
        "got secagg.modulus_range=1073741824.",
    ):
        assert expected in text


def test_ckks_cross_field_rules() -> None:
    data = _raw("dp-ckks")
    data["ckks"].update(coeff_mod_bit_sizes=[60, 60], global_scale_bits=58)
    problems = _problems(data)
    assert "at most 109 bits" in str(problems["ckks.coeff_mod_bit_sizes"])
    assert "global_scale_bits" in str(problems["ckks.global_scale_bits"])
    data = _raw("dp-ckks")
    data["ckks"]["mask_bits"] = 31  # 100 organizations * 2**30 wraps modulo q0
    assert "capacity / max_organizations" in str(_problems(data)["ckks.mask_bits"])
    data = _raw("dp-ckks")
    data["ckks"]["global_scale_bits"] = 16  # error bound ~5 at 100: no longer rounds to integers
    assert "rounds it to integers" in str(_problems(data)["ckks.global_scale_bits"])


def test_mechanism_sections_must_match_aggregation() -> None:
    data = _raw("dp-ckks")
    data["aggregation"] = "secagg+"
    problems = _problems(data)
    assert str(problems["ckks"]).startswith("ckks must be absent when aggregation='secagg+'")
    assert str(problems["secagg"]) == (
        "secagg must be present when aggregation='secagg+', got secagg=<missing>."
    )


def test_a_public_basis_is_refused_outside_secagg() -> None:
    data = _raw("ddp-ckks")
    data["dp"]["organization"]["distributed"]["basis"] = "shipped"
    assert "absent unless aggregation is 'secagg+'" in str(
        _problems(data)["dp.organization.distributed.basis"])
    data = _raw("ddp-secagg-basis")
    data["dp"]["organization"]["distributed"]["basis"] = "mine"
    assert "dp.organization.distributed.basis" in _problems(data)


def test_cli_list_show_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "list"]) == 0
    assert "dp-secagg" in capsys.readouterr().out
    assert main(["protocol", "show", "dp-ckks"]) == 0
    out = capsys.readouterr().out
    assert '"poly_modulus_degree": 4096' in out and "dp-ckks.md" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n')
    assert main(["protocol", "validate", str(bad)]) == 1
    assert "description must be present" in capsys.readouterr().err
    assert main(["protocol", "validate", "dp-secagg"]) == 0
    assert main(["protocol", "run", "no-such-protocol"]) == 2  # input error, before any Flower run
    assert "no-such-protocol" in capsys.readouterr().err
