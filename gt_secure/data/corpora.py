"""Public text shipped with the package (extracts rebuilt by scripts/extract_corpora.py)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from gt_secure.errors import InvalidFieldError

CORPORA_DIR = Path(__file__).parent / "corpora"
CORPUS_NAMES = ("shakespeare", "wordnet", "fortunes")


@cache
def load_corpus(name: str) -> tuple[str, ...]:
    """Documents of a shipped public corpus, one string each, in a fixed order."""
    if name not in CORPUS_NAMES:
        raise InvalidFieldError("corpus", name, f"one of {list(CORPUS_NAMES)}")
    with gzip.open(CORPORA_DIR / f"{name}.txt.gz", "rt", encoding="utf-8") as fh:
        return tuple(line for line in fh.read().split("\n") if line)


def split_corpus(name: str, split: str, validation_fraction: float = 0.05) -> list[str]:
    """Deterministic train/validation split: the last ``validation_fraction`` is validation."""
    docs = load_corpus(name)
    cut = int(len(docs) * (1 - validation_fraction))
    if split == "train":
        return list(docs[:cut])
    if split == "validation":
        return list(docs[cut:])
    raise InvalidFieldError("split", split, "'train' or 'validation'")
