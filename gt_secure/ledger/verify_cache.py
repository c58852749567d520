"""Incremental verification: this machine's own earlier epsilon recomputations, keyed by prefix.

Recomputing a release's running total is the slow part of ``ledger verify`` (Opacus PRV
discretises and FFT-composes the whole history, ~0.1 s a release). The recomputed values are a
deterministic function of the ledger's bytes up to that line and of the accountants' versions, so
they are cached under a key that commits to both: ``key_k = SHA-256(key_{k-1} || SHA-256(line_k))``
over the lines as they are in the file, starting from the accountants' versions. Any changed,
removed or inserted byte before or at a line changes its key, and the value is recomputed; the
recorded values in the line are compared afresh every time. Only numbers this verifier computed
itself are stored (``ledger verify --no-cache`` recomputes everything and stores nothing).

Cache folder: ``$GT_SECURE_CACHE_DIR`` or ``$XDG_CACHE_HOME/gt-secure`` or ``~/.cache/gt-secure``;
one file per ledger (named by its first line's hash), written atomically with mode 0600. A cache
that cannot be read or written is ignored, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

Values = tuple[float, float, float, float]  # opacus spent, opacus total, reference spent, total


def cache_root() -> Path:
    """The folder of this user's verification caches."""
    if explicit := os.environ.get("GT_SECURE_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gt-secure"


def _versions() -> str:
    found = []
    for name in ("gt-secure", "opacus", "dp-accounting", "numpy", "scipy"):
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=?")
    return ";".join(found)


class AccountingCache:
    """Recomputed epsilons of one ledger's release lines, keyed by the running prefix hash."""

    def __init__(self, first_line: bytes, root: Path | None = None) -> None:
        name = hashlib.sha256(first_line).hexdigest()
        self.path = (root or cache_root()) / "verified-accounting" / f"{name}.json"
        self._key = hashlib.sha256(_versions().encode()).digest()
        self._stored = self._load()
        self._seen: dict[str, list[float]] = {}

    def _load(self) -> dict[str, list[float]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def advance(self, line: bytes) -> None:
        """Move the running key past ``line`` (call for every line, in file order)."""
        self._key = hashlib.sha256(self._key + hashlib.sha256(line).digest()).digest()

    def get(self) -> Values | None:
        """The values stored for the current prefix, if this machine computed them before."""
        value = self._stored.get(self._key.hex())
        if (isinstance(value, list) and len(value) == 4
                and all(isinstance(v, float | int) for v in value)):
            self._seen[self._key.hex()] = value
            return (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
        return None

    def put(self, values: Values) -> None:
        """Remember the values recomputed for the current prefix."""
        self._seen[self._key.hex()] = list(values)

    def save(self) -> None:
        """Write what this verification used (older keys of this ledger are dropped)."""
        if self._seen == self._stored:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as handle:
                json.dump(self._seen, handle)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError:
            return
