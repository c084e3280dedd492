"""PPO's actor-critic: the policy LM (a LoRA adapter) with its value head, the frozen reference adapter for the KL
penalty, and how the trained pair is saved.

The policy is the SFT adapter made trainable (`init`), else a fresh LoRA; the reference is a frozen second copy of
that adapter (a peft adapter named `reference`), or the bare base model under a fresh LoRA, so it costs no second
model. The value head is `Linear(hidden, 1)` on the policy's last hidden state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.tensors import position_ids

from .adapters import adapter_folder, trainable_adapter
from .checkpoints import replace_directory
from .export import finish_adapter
from .ppo_config import PPOConfig

VALUE_HEAD_FILE = "value_head.pt"
REFERENCE = "reference"
"""The peft adapter name of the frozen starting adapter (the KL reference)."""


class ActorCritic(torch.nn.Module):
    """The policy LM and its value head as one module (so data-parallel training syncs both).

    `forward` returns, for the last `width` tokens of each left-padded row, the logits that predicted
    them (divided by the sampling temperature) and the value of the state before each one. The value head reads
    the policy's hidden states, so the value loss also trains the policy's LoRA weights, unless `train_body` is
    False (the value warm-up: only the head learns).
    """

    def __init__(self, model: Any, value_head: torch.nn.Linear, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.value_head, self.temperature = model, value_head, temperature

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int, train_body: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        causal = self.model.get_base_model()
        hidden = causal.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
        ).last_hidden_state[:, -width - 1 : -1]
        logits = causal.get_output_embeddings()(hidden).float() / self.temperature
        values = self.value_head(hidden if train_body else hidden.detach()).squeeze(-1).float()
        return logits, values


def trainable_policy(config: PPOConfig) -> SmartRAGPolicy:
    """The policy to train: the `init` adapter, trainable, plus a frozen copy of it as the reference."""
    from peft import LoraConfig, get_peft_model

    # None: bf16 where the hardware makes it faster, on a GPU only (on a CPU, float32 keeps seeded rollouts
    # independent of their batch; see PPOConfig.bf16)
    autocast = None if config.bf16 and torch.cuda.is_available() else False
    if config.init is None:
        base = SmartRAGPolicy.load(config.base_model, autocast=autocast)
        model: Any = get_peft_model(
            base.model,
            LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
    else:
        folder = adapter_folder(config.init)
        base, model = trainable_adapter(folder, autocast=autocast)
        model.load_adapter(folder, adapter_name=REFERENCE)
    return SmartRAGPolicy(model.eval(), base.tokenizer, autocast=autocast)


def new_value_head(policy: SmartRAGPolicy, device: torch.device) -> torch.nn.Linear:
    """`Linear(hidden, 1)`, zeros: every state's value starts at 0."""
    value_head = torch.nn.Linear(policy.model.config.hidden_size, 1).to(device)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    return value_head


def reference_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int) -> torch.Tensor:
    """The KL reference's logits for the last `width` tokens: the frozen starting adapter, else the bare base.

    The reference adapter is switched in for the pass (faster than peft's per-row `adapter_names`)."""
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids(attention_mask),
        "logits_to_keep": width + 1,
    }
    if REFERENCE not in model.peft_config:
        with model.disable_adapter():
            return model(**kwargs).logits[:, :-1].float()
    model.base_model.set_adapter(REFERENCE)
    try:
        return model(**kwargs).logits[:, :-1].float()
    finally:  # switching back also makes "default" the trainable adapter again, and the reference frozen
        model.base_model.set_adapter("default")


def save_policy(policy: SmartRAGPolicy, value_head: torch.nn.Module, directory: Path, info: dict[str, Any]) -> None:
    """The policy adapter alone (not the reference), finished with its tokenizer and card (`finish_adapter`), the value
    head and `info` (`selected.json`, in the card too), replacing `directory`; written aside and swapped into place,
    so neither a reader nor a kill sees half of it."""

    def write(tmp: Path) -> None:
        policy.model.save_pretrained(tmp, selected_adapters=["default"])
        torch.save(value_head.state_dict(), tmp / VALUE_HEAD_FILE)
        (tmp / "selected.json").write_text(json.dumps(info))
        trained = "SmartRAG PPO through the serving graph (`smartrag train ppo`, `langchain_smartrag.training.ppo`)."
        finish_adapter(tmp, policy.tokenizer, {"preview": policy.preview}, trained, info)

    replace_directory(directory, write)
