"""The provider's public basis for organization-level releases, published with the translator.

Built from public TinyLM updates only (:mod:`gt_secure.aggregation.ddp_basis` holds the basis
itself): the shipped shadow pairs' TinyLM updates (public corpora) and TinyLM LoRA fine-tunes on
each public family's public styles (:func:`gt_secure.data.families.family_public_records`,
formats and locales no organization uses), at several checkpoints. The top principal directions
of these vectors are saved as ``shipped_translator/public_basis.safetensors``; its SHA-256, the
number of rows, the ``k`` chosen by measurement (``bench/org_dp.py``'s k sweep) and the clip
norm per ``k`` (median k-space norm of held-out public updates, :func:`public_clip`) go in
``public_basis.json`` beside it, which :func:`load_public_basis` checks.

    python -m gt_secure.provider.public_basis --k 16   # rebuild and write the shipped files
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import numpy as np

from gt_secure.aggregation.ddp_basis import PublicBasis, principal_basis
from gt_secure.data.families import HELD_OUT_FAMILIES, ORG_STYLES, family_public_records
from gt_secure.errors import InvalidFieldError
from gt_secure.protocols import ProtocolSpec
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.shadow import ShadowConfig, train_batched
from gt_secure.update import LoraSpec

__all__ = ["BASIS_FILE", "PUBLIC_CONFIG", "build_public_basis", "load_public_basis",
           "public_clip", "public_updates", "published_clip", "save_public_basis", "spec_basis"]

SHIPPED = Path(__file__).parent / "shipped_translator"
BASIS_FILE, BASIS_MANIFEST = SHIPPED / "public_basis.safetensors", SHIPPED / "public_basis.json"
ROWS = 128  # directions stored; a release uses the first k
# The organizations' training recipe (bench/org_dp.py) on public records: full LoRA, the
# translator's TinyLM layout.
PUBLIC_CONFIG = ShadowConfig(steps=16, checkpoints=(8, 12, 16), batch_size=16, max_length=64,
                             lora=LoraSpec())


def public_families() -> list[str]:
    return sorted({s.family for s in ORG_STYLES.values()} - set(HELD_OUT_FAMILIES))


def public_updates(per_family: int, texts: int, cache: Path | None = None,
                   held_out: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Public TinyLM updates: (basis rows (m, d), calibration rows (h, d)). Basis rows: the
    shadow pairs' TinyLM inputs + fine-tunes on public family records (``per_family`` seeds per
    family, ``texts`` records each, every checkpoint) except the last ``held_out`` seeds of each
    family, whose first-checkpoint updates calibrate the clip norm (:func:`public_clip`)."""
    pairs = ShadowPairs.load(str(SHIPPED / "shadow_pairs.safetensors"))
    shadow = pairs.tiny.reshape(len(pairs.tiny), -1).astype(np.float64)  # (120, d)
    path = cache / f"public_family_{per_family}x{texts}.npy" if cache is not None else None
    if path is not None and path.exists():
        family = np.load(path)
    else:
        jobs = [(fam, 7000 + 97 * f + s) for f, fam in enumerate(public_families())
                for s in range(per_family)]
        records = [family_public_records(fam, texts, seed) for fam, seed in jobs]
        seeds = [seed for _, seed in jobs]
        raw = train_batched("tinylm", records, seeds, PUBLIC_CONFIG)  # (m, C, d)
        family = raw.reshape(-1, raw.shape[-1]).astype(np.float64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, family)
    d = family.shape[-1]
    grid = family.reshape(len(public_families()), per_family, len(PUBLIC_CONFIG.checkpoints), d)
    kept = grid[:, :per_family - held_out].reshape(-1, d)
    return np.concatenate([shadow, kept]), grid[:, per_family - held_out:, 0].reshape(-1, d)


def public_clip(basis: PublicBasis, calibration: np.ndarray) -> float:
    """The clip norm of a ``basis.k``-dim release: the median norm of held-out public updates'
    coordinates (public data only, so the clip norm leaks nothing)."""
    return float(np.median([np.linalg.norm(basis.project(x)) for x in calibration]))


def build_public_basis(updates: np.ndarray, rows: int = ROWS) -> PublicBasis:
    """The top ``rows`` principal directions of public ``updates`` in the translator's layout."""
    pairs = ShadowPairs.load(str(SHIPPED / "shadow_pairs.safetensors"))
    return principal_basis(updates, rows, pairs.tiny_layout.layout_hash(),
                           source=f"top principal directions of {len(updates)} public TinyLM "
                                  "updates (shipped shadow pairs + public family fine-tunes)")


def save_public_basis(basis: PublicBasis, k: int, calibration: np.ndarray,
                      measured: str) -> str:
    """Write the shipped basis and its manifest (file SHA-256, rows, chosen ``k``, the public
    clip norm per power-of-two ``k``)."""
    file_sha = basis.save(BASIS_FILE)
    sizes = sorted({2**i for i in range(1, basis.k.bit_length()) if 2**i <= basis.k} | {k})
    BASIS_MANIFEST.write_text(json.dumps({
        "file_sha256": file_sha, "rows": basis.k, "k": k, "k_sha256": basis.truncate(k).sha256(),
        "clip_norm": {str(j): public_clip(basis.truncate(j), calibration) for j in sizes}
        | {str(basis.dim): float(np.median(np.linalg.norm(calibration, axis=1)))},
        "layout_hash": basis.layout_hash, "source": basis.source, "k_chosen_by": measured},
        indent=2) + "\n")
    return file_sha


def published_clip(k: int) -> float:
    """The shipped manifest's public clip norm for a ``k``-dim release (``k = d``: the full
    update)."""
    clips = json.loads(BASIS_MANIFEST.read_text())["clip_norm"]
    if str(k) not in clips:
        raise InvalidFieldError("k", k, f"one of {sorted(map(int, clips))} (published clip norms)")
    return float(clips[str(k)])


def load_public_basis(k: int | None = None) -> PublicBasis:
    """The shipped basis (hash-checked), truncated to ``k`` (default: the published ``k``)."""
    manifest = json.loads(BASIS_MANIFEST.read_text())
    basis = PublicBasis.load(BASIS_FILE, manifest["file_sha256"])
    return basis.truncate(k or int(manifest["k"]))


def spec_basis(spec: ProtocolSpec) -> PublicBasis | None:
    """The public basis a spec's ``[dp.organization.distributed]`` releases in (``basis =
    "shipped"``, truncated to its ``k``, default the published one); None for the full update."""
    org = spec.dp.organization if spec.dp is not None else None
    dist = org.distributed if org is not None else None
    return None if dist is None or dist.basis is None else _shipped(dist.k)


@cache
def _shipped(k: int | None) -> PublicBasis:  # loaded and hash-checked once per process
    return load_public_basis(k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, required=True, help="published k (from bench/org_dp)")
    parser.add_argument("--per-family", type=int, default=12)
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--cache", type=Path, default=Path("runs/org_dp"))
    parser.add_argument("--reason", default="bench/org_dp.py k sweep",
                        help="the measurement that chose --k (kept in the manifest)")
    args = parser.parse_args()
    rows, calibration = public_updates(args.per_family, args.texts, args.cache)
    print(save_public_basis(build_public_basis(rows), args.k, calibration, args.reason))


if __name__ == "__main__":
    main()
