"""Fixtures for the auditor's suite: base model, tokenizer, public data, trainers, DP hook.

Environment:
  GT_SECURE_AUDIT_BASE     "auto" (default: shipped TinyLM checkpoint if present, else a
                           randomly initialised TinyLM with the byte tokenizer) or "random".
  GT_SECURE_AUDIT_DP_HOOK  "package.module:function" returning a DPTrainingHook: overrides the
                           default hook, the organization's Opacus DP-SGD
                           (:func:`gt_secure.audit.dp_pipeline.dp_sgd_hook`).
  GT_SECURE_AUDIT_SUMMARY  folder of the run's summary.json + summary.html (every AuditResult
                           the tests built; default runs/audits; the path is printed at the end).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
from audit_settings import HOOK_CANARIES, HOOK_SEED
from faker import Faker
from torch import nn
from transformers import LlamaForCausalLM

from gt_secure.audit.canary import CanaryManifest, make_manifest
from gt_secure.audit.dp_pipeline import dp_sgd_hook
from gt_secure.audit.finetune import TrainFn, full_finetune_trainer
from gt_secure.audit.hooks import DPTrainingHook, load_hook
from gt_secure.audit.results import RESULT_SINKS, AuditResult
from gt_secure.audit.summary import summary_row, write_summary
from gt_secure.audit.tokens import ByteTokenizer
from gt_secure.models.config import model_config

_MEASURED: list[dict[str, Any]] = []
_WRITTEN: list[str] = []


@pytest.fixture(autouse=True)
def _collect_results(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record every AuditResult a test builds, under the test's id."""
    def sink(result: AuditResult) -> None:
        _MEASURED.append(summary_row(request.node.nodeid, result))

    RESULT_SINKS.append(sink)
    yield
    RESULT_SINKS.remove(sink)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the measured numbers as summary.json + summary.html."""
    out = os.environ.get("GT_SECURE_AUDIT_SUMMARY", "runs/audits")
    json_path, html_path = write_summary(_MEASURED, out)
    _WRITTEN[:] = [str(json_path), str(html_path)]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print where the summary is."""
    if _WRITTEN:
        terminalreporter.write_line(f"audit summary ({len(_MEASURED)} audits): "
                                    f"{_WRITTEN[0]} and {_WRITTEN[1]}")


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: two threads on a shared 2-core box run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def base(_one_thread: None) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)``: the shipped TinyLM when available, else random init + bytes."""
    if os.environ.get("GT_SECURE_AUDIT_BASE", "auto") == "auto":
        from gt_secure.models.loading import checkpoint_dir, load_base

        if (checkpoint_dir("tinylm") / "model.safetensors").exists():
            return load_base("tinylm")
    torch.manual_seed(0)
    return LlamaForCausalLM(model_config("tinylm")).eval(), ByteTokenizer()


@pytest.fixture(scope="session")
def public_texts() -> list[str]:
    """Public, canary-free text (seeded Faker sentences) for training and references."""
    fake = Faker("en_US")
    fake.seed_instance(123)
    return [fake.sentence(nb_words=10) for _ in range(32)]


@pytest.fixture(scope="session")
def nonprivate_train(base: tuple[nn.Module, Any]) -> TrainFn:
    """Plain full fine-tuning for many epochs: memorises its canaries (positive control)."""
    model, tokenizer = base
    train = full_finetune_trainer(model, tokenizer, epochs=30, lr=5e-3, batch_size=4, seed=0)
    cache: dict[tuple[str, ...], nn.Module] = {}

    def cached(texts: Sequence[str]) -> nn.Module:  # identical data -> reuse the trained model
        key = tuple(texts)
        if key not in cache:
            cache[key] = train(texts)
        return cache[key]

    return cached


@pytest.fixture(scope="session")
def shipped(base: tuple[nn.Module, Any]) -> tuple[nn.Module, Any]:
    """The shipped TinyLM and BPE tokenizer (the organization's DP-SGD needs both)."""
    if isinstance(base[1], ByteTokenizer):
        pytest.skip("the DP pipeline audits need the shipped TinyLM checkpoint")
    return base


@pytest.fixture(scope="session")
def hook_manifest() -> CanaryManifest:
    """The canaries of the DPTrainingHook audits (independent fair coins)."""
    return make_manifest(HOOK_CANARIES, canary_seed=HOOK_SEED, split_seed=HOOK_SEED)


@pytest.fixture(scope="session")
def dp_hook(base: tuple[nn.Module, Any], public_texts: list[str],
            hook_manifest: CanaryManifest) -> DPTrainingHook:
    """The DP pipeline under audit: ``GT_SECURE_AUDIT_DP_HOOK`` if set, else Opacus DP-SGD."""
    spec = os.environ.get("GT_SECURE_AUDIT_DP_HOOK")
    if spec:
        return load_hook(spec)
    if isinstance(base[1], ByteTokenizer):
        pytest.skip("the default DP hook needs the shipped TinyLM checkpoint")
    model, tokenizer = base
    return dp_sgd_hook(model, tokenizer, len(public_texts) + len(hook_manifest.members))
