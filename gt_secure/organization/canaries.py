"""An organization inserts an auditor's PUBLIC canary texts into its own training texts.

The auditor writes the public part with ``gt-secure audit canaries --out DIR`` and keeps the
secret part (which canaries were inserted and which held out). The organization names the public
file with its node config's ``canaries`` option, or drops it in its state directory as
``canaries.txt``; every round then trains on its texts plus those canaries, so the canaries are
records of the dataset DP-SGD protects (they count in ``N``, hence in the sample rate, and in the
data fingerprint), and the auditor can score the released artifact against the secret part.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError

STATE_FILE = "canaries.txt"


def read_public_canaries(path: str | Path) -> list[str]:
    """The canary texts of a public canary file (one per line, blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidFieldError("canaries", str(path), "an existing public canary file "
                                "(written by `gt-secure audit canaries --out DIR`)")
    texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise InvalidFieldError("canaries", str(path), "a file with at least one canary text")
    return texts


def canary_file(node_config: Mapping[str, Any], state: Path) -> Path | None:
    """The node's ``canaries`` option, else ``<state>/canaries.txt`` if present, else None."""
    if "canaries" in node_config:
        return Path(str(node_config["canaries"])).expanduser()
    default = state / STATE_FILE
    return default if default.is_file() else None


def with_canaries(texts: Sequence[str], canaries: Sequence[str], seed: int = 0) -> list[str]:
    """``texts`` plus every canary once, in a seeded shuffled order."""
    data = list(texts) + list(canaries)
    random.Random(seed).shuffle(data)
    return data
