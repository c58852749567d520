"""``gt-secure pretrain``: rebuild the shipped tokenizer and base checkpoints from public text."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pretrain", help="pretrain TinyLM and LLM from scratch (slow)")
    parser.add_argument("models", nargs="*", default=["tinylm", "llm"],
                        help="models to pretrain: tinylm, llm (default: both)")
    parser.add_argument("--tokens", type=int, default=0,
                        help="token budget per model (0: the shipped models' budget)")
    parser.add_argument("--reuse-tokenizer", action="store_true",
                        help="keep the shipped tokenizer instead of training a new one")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gt_secure.models.pretrain import DEFAULT_TOKENS, main

    budgets = {m: args.tokens or DEFAULT_TOKENS[m] for m in args.models}
    main(budgets, reuse_tokenizer=args.reuse_tokenizer)
    return 0
