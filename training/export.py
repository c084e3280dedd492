"""Export a trained adapter for shipping: half the bytes (bf16), and a base model any machine can resolve."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from langchain_smartrag.policy import EMBEDDED_BASE, embedded_cache_path

FILES = ("adapter_config.json", "adapter_model.safetensors")


def export_adapter(source: str | Path, target: str | Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write `source`'s peft adapter to `target` as `dtype` tensors, for inference.

    An adapter trained on the embedded model records that model's cache path, which only exists on the
    machine that trained it; the export records `embedded` instead, which `SmartRAGPolicy` resolves anywhere.
    Other files in `target` (a model card) are left alone.
    """
    source, target = Path(source), Path(target)
    if not (source / "adapter_config.json").exists():
        raise ValueError(f"{source}: not a peft adapter directory (no adapter_config.json)")
    config = json.loads((source / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if base and Path(base).exists() and Path(base).resolve() == embedded_cache_path().resolve():
        config["base_model_name_or_path"] = EMBEDDED_BASE
    config["inference_mode"] = True
    weights = {name: tensor.to(dtype).contiguous() for name, tensor in load_file(source / "adapter_model.safetensors").items()}
    target.mkdir(parents=True, exist_ok=True)
    save_file(weights, target / "adapter_model.safetensors", metadata={"format": "pt"})
    (target / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return target
