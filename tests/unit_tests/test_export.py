"""Exporting a trained adapter for shipping, and loading it back (merged or not) as a policy."""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.cli import main
from langchain_smartrag.training.export import export_adapter

QUESTIONS = ["Who wrote Hamlet?", "What is the capital of France?", "When did Apollo 11 land?"]


@pytest.fixture
def adapter_dir(tiny_model_dir, tmp_path):
    """A LoRA adapter with non-zero weights on the tiny model, as training saves it (fp32)."""
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def p_search(policy: SmartRAGPolicy) -> list[float]:
    return policy.search_probability_batch([policy.prompt(q) for q in QUESTIONS])


def test_the_export_is_bf16_for_inference_and_keeps_a_model_card(adapter_dir, tmp_path):
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "README.md").write_text("model card")
    assert main(["train", "export", str(adapter_dir), "--output", str(tmp_path / "shipped")]) == 0
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(tmp_path / "shipped" / "adapter_model.safetensors").values()} == {torch.bfloat16}
    config = json.loads((tmp_path / "shipped" / "adapter_config.json").read_text())
    original = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["inference_mode"] and config["base_model_name_or_path"] == original["base_model_name_or_path"]
    assert (tmp_path / "shipped" / "README.md").read_text() == "model card"
    assert (tmp_path / "shipped" / "adapter_model.safetensors").stat().st_size < 0.6 * (
        adapter_dir / "adapter_model.safetensors"
    ).stat().st_size


def test_an_exported_adapter_decides_as_the_original_merged_or_not(adapter_dir, tmp_path):
    exported = export_adapter(adapter_dir, tmp_path / "shipped")
    original = p_search(SmartRAGPolicy.from_pretrained(adapter_dir, autocast=False))
    bare = p_search(
        SmartRAGPolicy.from_pretrained(
            json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"], autocast=False
        )
    )
    for merge in (False, True):
        shipped = p_search(SmartRAGPolicy.from_pretrained(exported, merge=merge, autocast=False))
        assert shipped == pytest.approx(original, abs=0.02)  # bf16 rounding of the LoRA weights only
    assert max(abs(a - b) for a, b in zip(original, bare, strict=True)) > 0.05  # the adapter does change decisions


def test_exporting_something_that_is_not_an_adapter_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="not a peft adapter directory"):
        export_adapter(tmp_path, tmp_path / "out")


def test_the_export_carries_the_preview_the_adapter_was_trained_with(adapter_dir, tmp_path):
    (adapter_dir / "smartrag.json").write_text(json.dumps({"preview": 3}))
    exported = export_adapter(adapter_dir, tmp_path / "shipped")
    assert json.loads((exported / "smartrag.json").read_text()) == {"preview": 3}
    assert SmartRAGPolicy.from_pretrained(exported, autocast=False).preview == 3
