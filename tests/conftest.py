"""Shared fixtures: offline hub, deterministic threads."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "GT_SECURE_CACHE_DIR" not in os.environ:  # ledger verification caches: per test session
    import tempfile

    os.environ["GT_SECURE_CACHE_DIR"] = tempfile.mkdtemp(prefix="gt-secure-cache-")

import torch  # noqa: E402

torch.set_num_threads(1)  # small models; the CI machine has 2 cores shared with Flower actors
