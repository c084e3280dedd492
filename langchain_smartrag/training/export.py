"""Export a trained adapter for shipping: half the bytes (bf16), and a base model any machine can resolve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from langchain_smartrag.models import EMBEDDED_BASE, PROTOCOL_FILE, embedded_cache_path, protocol_settings

from .checkpoints import replace_directory

FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_config(source: Path) -> dict[str, Any]:
    """`source`'s peft adapter config; a folder without the adapter's files, or a config that is not a JSON object,
    raises naming the file."""
    for name in FILES:
        if not (source / name).exists():
            raise ValueError(f"{source}: not a peft adapter directory (no {name})")
    path = source / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"{path}: not valid JSON ({error}): save the adapter again") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object but {type(config).__name__}: save the adapter again")
    return config


def export_adapter(source: str | Path, target: str | Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write `source`'s peft adapter to `target` as `dtype` tensors, for inference.

    An adapter trained on the embedded model records that model's cache path, which only exists on the
    machine that trained it; the export records `embedded` instead, which `SmartRAGPolicy` resolves anywhere.
    The protocol settings it was trained with (`smartrag.json`, e.g. its preview) go with it. Other files in
    `target` (a model card) are kept. The export is written beside `target` and swapped into
    place, so an interrupted one leaves the previous export whole, never new weights with an old config.
    """
    source, target = Path(source), Path(target)
    config = adapter_config(source)
    base = config.get("base_model_name_or_path")
    if base and Path(base).exists() and Path(base).resolve() == embedded_cache_path().resolve():
        config["base_model_name_or_path"] = EMBEDDED_BASE
    config["inference_mode"] = True
    protocol = protocol_settings(source)
    weights = {name: tensor.to(dtype).contiguous() for name, tensor in load_file(source / "adapter_model.safetensors").items()}

    def write(tmp: Path) -> None:
        for entry in target.iterdir() if target.is_dir() else ():
            if entry.name not in (*FILES, PROTOCOL_FILE):
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, tmp / entry.name)
        save_file(weights, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if protocol:
            (tmp / PROTOCOL_FILE).write_text(json.dumps(protocol) + "\n")

    return replace_directory(target, write)
