"""Export a trained adapter for shipping: half the bytes (bf16), and a base model any machine can resolve."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from langchain_smartrag._files import check_output_folder
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
    given, target = target, check_output_folder(target)  # before any work: not a file, not the current folder
    base = config.get("base_model_name_or_path")
    if base and Path(base).exists() and Path(base).resolve() == embedded_cache_path().resolve():
        config["base_model_name_or_path"] = EMBEDDED_BASE
    config["inference_mode"] = True
    protocol = protocol_settings(source)
    weights_file = source / "adapter_model.safetensors"
    try:
        weights = {name: tensor.to(dtype).contiguous() for name, tensor in load_file(weights_file).items()}
    except Exception as error:  # safetensors raises its own error type for a file cut short or empty
        raise ValueError(
            f"{weights_file} is not a valid safetensors file ({' '.join(str(error).split())}): save or "
            "copy the adapter again"
        ) from error

    def write(tmp: Path) -> None:
        for entry in target.iterdir() if target.is_dir() else ():
            if entry.name not in (*FILES, PROTOCOL_FILE):
                keep(entry, tmp / entry.name)
        save_file(weights, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if protocol:
            (tmp / PROTOCOL_FILE).write_text(json.dumps(protocol) + "\n")

    replace_directory(target, write)  # a link's target: the link stays
    return given


def keep(entry: Path, destination: Path) -> None:
    """Carry a file the export keeps (a model card) into the new folder: a link stays a link, a file is hard-linked
    where the file system allows (nothing copied), else copied."""

    def link_or_copy(source: str, copy: str) -> None:
        try:
            os.link(source, copy)
        except OSError:
            shutil.copy2(source, copy)

    if entry.is_symlink():
        os.symlink(os.readlink(entry), destination)
    elif entry.is_dir():
        shutil.copytree(entry, destination, symlinks=True, copy_function=link_or_copy)
    else:
        link_or_copy(str(entry), str(destination))
