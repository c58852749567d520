"""Shadow generation speed: batched adapters vs the sequential path, and their agreement.

    python -m bench.shadow [--subsets 300] [--sequential 4] [--subset-size 1024]

Times :func:`gt_secure.provider.shadow.generate_shadow_set` for K subsets (TinyLM and LLM, no DP
copies, no groups) with all adapters batched on one frozen base, and the sequential PEFT path
(:func:`gt_secure.update.finetune_lora`) on the first ``--sequential`` subsets (extrapolated to K);
reports the cosine of the two paths' updates. CUDA when present, CPU otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.docs import write_results
from gt_secure.provider.adapter import fresh_lora
from gt_secure.provider.shadow import ShadowConfig, generate_shadow_set
from gt_secure.provider.shadow_plan import plan_subsets, subset_texts
from gt_secure.update import finetune_lora, lora_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsets", type=int, default=300)
    parser.add_argument("--sequential", type=int, default=4)
    parser.add_argument("--subset-size", type=int, default=1024, help="records per subset")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the numbers here too (always: docs/results/shadow.json)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = ShadowConfig(subsets=args.subsets, subset_size=args.subset_size, groups=0, epsilons=())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as cache:
        start = time.time()
        batched = generate_shadow_set(cfg, Path(cache))
        batched_s = time.time() - start
    plans = plan_subsets(cfg.subsets, cfg.seed)
    cosines, start = [], time.time()
    for i, plan in enumerate(plans[: args.sequential]):
        texts = subset_texts(plan, cfg.subset_size)
        for name, got in (("tinylm", batched.tiny["inf"][i, -1]), ("llm", batched.llm[i, -1])):
            model, init, _, tok = fresh_lora(name, cfg.lora)
            model.to(device)
            finetune_lora(model, tok, texts, cfg.finetune(plan.seed))
            seq = lora_state(model) - init
            cosines.append(float(seq @ got / (np.linalg.norm(seq) * np.linalg.norm(got))))
    sequential_s = (time.time() - start) / args.sequential * cfg.subsets
    command = (f"python -m bench.shadow --subsets {args.subsets} --sequential "
               f"{args.sequential} --subset-size {args.subset_size}")
    row = {"command": command,
           "config": cfg.model_dump(mode="json"),
           "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "subsets": cfg.subsets, "batched_s": batched_s,
           "sequential_s_extrapolated": sequential_s, "speedup": sequential_s / batched_s,
           "min_cosine_batched_vs_sequential": min(cosines)}
    print("| device | K | batched (s) | sequential, extrapolated (s) | speed-up | min cosine |")
    print("|---|---|---|---|---|---|")
    print(f"| {row['device']} | {cfg.subsets} | {batched_s:.1f} | {sequential_s:.0f} | "
          f"{row['speedup']:.1f}x | {row['min_cosine_batched_vs_sequential']:.6f} |")
    path = write_results("shadow", row)
    print(f"wrote {path}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
