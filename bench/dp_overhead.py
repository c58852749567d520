"""DP overhead: one DP-SGD step vs one non-private step on the TinyLM LoRA, same batch.

Every mode trains the shipped TinyLM's LoRA factors (r=2, q_proj/v_proj) with Adam on the same
fixed batch of hospital records (``--batch`` examples, max 128 tokens), so the only difference
is per-example gradients + clipping + noise. Modes are timed in interleaved rounds (less drift on
a shared machine); the median step is reported, as wall time and CPU time of the process.
Opacus's ``"ew"`` (expanded weights) is tried too and reported if it fails.

    python -m bench.dp_overhead                # 5 rounds x 8 steps, writes docs/benchmarks.md
    python -m bench.dp_overhead --rounds 2 --steps 3 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from bench.docs import DOC, write_results, write_section
from gt_secure.data.organizations import org_texts
from gt_secure.models.loading import load_base
from gt_secure.models.scoring import encode
from gt_secure.organization._opacus import PerExampleLoss
from gt_secure.organization.dp_sgd import DpSgdConfig, dp_step, make_private_training
from gt_secure.update.lora import attach_lora

HEADING = "## DP overhead"
MODES = ("plain", "hooks", "hooks+secure", "functorch", "ew")
Step = Callable[[], None]


def make_step(mode: str, data: dict[str, torch.Tensor], batch_size: int) -> Step:
    """A closure doing one optimizer step of ``mode`` on the first ``batch_size`` examples."""
    base, _ = load_base("tinylm")
    model = attach_lora(base)
    batch = [data[k][:batch_size] for k in ("input_ids", "attention_mask", "labels")]
    if mode == "plain":
        loss_fn = PerExampleLoss(model)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)

        def plain() -> None:
            opt.zero_grad(set_to_none=True)
            width = max(int(batch[1].sum(dim=1).max()), 2)
            loss_fn(*(t[:, :width] for t in batch)).mean().backward()
            opt.step()

        return plain
    secure = mode.endswith("+secure")
    cfg = DpSgdConfig(noise_multiplier=1.0, batch_size=batch_size, secure_mode=secure,
                      seed=None if secure else 0)
    # model_copy skips validation, so modes the config does not offer ("ew") can be tried.
    cfg = cfg.model_copy(update={"grad_sample_mode": mode.split("+")[0]})
    training = make_private_training(model, data, cfg)
    return lambda: (dp_step(training, batch), None)[1]


def measure(steps: dict[str, Step], rounds: int, per_round: int) -> dict[str, tuple[float, float]]:
    """Median (wall s, CPU s) per step of each mode over interleaved rounds."""
    wall: dict[str, list[float]] = {m: [] for m in steps}
    cpu: dict[str, list[float]] = {m: [] for m in steps}
    for step in steps.values():  # warm-up
        step()
    for _ in range(rounds):
        for mode, step in steps.items():
            for _ in range(per_round):
                w0, c0 = time.perf_counter(), time.process_time()
                step()
                wall[mode].append(time.perf_counter() - w0)
                cpu[mode].append(time.process_time() - c0)
    return {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="steps per mode per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    _, tokenizer = load_base("tinylm")
    data = encode(tokenizer, org_texts("hospital", "train", 64), max_length=128)
    steps: dict[str, Step] = {}
    failed: dict[str, str] = {}
    for mode in MODES:
        try:
            step = make_step(mode, data, args.batch)
            step()
            steps[mode] = step
        except Exception as err:  # noqa: BLE001 - a mode Opacus cannot run is a result
            failed[mode] = f"{type(err).__name__}: {str(err).splitlines()[0][:90]}"
    times = measure(steps, args.rounds, args.steps)
    base_wall, base_cpu = times["plain"]
    table = Table(title=f"DP-SGD step vs non-private step (TinyLM LoRA, batch {args.batch})")
    for col in ("mode", "wall ms/step", "x plain (wall)", "CPU ms/step", "x plain (CPU)"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    rows = []
    for mode in MODES:
        if mode in times:
            w, c = times[mode]
            cells = [f"{w * 1e3:.1f}", f"{w / base_wall:.2f}x", f"{c * 1e3:.1f}",
                     f"{c / base_cpu:.2f}x"]
        else:
            cells = ["failed", "-", "-", failed[mode]]
        table.add_row(mode, *cells)
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    Console().print(table)
    if not args.no_write:
        command = "python -m bench.dp_overhead " + " ".join(
            f"--{k} {v}" for k, v in (("batch", args.batch), ("rounds", args.rounds),
                                     ("steps", args.steps), ("threads", args.threads)))
        write_section("\n".join([HEADING, "",
            f"- Command: `{command}`, {time.strftime('%Y-%m-%d')}, {platform.machine()} with "
            f"{os.cpu_count()} CPU cores shared with other jobs, torch threads "
            f"{args.threads}. Median of {args.rounds * args.steps} steps per mode, modes "
            "interleaved; one Adam step on the same batch of hospital records (<= 128 tokens).",
            "- plain = per-example mean loss + backward + Adam; DP modes add Opacus per-example "
            "gradients of the LoRA factors, clipping to 1.0 and noise z=1.0 "
            "(`gt_secure.organization.dp_sgd.dp_step`). `hooks+secure` draws the noise from the "
            "OS CSPRNG (`secure_rng.csprng_normal`). Target: <= 2x.",
            "- Read the CPU columns: on a loaded machine wall time mostly measures waiting. "
            "Default `grad_sample_mode`: the DP mode with the lowest CPU ratio "
            f"(`{min((m for m in times if m != 'plain'), key=lambda m: times[m][1])}` here).",
            "",
            "| mode | wall ms/step | x plain (wall) | CPU ms/step | x plain (CPU) |",
            "|---|---|---|---|---|",
            *rows,
        ]) + "\n")
        path = write_results("dp_overhead", {
            "command": command, "failed": failed,
            "rows": [{"mode": m, "wall_s": w, "cpu_s": c, "x_plain_wall": w / base_wall,
                      "x_plain_cpu": c / base_cpu} for m, (w, c) in times.items()]})
        Console().print(f"wrote {HEADING!r} in {DOC} and {path}")


if __name__ == "__main__":
    main()
