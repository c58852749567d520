"""Adapter delivery: the organization keeps only a vector whose hash and base model match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord

from gt_secure.app.delivery import ADAPTER, KEY_HASH, adapter_message, receive_adapter
from gt_secure.data.organizations import org_texts
from gt_secure.errors import InvalidFieldError
from gt_secure.provider.adapter import export_adapter, fresh_lora
from gt_secure.update import UpdateVector


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = fresh_lora("llm")[2]
    flat = np.random.default_rng(0).normal(0, 0.05, layout.size).astype(np.float32)
    return export_adapter(UpdateVector(layout, flat), tmp_path_factory.mktemp("provider"))


def test_delivered_adapter_is_kept_and_scored(adapter_dir: Path, tmp_path: Path) -> None:
    texts = org_texts("bank", "validation", 8)

    kept, metrics = receive_adapter(adapter_message(2, adapter_dir), tmp_path, 7, texts)

    assert kept == tmp_path / "adapters" / "7-round2"
    sent = UpdateVector.load(adapter_dir / "update_vector.safetensors")
    assert UpdateVector.load(kept / "update_vector.safetensors").content_hash() == \
        sent.content_hash()
    assert metrics["texts"] == 8
    assert metrics["base_llm_ppl"] != metrics["generated_llm_ppl"]  # the adapter is applied
    assert all(1 < metrics[k] < 1e5 for k in ("base_llm_ppl", "generated_llm_ppl"))


def test_tampered_adapter_is_refused_and_nothing_kept(adapter_dir: Path, tmp_path: Path) -> None:
    content = adapter_message(1, adapter_dir)
    record = dict(content[ADAPTER])
    record[KEY_HASH] = "0" * 64
    content[ADAPTER] = ConfigRecord(record)

    with pytest.raises(InvalidFieldError, match="adapter.llm_update_hash"):
        receive_adapter(content, tmp_path, 7, org_texts("bank", "validation", 4))
    assert not (tmp_path / "adapters").exists()
