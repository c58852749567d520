"""The exported (delivered) adapter names no path of the provider's checkout and loads with
``PeftModel.from_pretrained`` from another directory, in a process without the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gt_secure.models.loading import checkpoint_dir
from gt_secure.provider.adapter import adapted_model, export_adapter, fresh_lora
from gt_secure.update import UpdateVector
from tests.cli.conftest import ROOT

LOAD = """import sys, torch
from peft import PeftModel
from transformers import LlamaForCausalLM
base = LlamaForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
model = PeftModel.from_pretrained(base, sys.argv[2]).eval()
ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
with torch.no_grad():
    torch.save(model(input_ids=ids).logits, sys.argv[3])
"""


def test_exported_adapter_is_portable(tmp_path: Path) -> None:
    layout = fresh_lora("llm")[2]
    flat = np.random.default_rng(0).normal(0, 0.05, layout.size).astype(np.float32)
    update = UpdateVector(layout, flat)
    exported = export_adapter(update, tmp_path / "provider" / "adapter")
    for file in exported.iterdir():
        if file.suffix in (".json", ".md"):
            text = file.read_text()
            assert str(ROOT) not in text and str(checkpoint_dir("llm")) not in text, file.name
    config = json.loads((exported / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "gt-secure/llm"
    # another machine: the adapter copied elsewhere, its base from its own copy, no repo
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(exported, elsewhere / "adapter")
    shutil.copytree(checkpoint_dir("llm"), elsewhere / "base-llm")
    subprocess.run([sys.executable, "-c", LOAD, "base-llm", "adapter", "logits.pt"],
                   cwd=elsewhere, check=True, timeout=300, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    loaded = torch.load(elsewhere / "logits.pt")
    with torch.no_grad():
        expected = adapted_model(update).eval()(input_ids=torch.tensor([[1, 5, 9, 13, 17, 21]]))
    torch.testing.assert_close(loaded, expected.logits)
