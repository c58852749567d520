"""One default protocol: ``flwr run`` (pyproject), the app config and ``gt-secure demo``."""

from __future__ import annotations

import tomllib

from gt_secure.app.config import AppConfig
from gt_secure.cli.main import build_parser
from gt_secure.protocols import DEFAULT_PROTOCOL, load_protocol
from tests.cli.conftest import ROOT


def test_one_default_protocol() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["flwr"]["app"]["config"]["protocol"] == DEFAULT_PROTOCOL
    assert AppConfig().protocol == DEFAULT_PROTOCOL == "dp-sgd-secagg"
    assert build_parser().parse_args(["demo"]).protocol == DEFAULT_PROTOCOL
    assert load_protocol(DEFAULT_PROTOCOL).name == DEFAULT_PROTOCOL
