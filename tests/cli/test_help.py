"""Every command and option of ``gt-secure`` has help text; the demo's help states its time."""

from __future__ import annotations

import argparse

from gt_secure.cli.main import build_parser
from tests.cli.conftest import cli


def undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            documented = {choice.dest for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if name not in documented:
                    missing.append(f"{path} {name}")
                missing += undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_has_help() -> None:
    assert undocumented(build_parser(), "gt-secure") == []


def test_demo_help_states_its_measured_time() -> None:
    run = cli("demo", "--help")
    assert run.code == 0 and "2-core machine: 86-98 s" in " ".join(run.out.split())
    top = " ".join(cli("--help").out.split())
    assert "(~1.5-2.5 min)" in top and "Exit codes: 0 pass, 1 a check failed" in top
