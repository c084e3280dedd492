"""Checkpoints that resume exactly: trainable weights, optimizer, every RNG and the trainer's own state.

Written atomically (an interrupted save leaves no half checkpoint) as `checkpoint-STEP` directories, the
newest `keep` of them kept. SFT and PPO share this one copy.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import torch

from langchain_smartrag.cache import build_once

STATE_FILE = "trainer_state.pt"
WEIGHTS_FILE = "trainable.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def checkpoints(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


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


def restore(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int = 0) -> dict[str, Any]:
    """Load a checkpoint into the live model and optimizer, set the RNGs; returns the saved state (with "step").

    Unreadable or mismatched checkpoints raise ValueError naming the checkpoint.
    """
    try:
        weights = torch.load(checkpoint / WEIGHTS_FILE, map_location=next(model.parameters()).device)
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
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
