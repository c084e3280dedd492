"""SFT's one config: every setting of a warm-up SFT run (`smartrag train sft --config FILE.yaml`, each field also a
flag), checked when it is made. Apart from `sft.py` so that `smartrag train --help` lists the flags without loading
torch, transformers or TRL."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .config import accepts, describe, read_as, require_counts, require_numbers


@dataclass
class SFTConfig:
    """Every setting of a warm-up SFT run; each field's docstring is its flag's `--help` (more: docs/training.md)."""

    data: str
    """Warm-up JSONL(.gz) of {"prompt", "completion"} rows (`smartrag train warmup` writes it)."""
    kind_copies: dict[str, int] | None = None
    """Copies of each row by its "kind" per epoch (kinds not named: 1), e.g. search=3 or observed=0 (dropped)."""
    output_dir: str = "runs/sft"
    """Run folder: checkpoints, metrics.jsonl and the `final/` adapter (or model)."""
    base_model: str = "embedded-base"
    """Model to train: `embedded-base` (the bare embedded SmolLM2-135M-Instruct), a model folder or a hub id."""
    init: str | None = None
    """LoRA adapter to train further (`embedded`: the shipped one, or a folder) instead of a fresh LoRA on the base."""
    lora: bool = True
    """Train LoRA adapters on every linear layer (TRL's `peft_config`); false (--no-lora) trains the full model."""
    lora_r: int = 16
    """Rank of a fresh LoRA's update matrices."""
    lora_alpha: int = 32
    """LoRA scaling numerator of a fresh LoRA: updates are scaled by lora_alpha / lora_r."""
    lora_dropout: float = 0.05
    """Dropout probability on a fresh LoRA's inputs, 0 to 1."""
    learning_rate: float = 2e-4
    """AdamW peak learning rate, reached after `warmup_steps` and decayed linearly to 0."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay: each step shrinks the weights by learning_rate x this, relatively."""
    batch_size: int = 8
    """Examples per forward pass on each process (TRL's `per_device_train_batch_size`)."""
    grad_accum: int = 1
    """Forward passes whose gradients add up to one optimizer step."""
    epochs: int = 1
    """Passes over the warm-up rows (after `kind_copies`), unless `max_steps` stops first."""
    max_steps: int | None = None
    """Optimizer steps to stop after (None: `epochs` worth)."""
    warmup_steps: int = 10
    """Optimizer steps over which the learning rate rises linearly from 0."""
    max_length: int = 1024
    """Tokens per example at most; a longer prompt loses its start (the completion is kept)."""
    bf16: bool = True
    """bf16 mixed precision where `bf16_is_fast` says it pays (a CUDA GPU with bf16, a CPU with AMX); else float32."""
    save_every: int = 50
    """Optimizer steps between checkpoints (the last step always saves one)."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept in output_dir; older ones are deleted."""
    log_every: int = 5
    """Optimizer steps between lines of metrics.jsonl (loss, learning rate, tokens per second)."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Trackers beside metrics.jsonl, as transformers names them: tensorboard, wandb, mlflow, all, none."""
    trainer_args: dict[str, Any] = field(default_factory=dict)
    """TRL SFTConfig fields that no flag here sets, passed through: gradient_checkpointing=true deepspeed=ds.json."""
    seed: int = 0
    """Seed of the trainer: the new LoRA weights, dropout and the order of the rows."""
    resume: bool = False
    """Continue from the newest checkpoint in output_dir (without it, a folder with checkpoints is refused)."""

    def __post_init__(self) -> None:
        require_counts(
            self,
            (
                "lora_r",
                "lora_alpha",
                "batch_size",
                "grad_accum",
                "epochs",
                "max_steps",
                "max_length",
                "save_every",
                "keep_checkpoints",
                "log_every",
            ),
        )
        require_counts(self, ("warmup_steps",), least=0)
        require_numbers(self, ("learning_rate",), above=0)
        require_numbers(self, ("weight_decay",), at_least=0)
        require_numbers(self, ("lora_dropout",), at_least=0, below=1)
        if any(not isinstance(n, int) or n < 0 for n in (self.kind_copies or {}).values()):
            raise ValueError(f"kind_copies must map kinds to counts >= 0, got {self.kind_copies}")
        if self.init is not None and not self.lora:
            raise ValueError(f"init={self.init} is a LoRA adapter: it trains as one (drop --no-lora)")
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        self.trainer_args = check_trainer_args(self.trainer_args)


SET_BY_FLAGS = {
    "output_dir": "output_dir",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "warmup_steps": "warmup_steps",
    "max_length": "max_length",
    "bf16": "bf16",
    "save_steps": "save_every",
    "logging_steps": "log_every",
    "report_to": "report_to",
    "seed": "seed",
    "data_seed": "seed",
}
"""TRL's SFTConfig fields that one of ours sets, one to one (`sft.trl_arguments`): checked as ours, and read again on
a resume (the learning rate), so `trainer_args` may not set them."""

BOOKKEEPING = {
    "output_dir": lambda v: "give --output-dir (the run's checkpoints, metrics.jsonl and final/ live there together)",
    "save_only_model": lambda v: (
        None
        if v is False
        else (
            "refused: --resume needs the optimizer and RNG state in each checkpoint to continue exactly; to keep fewer "
            "checkpoints give --keep-checkpoints N"
        )
    ),
    "max_steps": lambda v: None if v >= 1 else "give --max-steps N (N >= 1), or leave it out to train --epochs",
    "num_train_epochs": lambda v: None if v > 0 else "give --epochs N (N >= 1)",
    "save_total_limit": lambda v: "give --keep-checkpoints N (the run prunes its checkpoints itself)",
}
"""TRL fields that `trainer_args` may not set (or not so), for the run's own bookkeeping: what to do instead (any
other field of `SET_BY_FLAGS`: its flag)."""


def check_trainer_args(values: Any) -> dict[str, Any]:
    """`trainer_args` checked against TRL's own `SFTConfig` before any model loads: a mapping of its field names to
    values of each field's declared type (a number YAML reads as text, `1e-8`, is read as the number), none of the
    fields our own flags set (`SET_BY_FLAGS`) nor the `BOOKKEEPING` ones the run manages itself. Each mistake raises a
    ValueError naming the key and what to give."""
    if not isinstance(values, dict):
        got = f"the text {values!r}" if isinstance(values, str) else f"a {type(values).__name__}"
        raise ValueError(
            "trainer_args must be a mapping of TRL SFTConfig fields (trainer_args: "
            "{gradient_checkpointing: true}, or --trainer-args gradient_checkpointing=true), got " + got
        )
    if not values:
        return values
    import difflib

    import trl

    hints = typing.get_type_hints(trl.SFTConfig)
    ours = {f.name for f in dataclasses.fields(SFTConfig)}
    checked = {}
    for key, value in values.items():
        where = f"--trainer-args {key}={value!r}"
        if not isinstance(key, str) or key not in hints:
            if key in ours:
                raise ValueError(f"{where}: a setting of smartrag train sft itself: give --{key.replace('_', '-')}")
            close = difflib.get_close_matches(str(key), hints, n=3)
            raise ValueError(
                f"{where}: not a field of TRL's SFTConfig (trl {trl.__version__})"
                + (f"; did you mean {' or '.join(close)}?" if close else "")
                + " (its fields: help(trl.SFTConfig))"
            )
        value = read_as(hints[key], value)
        if not accepts(hints[key], value):
            raise ValueError(f"{where}: TRL's SFTConfig.{key} takes {describe(hints[key])}")
        refusal = BOOKKEEPING[key](value) if key in BOOKKEEPING else None
        if not refusal and key in SET_BY_FLAGS:
            flag = "--" + SET_BY_FLAGS[key].replace("_", "-")
            refusal = f"smartrag train sft sets TRL's {key} from {flag}: give {flag} instead"
        if refusal:
            raise ValueError(f"{where}: {refusal}")
        checked[key] = value
    return checked
