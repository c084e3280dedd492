"""Export a trained adapter for shipping: half the bytes (bf16), and a base model any machine can resolve. Every adapter
training saves (SFT's `final/`, PPO's) or exports is finished the same way (`finish_adapter`): a portable base id,
its tokenizer, `smartrag.json` and a model card, so `peft.AutoPeftModelForCausalLM` loads it wherever its base loads."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from langchain_smartrag._files import check_output_folder
from langchain_smartrag.models import (
    EMBEDDED_HUB_ID,
    PROTOCOL_FILE,
    TOKENIZER_FILES,
    embedded_model_dir,
    loadable_base,
    portable_base,
    protocol_settings,
)

from .checkpoints import replace_directory

FILES = ("adapter_config.json", "adapter_model.safetensors")
CARD = "README.md"
"""An adapter's model card (Hugging Face's name for it)."""
PEFT_TEMPLATE = "[More Information Needed]"
"""In the blank card peft's `save_pretrained` writes: a card with it is replaced, any other kept."""

PROTOCOL = """The SmartRAG protocol (arXiv 2410.18141): one policy decides whether to retrieve, writes the search query
and answers. Its completions start with an action word: `[Search] <query>` to retrieve, `[Answer] <answer>` to
answer. After a search the prompt is rebuilt with `Observation: <retrieved text>` after the question; at the retrieval
quota the answer is forced. The decision is P(search) = P("[Search]") / (P("[Search]") + P("[Answer]")) against a
threshold (0.5 by default) that trades retrievals for accuracy without retraining. The prompts are
`langchain_smartrag.protocol`'s; serve the adapter through `langchain-smartrag` to get them right."""


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


def model_card(base: str, trained: str, results: dict[str, Any] | None = None) -> str:
    """A model card for an adapter on `base`: Hugging Face's metadata (base model, library peft), how it was trained,
    its results where the trainer has them, the protocol and how to load it."""
    hub = base == EMBEDDED_HUB_ID or not Path(base).exists()
    metadata = [
        "---",
        *([f"base_model: {base}"] if hub else []),
        "library_name: peft",
        "pipeline_tag: text-generation",
        "tags: [smartrag, lora, retrieval-augmented-generation, langchain, langgraph]",
        "---",
    ]
    table = ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in (results or {}).items())]
    return "\n".join(
        [
            *metadata,
            f"\n# SmartRAG adapter for {base}\n",
            "A LoRA adapter (peft) that makes its base model a SmartRAG policy: it decides when to search, writes the",
            "query and answers, trained with the retriever in the loop (`langchain-smartrag`).\n",
            f"## How it was trained\n\n{trained}\n",
            *(["## Results\n", *table, ""] if results else []),
            f"## Protocol\n\n{PROTOCOL}\n",
            "## Load it\n",
            "```python",
            "from langchain_smartrag import SmartRAGPolicy, BM25Retriever, create_smartrag_graph",
            "",
            'policy = SmartRAGPolicy.from_pretrained("THIS_FOLDER")  # its base from adapter_config.json',
            "graph = create_smartrag_graph(policy, BM25Retriever.bundled(k=4))",
            "```\n",
            'or, as any peft adapter: `peft.AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER")`.',
            "`smartrag.json` holds the protocol settings it was trained with.",
            "",
        ]
    )


def base_tokenizer(base: str) -> Any:
    """The tokenizer of an adapter's recorded base (the embedded model's for its hub id), for an adapter saved
    without one; None, with a warning, when the base cannot be loaded here (offline, or not on this machine): the
    adapter is still whole, and whoever loads it loads its base's tokenizer."""
    from transformers import AutoTokenizer

    source = embedded_model_dir() if loadable_base(base) == "embedded" else base
    try:
        return AutoTokenizer.from_pretrained(source)
    except Exception as error:  # noqa: BLE001 -- transformers raises OSError, ValueError or hub errors
        warnings.warn(
            f"the adapter has no tokenizer and its base {base!r} cannot be loaded here "
            f"({' '.join(str(error).split())[:200]}): saved without one",
            stacklevel=3,
        )
        return None


def finish_adapter(
    folder: Path, tokenizer: Any, protocol: dict[str, Any], trained: str, results: dict[str, Any] | None = None
) -> None:
    """Make a saved peft adapter a Hugging Face citizen: its config records a portable base id (the hub id for the
    embedded model), and it holds its tokenizer (the base's when None is given and it has none), `smartrag.json` and
    a model card (unless it has one of its own, not peft's blank template)."""
    config = adapter_config(folder)
    config["base_model_name_or_path"] = portable_base(config.get("base_model_name_or_path") or "")
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is None and not any((folder / name).exists() for name in TOKENIZER_FILES):
        tokenizer = base_tokenizer(config["base_model_name_or_path"])
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    (folder / PROTOCOL_FILE).write_text(json.dumps({"preview": 0, **protocol}) + "\n")
    card = folder / CARD
    if not card.exists() or PEFT_TEMPLATE in card.read_text(encoding="utf-8", errors="replace"):
        card.write_text(model_card(config["base_model_name_or_path"], trained, results))


def export_adapter(source: str | Path, target: str | Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write `source`'s peft adapter to `target` as `dtype` tensors, for inference.

    An adapter trained on the embedded model may record that model's cache path (which only exists on the machine
    that trained it) or `embedded`; the export records the model's hub id, which peft and `SmartRAGPolicy` resolve
    anywhere (`finish_adapter`). The protocol settings it was trained with (`smartrag.json`, e.g. its preview), its
    tokenizer (the base's if it has none) and its model card go with it; other files in `target` (a model card of
    your own) are kept. The export is written beside `target` and swapped into place, so an interrupted one leaves
    the previous export whole, never new weights with an old config.
    """
    source, target = Path(source), Path(target)
    config = adapter_config(source)
    given, target = target, check_output_folder(target)  # before any work: not a file, not the current folder
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
        for entry in source.iterdir():  # its tokenizer and card, unless the target keeps its own
            carried = entry.name.startswith(("tokenizer", "special_tokens", "chat_template")) or entry.name == CARD
            if carried and not (tmp / entry.name).exists():
                keep(entry, tmp / entry.name)
        finish_adapter(tmp, None, protocol, f"Exported in {str(dtype).removeprefix('torch.')} for inference.")

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
