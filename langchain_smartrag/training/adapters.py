"""A LoRA adapter loaded to be trained further: SFT from the shipped adapter (`init: embedded`), PPO from an SFT one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.models import TRAINED_ADAPTER, adapter_base, loadable_base, peft_model


def adapter_folder(init: str | Path) -> Path:
    """The folder an `init` setting names: `embedded` is the shipped adapter; else a folder that holds an adapter."""
    folder = TRAINED_ADAPTER if str(init) == "embedded" else Path(init)
    if not (folder / "adapter_config.json").exists():
        raise ValueError(f"init={init}: not a peft adapter directory (no adapter_config.json)")
    return folder


def trainable_adapter(init: str | Path, **kwargs: Any) -> tuple[SmartRAGPolicy, Any]:
    """The base model the adapter records, as a policy (`kwargs`: `from_pretrained`'s), and the adapter on it with
    its LoRA weights trainable (a `PeftModel`)."""
    folder = adapter_folder(init)
    base = SmartRAGPolicy.from_pretrained(loadable_base(adapter_base(folder)), **kwargs)
    return base, peft_model(base.model, folder, trainable=True)
