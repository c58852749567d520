"""Reproducible from-scratch pretraining of the base models on shipped public text.

``gt-secure pretrain`` (or ``python -m gt_secure.models.pretrain``) rebuilds the tokenizer and both
checkpoints in ``gt_secure/models/checkpoints``; the demo never calls it.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from gt_secure.data.corpora import CORPUS_NAMES, split_corpus
from gt_secure.data.shadow import arithmetic_texts, directory_texts
from gt_secure.models.config import model_config
from gt_secure.models.tokenizer import save_tokenizer, train_tokenizer

CHECKPOINTS = Path(__file__).parent / "checkpoints"


class PretrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    tokens: int  # training token budget
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 100
    seed: int = 0


def pretraining_texts(split: str) -> list[str]:
    texts: list[str] = []
    for name in CORPUS_NAMES:
        texts += split_corpus(name, split)
    seed = 0 if split == "train" else 1
    n = 6000 if split == "train" else 300
    texts += arithmetic_texts(n, seed) + directory_texts(n, seed)
    random.Random(seed).shuffle(texts)
    return texts


def token_stream(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> torch.Tensor:
    ids = tokenizer(texts)["input_ids"]  # each text ends with </s>
    return torch.tensor([t for seq in ids for t in seq], dtype=torch.long)  # (N,)


@torch.no_grad()
def perplexity(
    model: LlamaForCausalLM,
    stream: torch.Tensor,
    seq_len: int = 128,
    max_batches: int = 50,
    batch_size: int = 16,
) -> float:
    """Token-level perplexity over contiguous windows of ``stream``."""
    model.eval()
    n = (len(stream) - 1) // seq_len
    windows = stream[: n * seq_len].view(n, seq_len)  # (n, T)
    total, count = 0.0, 0
    for start in range(0, min(n, max_batches * batch_size), batch_size):
        batch = windows[start : start + batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        total += loss.item() * batch.numel()
        count += batch.numel()
    return math.exp(total / count)


def pretrain(
    cfg: PretrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    train: torch.Tensor,
    valid: torch.Tensor,
    out_dir: Path,
) -> dict[str, float]:
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(model_config(cfg.name))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1, betas=(0.9, 0.95))
    steps = cfg.tokens // (cfg.seq_len * cfg.batch_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.time()
    for step in range(steps):
        lr_scale = (
            min(1.0, (step + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / steps))
        )
        for group in opt.param_groups:
            group["lr"] = cfg.lr * max(lr_scale, 0.05)
        idx = torch.randint(0, len(train) - cfg.seq_len - 1, (cfg.batch_size,), generator=gen)
        batch = torch.stack([train[i : i + cfg.seq_len] for i in idx])  # (B, T)
        model.train()
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            rate = (step + 1) * cfg.seq_len * cfg.batch_size / (time.time() - start)
            print(
                f"[{cfg.name}] step {step}/{steps} loss {loss.item():.3f} {rate:.0f} tok/s",
                flush=True,
            )
    metrics = {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "train_tokens": float(steps * cfg.seq_len * cfg.batch_size),
        "validation_perplexity": perplexity(model, valid),
        "train_seconds": time.time() - start,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    save_tokenizer(tokenizer, out_dir)  # type: ignore[arg-type]
    (out_dir / "pretrain.json").write_text(
        json.dumps({"config": cfg.model_dump(), **metrics}, indent=2)
    )
    return metrics


DEFAULT_TOKENS = {"tinylm": 1_500_000, "llm": 1_200_000}


def main(tokens: dict[str, int] | None = None, reuse_tokenizer: bool = False) -> None:
    """Train the tokenizer (or reuse the shipped one) and pretrain the models in ``tokens``."""
    budgets = tokens or DEFAULT_TOKENS
    train_texts, valid_texts = pretraining_texts("train"), pretraining_texts("validation")
    if reuse_tokenizer:
        from gt_secure.models.loading import load_tokenizer

        tokenizer = load_tokenizer("tinylm")
    else:
        tokenizer = train_tokenizer(train_texts)
        for name in budgets:
            save_tokenizer(tokenizer, CHECKPOINTS / name)
    train, valid = token_stream(tokenizer, train_texts), token_stream(tokenizer, valid_texts)
    print(f"tokenizer: {len(tokenizer)} tokens; train stream {len(train)}, validation {len(valid)}")
    for name, budget in budgets.items():
        metrics = pretrain(
            PretrainConfig(name=name, tokens=budget), tokenizer, train, valid, CHECKPOINTS / name
        )
        print(name, metrics, flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", default=list(DEFAULT_TOKENS))
    parser.add_argument("--reuse-tokenizer", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    main({n: DEFAULT_TOKENS[n] for n in args.models}, reuse_tokenizer=args.reuse_tokenizer)
