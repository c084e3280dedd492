"""Checkpoints that resume exactly: trainable weights, optimizer, every RNG and the trainer's own state.

Written atomically (an interrupted save leaves no half checkpoint) as `checkpoint-STEP` directories, the
newest `keep` of them kept, and read back as tensors and plain values only (a crafted file cannot run code).
SFT and PPO share this one copy, the cut of their logs back to the checkpoint resumed from, and the folder swap
that replaces PPO's `best/` and an export whole.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from langchain_smartrag.cache import build_once

STATE_FILE = "trainer_state.pt"
WEIGHTS_FILE = "trainable.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def checkpoints(output_dir: Path) -> list[Path]:
    """The run's `checkpoint-STEP` folders, oldest first; other names (`checkpoint-5.bak`, a copy) are left alone."""
    found = [p for p in output_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-[0-9]+", p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = checkpoints(output_dir)
    return found[-1] if found else None


def prepare_output_dir(output_dir: Path, resume: bool) -> Path | None:
    """Create the run directory; the checkpoint to resume from (None for a new run). Refuses to mix runs."""
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            raise ValueError(f"no checkpoint to resume from in {output_dir}")
        return checkpoint
    if output_dir.exists() and checkpoints(output_dir):
        raise ValueError(f"{output_dir} holds checkpoints: pass resume=True (--resume) or choose a new output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    return None


def save_checkpoint(
    output_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    state: dict[str, Any], rng_states: list[torch.Tensor], keep: int,
) -> None:
    """Write checkpoint-STEP; `rng_states` holds torch's RNG state of every process, by rank."""

    def write(tmp: Path) -> None:
        torch.save(trainable_state(model), tmp / WEIGHTS_FILE)
        torch.save({**state, "step": step, "optimizer": optimizer.state_dict(), "torch_rng": rng_states,
                    "python_rng": random.getstate()}, tmp / STATE_FILE)

    build_once(output_dir / f"checkpoint-{step}", write)
    for old in checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)


def checkpoint_all(
    accelerator: Any, output_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    state: dict[str, Any], keep: int,
) -> None:
    """Call from every process: their RNG states are gathered, the main process writes, all wait for it."""
    from accelerate.utils import gather_object

    rng_states = gather_object([torch.get_rng_state()])
    if accelerator.is_main_process:
        save_checkpoint(output_dir, step, model, optimizer, state, rng_states, keep)
    accelerator.wait_for_everyone()


def load_plain(path: Path, device: torch.device | str) -> Any:
    """`torch.load` of tensors and plain values only: a crafted checkpoint could otherwise run code as it loads."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path.name} holds something other than tensors and plain values (a corrupt file, or objects "
                         f"that could run code when loaded, which are refused): delete {path.parent.name} to resume "
                         "from an earlier checkpoint") from error


def restore(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int = 0) -> dict[str, Any]:
    """Load a checkpoint into the live model and optimizer, set the RNGs; returns the saved state (with "step").

    Only tensors and plain values are loaded (a crafted file cannot run code); unreadable or mismatched checkpoints
    raise ValueError naming the checkpoint.
    """
    try:
        weights = load_plain(checkpoint / WEIGHTS_FILE, next(model.parameters()).device)
        state = load_plain(checkpoint / STATE_FILE, "cpu")
        missing = set(trainable_state(model)) - set(weights)
        if missing:
            raise ValueError(f"it lacks {len(missing)} trainable tensors, e.g. {min(missing)}")
        if len(state["torch_rng"]) <= rank:
            raise ValueError(f"it was written by {len(state['torch_rng'])} processes, this is process {rank}")
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(state["optimizer"])
    except Exception as error:
        raise ValueError(f"cannot resume from {checkpoint}: {error}") from error
    torch.set_rng_state(state["torch_rng"][rank])
    random.setstate(state["python_rng"])
    return state


def truncate_log(path: Path, key: str, step: int) -> None:
    """Keep the rows of a JSONL log whose `key` is at most `step`: a run resumed from checkpoint-`step` logs again
    what came after it. Rewritten aside and renamed into place."""

    def logged_by_then(line: str) -> bool:
        try:
            return json.loads(line)[key] <= step
        except (ValueError, KeyError, TypeError):  # a row cut short by the kill
            return False

    if path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in path.read_text().splitlines() if logged_by_then(line)))
        os.replace(tmp, path)


def replace_directory(target: Path, write: Callable[[Path], None]) -> Path:
    """Replace the folder `target` with what `write(tmp)` puts in a new folder beside it.

    The new folder is written aside, the old one renamed away, the new one renamed in, then the old one deleted: a kill
    leaves the old folder or the new one whole (between the renames, the old one under a hidden name beside it), never
    a mix of the two, and an error while writing leaves `target` as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}-{secrets.token_hex(4)}"
    old = tmp.with_name(f"{tmp.name}-old")
    tmp.mkdir()
    try:
        write(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target
