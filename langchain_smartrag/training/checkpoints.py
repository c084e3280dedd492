"""Run folders that resume exactly: `checkpoint-STEP` directories written by `accelerate`'s `save_state`.

`save_state` holds the model (gathered when FSDP or DeepSpeed shards it), the optimizer and every process's RNG; the
loop's own counters (`LoopState`) go beside them as JSON. A checkpoint is written aside and renamed into place, so a
kill leaves no half checkpoint, and a resume reads tensors, plain values and JSON only: no file in it can run code.
SFT (on TRL) and PPO share the folder rules here: which folders are checkpoints, the refusal to mix runs, the cut of a
log back to the checkpoint resumed from, and the folder swap that replaces `final/`, PPO's `best/` and an export whole.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_smartrag._files import check_output_folder, check_run_folder

logger = logging.getLogger(__name__)

LOOP_STATE_FILE = "loop_state.json"
"""The loop's values in a checkpoint folder (JSON, not accelerate's pickled custom state)."""


class LoopState:
    """The training loop's own values (step, KL coefficient, best reward...), saved in each checkpoint as JSON."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def save(self, folder: Path) -> None:
        (folder / LOOP_STATE_FILE).write_text(json.dumps(self.values))

    def load(self, folder: Path) -> None:
        """Read the values back; a checkpoint without them (or with a file that is not a JSON object) is refused."""
        path = folder / LOOP_STATE_FILE
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{path}: missing or unreadable ({error}): resume from a checkpoint this version wrote, "
                "or start a new run"
            ) from error
        if not isinstance(values, dict) or set(values) != set(self.values):
            raise ValueError(f"{path}: expected the values {sorted(self.values)}: start a new run")
        self.values.update(values)


def checkpoints(output_dir: Path) -> list[Path]:
    """The run's `checkpoint-STEP` folders, oldest first; other names (`checkpoint-5.bak`, a copy) are left alone."""
    found = [p for p in output_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-[0-9]+", p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = checkpoints(output_dir)
    return found[-1] if found else None


def prepare_output_dir(
    output_dir: Path, resume: bool, incomplete: Callable[[Path], str | None] | None = None
) -> Path | None:
    """Create the run directory; the checkpoint to resume from (None for a new run). Refuses to mix runs.

    `incomplete(checkpoint)` says why a checkpoint was cut short by a kill or a full disk (None: it is whole) where
    the trainer does not write its checkpoints aside (TRL): a resume takes the newest whole one and deletes the
    half-written ones after it (the resumed run writes them again); a new run may start where there are only
    half-written ones. A path that is a file, or a folder that takes no new file, raises before any work.
    """
    if resume and not output_dir.is_dir():
        raise ValueError(f"no checkpoint to resume from in {output_dir}: no such folder (check --output-dir)")
    check_run_folder(output_dir)
    found = checkpoints(output_dir)
    gaps = {c: incomplete(c) for c in found} if incomplete is not None else {}
    whole = [c for c in found if gaps.get(c) is None]
    cut_short = [c for c in found if gaps.get(c) is not None]
    if resume:
        if not whole:
            detail = "; ".join(f"{c.name} {gaps[c]}" for c in cut_short)
            raise ValueError(
                f"no checkpoint to resume from in {output_dir}"
                if not detail
                else f"no complete checkpoint to resume from in {output_dir} ({detail}): start a new run "
                "(without --resume)"
            )
        step = int(whole[-1].name.split("-")[1])
        for checkpoint in cut_short:
            if int(checkpoint.name.split("-")[1]) > step:  # the resumed run saves it again
                logger.warning(
                    "%s %s (a save cut short): deleted; resuming from %s", checkpoint, gaps[checkpoint], whole[-1].name
                )
                shutil.rmtree(checkpoint, ignore_errors=True)  # every process may try
        return whole[-1]
    if whole:
        raise ValueError(f"{output_dir} holds checkpoints: pass resume=True (--resume) or choose a new output_dir")
    for checkpoint in cut_short:  # nothing in them resumes: a new run starts over them
        logger.warning("%s %s (a save cut short): deleted; starting a new run", checkpoint, gaps[checkpoint])
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def save_state(accelerator: Any, output_dir: Path, step: int, keep: int, loop: LoopState) -> Path:
    """Every process calls this: `accelerator.save_state` and the loop's values into a hidden folder, which the main
    process renames to checkpoint-STEP before pruning all but the newest `keep`.

    Not accelerate's `ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)`: it deletes the oldest
    checkpoints before writing the new one in place (a kill mid-save leaves `keep - 1` whole ones and a half one, which
    its `load_state()` then takes as the newest), names folders by save count (`checkpoints/checkpoint_N`), not step,
    and counts every folder there (a stray `checkpoint_3.bak` is deleted, one without digits makes it raise)."""
    partial = output_dir / f".checkpoint-{step}-partial"
    target = output_dir / f"checkpoint-{step}"
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        loop.save(partial)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return target


def load_state(accelerator: Any, checkpoint: Path, loop: LoopState) -> None:
    """`accelerator.load_state` (tensors and plain values only, with nothing registered for its pickled custom
    state) and the loop's JSON; an unreadable or mismatched checkpoint raises ValueError naming it."""
    loop.load(checkpoint)
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:
        raise ValueError(f"cannot resume from {checkpoint}: {error}") from error


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
    a mix of the two, and an error while writing leaves `target` as it was. A link is replaced through (the folder it
    points to is, and the link stays); a file, or the current folder (or one holding it), raises before `write` runs.
    """
    given, target = target, check_output_folder(target, None)
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
    return given


def move_folder(source: Path, destination: Path) -> None:
    """Move the folder `source` onto `destination` (a new, empty folder): a rename, or a copy then a delete where
    they lie on two file systems (a `final/` linked to another disk)."""
    try:
        os.replace(source, destination)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(source)
