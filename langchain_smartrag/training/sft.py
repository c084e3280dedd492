"""Supervised warm-up (SFT) of a SmartRAG policy on TRL's `SFTTrainer`: LoRA by default, loss on completion tokens only.

The warm-up rows are tokenized here, prompt and completion apart as the policy does when it generates, and handed to
TRL with their labels; TRL runs the loop (gradient accumulation, `accelerate`/DeepSpeed/FSDP, `report_to` trackers,
checkpoints that resume exactly). Our own config (`sft_config.SFTConfig`) keeps the CLI's field names;
`trl_arguments` maps them one to one.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag._files import check_output_folder
from langchain_smartrag.hardware import bf16_is_fast
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.models import PROTOCOL_FILE

from .adapters import trainable_adapter
from .checkpoints import checkpoints, move_folder, prepare_output_dir, replace_directory, truncate_log
from .export import finish_adapter
from .sft_config import SET_BY_FLAGS, SFTConfig
from .warmup import warmup_protocol


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The warm-up rows of a file; a row without a string prompt or completion (or with a `given` not a string)
    raises naming its line."""
    rows = []
    for number, row in read_jsonl(path):
        for key in ("prompt", "completion"):
            if not isinstance(row.get(key), str):
                raise ValueError(
                    f"{path}:{number}: a warm-up row needs a string field {key!r} (training.warmup writes them)"
                )
        if not isinstance(row.get("given", ""), str):
            raise ValueError(f"{path}:{number}: a warm-up row's 'given' must be a string (the forced text)")
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
    return [row for row in rows for _ in range(copies.get(row.get("kind", ""), 1))]


def completion_example(
    tokenizer: Any, prompt: str, completion: str, max_length: int, end: bool = True, given: str = ""
) -> dict[str, list[int]]:
    """input_ids = prompt + given + completion + end-of-turn (unless not `end`: a decision word alone goes on to an
    answer); labels are -100 except on the completion tokens (`given`, the text the graph forces, is read, not learned).

    Prompt, given text and completion are tokenized apart, as the policy does when it generates. A prompt too long
    for `max_length` loses its start (the completion and what precedes it matter most).
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    prompt_ids += tokenizer(given, add_special_tokens=False).input_ids if given else []
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] * end
    prompt_ids = prompt_ids[-max(max_length - len(completion_ids), 0) :]
    return {"input_ids": prompt_ids + completion_ids, "labels": [-100] * len(prompt_ids) + completion_ids}


WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""The weights a TRL checkpoint holds (an adapter, or the whole model, in one file or shards)."""


def trl_checkpoint_gap(folder: Path) -> str | None:
    """Why a TRL checkpoint was cut short (a kill or a full disk while it was saved), or None if it was saved whole.

    TRL writes a checkpoint in place, its `trainer_state.json` last: without it, or without weights, the save never
    finished, and `--resume` takes the checkpoint before (`prepare_output_dir`).
    """
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except FileNotFoundError:
        return "is empty" if not any(folder.iterdir()) else "has no trainer_state.json"
    except (OSError, ValueError):
        return "has a trainer_state.json cut short"
    sharded = any(p.is_dir() and p.name.startswith(("pytorch_model_fsdp", "global_step")) for p in folder.iterdir())
    if not sharded and not any((folder / name).is_file() and (folder / name).stat().st_size for name in WEIGHT_FILES):
        return "has no weights (adapter_model.safetensors or model.safetensors)"
    return None


def trl_resume_gap(folder: Path) -> str | None:
    """The file a whole checkpoint lacks to resume exactly (TRL would go on without it, silently inexact): the
    optimizer's state, the scheduler's, or the random generators'; None if it has them all."""
    entries = list(folder.iterdir())
    if not any(p.is_dir() and p.name.startswith("global_step") for p in entries):  # DeepSpeed keeps its own there
        if not (
            (folder / "optimizer.pt").is_file()
            or (folder / "optimizer.bin").is_file()
            or any(p.is_dir() and "optimizer" in p.name for p in entries)
        ):
            return "optimizer.pt"
        if not (folder / "scheduler.pt").is_file():
            return "scheduler.pt"
    if not any(p.name.startswith("rng_state") and p.name.endswith(".pth") for p in entries):
        return "rng_state.pth"
    return None


def storage_full(error: BaseException) -> bool:
    """Whether `error` or one it came from is a full disk (or a file-size limit): safetensors raises its own error
    type for it, naming the cause only in its text."""
    cause: BaseException | None = error
    while cause is not None:
        if getattr(cause, "errno", None) in (errno.ENOSPC, errno.EFBIG) or any(
            words in str(cause) for words in ("No space left on device", "File too large")
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def disk_full(output_dir: Path, what: str) -> OSError:
    """The one-line error for a disk that filled while saving `what`: what to run once there is room."""
    whole = [c for c in checkpoints(output_dir) if trl_checkpoint_gap(c) is None]
    then = (
        f"rerun with --resume (it continues from {whole[-1].name}; a half-written one is skipped)"
        if whole
        else "rerun the command (no checkpoint was complete; a new run clears the half-written one)"
    )
    error = OSError(f"{output_dir}: no room on the disk to save {what}: free space, then {then}")
    error.errno = errno.ENOSPC
    return error


def trl_arguments(config: SFTConfig, bf16: bool) -> dict[str, Any]:
    """TRL's SFTConfig fields for ours, one to one (`SET_BY_FLAGS`); `trainer_args` adds or overrides any other."""
    return {
        **{trl_field: getattr(config, ours) for trl_field, ours in SET_BY_FLAGS.items()},
        "max_steps": config.max_steps or -1,
        "bf16": bf16,
        "lr_scheduler_type": "linear",
        "max_grad_norm": 1.0,
        "completion_only_loss": True,
        "use_cpu": not torch.accelerator.is_available(),  # so two CPU processes under torchrun train as one (gloo)
        "dataloader_pin_memory": torch.cuda.is_available(),
        "save_total_limit": None,  # `SFTCallback.on_save` keeps the newest `keep_checkpoints` (its docstring: why)
        **config.trainer_args,
    }


class SFTCallback(TrainerCallback):
    """metrics.jsonl on the main process, checkpoints pruned by our rules (never a stray folder), the last step logged
    and saved, and the config's learning rate after a resume (the checkpoint's scheduler would bring back its own).

    Why not transformers' own: its `save_total_limit` (`trainer_utils.rotate_checkpoints`, by modification time)
    counts every folder named `checkpoint-*` and deletes the oldest, so a user's `checkpoint-5.bak` or
    `checkpoint-final` beside the run goes (tests/unit_tests/test_reliability_training.py shows it); and it keeps its
    log only in each checkpoint's `trainer_state.json` (pruned with it) while its trackers write no JSONL, so the one
    metrics.jsonl per run that the docs and plots read, cut back on a resume (`truncate_log`), is written here.
    """

    def __init__(self, config: SFTConfig, resumed_at: int | None) -> None:
        self.config, self.resumed_at = config, resumed_at
        self.stepped = False
        """Whether a training step began: an error before one, in a resumed run, is the checkpoint's."""

    def on_train_begin(self, args: Any, state: Any, control: Any, lr_scheduler: Any = None, **kwargs: Any) -> None:
        self.start = time.perf_counter()
        if self.resumed_at is not None and lr_scheduler is not None:
            lr_scheduler.base_lrs = [self.config.learning_rate] * len(lr_scheduler.base_lrs)
            lr_scheduler.last_epoch -= 1
            lr_scheduler.step()  # the same step again, at the config's rate

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.stepped = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= state.max_steps:
            control.should_log = control.should_save = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        elapsed = time.perf_counter() - self.start
        record = {
            "step": state.global_step,
            "loss": logs["loss"],
            "lr": logs.get("learning_rate"),
            "tokens_per_second": logs.get("num_tokens", 0) / elapsed,
            "elapsed_s": elapsed,
        }
        with (Path(args.output_dir) / "metrics.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            for old in checkpoints(Path(args.output_dir))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)


def train(config: SFTConfig) -> Path:
    """Run SFT; returns the directory of the final adapter (or full model), loadable by `SmartRAGPolicy`.

    Under `accelerate launch` or `torchrun` each process takes `batch_size` examples a forward pass and the loss is
    a token-level mean over all of them, so N processes at batch_size b compute the update one process does at N * b.
    """
    import trl
    from datasets import Dataset
    from peft import LoraConfig

    output_dir = Path(config.output_dir)
    rows = copy_kinds(read_rows(config.data), config.kind_copies)
    target = "cuda" if torch.cuda.is_available() else "cpu"
    try:  # TRL's own checks on the arguments, before the run folder is made and the model loads
        arguments = trl.SFTConfig(**trl_arguments(config, config.bf16 and bf16_is_fast(target)))
    except Exception as error:
        if "deepspeed" in config.trainer_args:  # a half-built DeepSpeed config stays registered: every later model
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config  # load in this process fails

            unset_hf_deepspeed_config()
        if not config.trainer_args:
            raise
        hint = ""
        if isinstance(error, ImportError):
            package = re.search(r"'([A-Za-z0-9_.\-]+?)[<>=!~ ']", str(error))
            hint = f": install it (pip install {package.group(1) if package else 'the package it names'})"
        raise ValueError(
            f"--trainer-args: TRL's SFTConfig refused them: {type(error).__name__}: "
            f"{' '.join(str(error).split()).rstrip('.')}{hint}"
        ) from error
    checkpoint = prepare_output_dir(output_dir, config.resume, incomplete=trl_checkpoint_gap)
    lost = trl_resume_gap(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and lost:
        raise ValueError(
            f"cannot resume exactly from {checkpoint}: it has no {lost} (saved with save_only_model, or "
            f"lost since): delete {checkpoint.name} to resume from the checkpoint before it, or start a "
            "new run in a new --output-dir"
        )
    check_output_folder(output_dir / "final", None)  # not a file; a link is replaced through
    resumed_at = int(checkpoint.name.split("-")[1]) if checkpoint is not None else None
    if arguments.process_index == 0:  # a new run starts its log afresh; a resumed one cuts it back to its checkpoint
        truncate_log(output_dir / "metrics.jsonl", "step", resumed_at or 0)
    # float32 weights on the CPU; the trainer moves them to each process's device and casts per `bf16` (autocast)
    if config.init is None:
        policy = SmartRAGPolicy.load(config.base_model, autocast=False, device="cpu")
        model = policy.model
    else:  # its own LoRA weights go on training; peft_config stays None
        policy, model = trainable_adapter(config.init, autocast=False, device="cpu")
    tokenizer = policy.tokenizer
    examples = [
        completion_example(
            tokenizer, r["prompt"], r["completion"], config.max_length, r.get("end", True), r.get("given", "")
        )
        for r in rows
    ]
    if not examples:
        raise ValueError(f"{config.data}: no training examples")
    peft_config = (
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        if config.lora and config.init is None
        else None
    )
    log = SFTCallback(config, resumed_at)
    trainer = trl.SFTTrainer(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[log],
    )
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    except Exception as error:  # TRL loads the checkpoint with weights_only=True: a crafted file raises, runs nothing
        if storage_full(error):
            raise disk_full(output_dir, "a checkpoint") from error
        if checkpoint is None or log.stepped:
            raise
        raise ValueError(f"cannot resume from {checkpoint}: {error}") from error

    final, staging = output_dir / "final", output_dir / ".final-staging"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # what a run killed while saving left
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(staging))  # on every process: a sharded model gathers its weights here
    except Exception as error:
        if storage_full(error):
            raise disk_full(output_dir, "the final adapter") from error
        raise
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(staging)
        protocol = warmup_protocol(config.data)
        if protocol:  # the prompts it learned from (e.g. a preview) go with the policy
            (staging / PROTOCOL_FILE).write_text(json.dumps(protocol))
        if config.lora:  # a portable base id, smartrag.json and a model card
            start = f", from the adapter {config.init}" if config.init else ""
            finish_adapter(
                staging, None, protocol, f"SmartRAG warm-up SFT (`smartrag train sft`, TRL) on {config.data}{start}."
            )
        replace_directory(final, lambda tmp: move_folder(staging, tmp))
    trainer.accelerator.wait_for_everyone()
    return final
