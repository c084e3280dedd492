"""Training runs under interruptions (issue #25): a resume refuses pickles that would run code and still resumes
real checkpoints, a resumed run's logs hold each step once, and stray checkpoint-like folders neither block nor get
resumed. The checks that need no training run are `tests/unit_tests/test_reliability_training.py`."""

import dataclasses
import json
import shutil

import pytest
import torch

from langchain_smartrag.training import checkpoints
from langchain_smartrag.training import ppo as ppo_module
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.sft import SFTConfig
from langchain_smartrag.training.sft import train as sft_train


def sft_config(tmp_path, data, model_dir, **overrides) -> SFTConfig:
    values = {
        "data": str(data),
        "output_dir": str(tmp_path / "run"),
        "base_model": str(model_dir),
        "lora": False,
        "batch_size": 2,
        "max_steps": 2,
        "save_every": 2,
        "log_every": 1,
        "warmup_steps": 1,
        "bf16": False,
    }
    return SFTConfig(**{**values, **overrides})


def ppo_config(tmp_path, model_dir, qa_file, corpus_file, **overrides) -> PPOConfig:
    """PPO on the toy corpus from the tiny model under a fresh LoRA: 4 episodes an iteration, a 2-question dev set."""
    values = {
        "output_dir": str(tmp_path / "run"),
        "base_model": str(model_dir),
        "data": str(qa_file),
        "corpus": str(corpus_file),
        "k": 2,
        "dev_dataset": None,
        "dev_data": str(qa_file),
        "dev_limit": 2,
        "eval_every": 1,
        "iterations": 3,
        "episodes_per_iteration": 4,
        "rollout_batch_size": 4,
        "minibatch_episodes": 4,
        "lora_r": 4,
        "bf16": False,
        "progress": False,
    }
    return PPOConfig(**{**values, **overrides})


def metric_steps(run, key: str, name: str = "metrics.jsonl") -> list[int]:
    return [json.loads(line)[key] for line in (run / name).read_text().splitlines()]


# -- 1. resuming never unpickles code ---------------------------------------------------------------


class RunsCode:
    """What a crafted checkpoint holds: loading it with the full unpickler creates `marker` (any code could run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_refuses_a_checkpoint_that_would_run_code_and_still_resumes_real_ones(
    tmp_path, sft_data, tiny_model_dir
):
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir))
    crafted, marker = tmp_path / "crafted", tmp_path / "code-ran"
    shutil.copytree(tmp_path / "run", crafted)
    torch.save({"state": {}, "payload": RunsCode(marker)}, crafted / "checkpoint-2" / "optimizer.pt")
    with pytest.raises(ValueError, match=r"cannot resume from .*checkpoint-2: .*Weights only load failed"):
        sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, output_dir=str(crafted), max_steps=4, resume=True))
    assert not marker.exists()
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=4, resume=True))  # what training wrote loads
    assert metric_steps(tmp_path / "run", "step") == [1, 2, 3, 4]


def test_a_ppo_resume_never_unpickles_code_from_any_file_of_its_checkpoint(
    tmp_path, tiny_model_dir, qa_file, corpus_file
):
    ppo_module.train(ppo_config(tmp_path, tiny_model_dir, qa_file, corpus_file, iterations=2, save_every=2))
    checkpoint = tmp_path / "run" / "checkpoint-2"
    pickled = sorted(p.name for p in checkpoint.iterdir() if p.suffix in (".bin", ".pkl", ".pt", ".pth"))
    assert pickled  # accelerate's optimizer and RNG state are torch.save files; the loop's state is JSON
    for name in [*pickled, "custom_checkpoint_0.pkl"]:  # each file a resume may read, and one accelerate would
        crafted, marker = tmp_path / f"crafted-{name}", tmp_path / f"ran-{name}"
        shutil.copytree(tmp_path / "run", crafted)
        torch.save({"state": {}, "payload": RunsCode(marker)}, crafted / "checkpoint-2" / name)
        config = ppo_config(tmp_path, tiny_model_dir, qa_file, corpus_file, iterations=3, save_every=2, resume=True)
        try:
            ppo_module.train(dataclasses.replace(config, output_dir=str(crafted)))
        except ValueError as error:
            assert "cannot resume from" in str(error)
        assert not marker.exists(), name


# -- 5. a resumed run logs each step once ------------------------------------------------------------------


def test_a_resumed_sft_run_logs_each_step_once(tmp_path, sft_data, tiny_model_dir):
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=3))  # checkpoints 2 and 3
    shutil.rmtree(tmp_path / "run" / "checkpoint-3")  # as if killed after logging step 3, before its checkpoint
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=3, resume=True))
    assert metric_steps(tmp_path / "run", "step") == [1, 2, 3]


def test_a_resumed_ppo_run_logs_each_iteration_once(tmp_path, tiny_model_dir, qa_file, corpus_file):
    ppo_module.train(ppo_config(tmp_path, tiny_model_dir, qa_file, corpus_file, save_every=2))  # checkpoints 2, 3
    shutil.rmtree(tmp_path / "run" / "checkpoint-3")  # as if killed after iteration 3 was logged, before its checkpoint
    ppo_module.train(ppo_config(tmp_path, tiny_model_dir, qa_file, corpus_file, save_every=2, resume=True))
    run = tmp_path / "run"
    assert metric_steps(run, "iteration") == [0, 1, 1, 2, 2, 3, 3]  # dev before training, then rollouts and dev
    assert metric_steps(run, "iteration", "rollouts.jsonl") == [1] * 4 + [2] * 4 + [3] * 4


def test_stray_checkpoint_folders_neither_block_a_new_run_nor_are_resumed(tmp_path, sft_data, tiny_model_dir):
    for stray in ("checkpoint-5.bak", "checkpoint-final"):
        (tmp_path / "run" / stray).mkdir(parents=True)
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, resume=True))
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir))
    assert checkpoints.checkpoints(tmp_path / "run") == [tmp_path / "run" / "checkpoint-2"]
    sft_train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=3, resume=True))
    assert (tmp_path / "run" / "checkpoint-5.bak").is_dir() and (tmp_path / "run" / "checkpoint-final").is_dir()
