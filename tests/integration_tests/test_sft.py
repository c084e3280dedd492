"""SFT runs: learning the action format, LoRA adapters, exact resume, clear failures, two processes under torchrun,
the CLI. The loss mask and warm-up data building are unit tests (`tests/unit_tests/test_warmup_data.py`)."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from langchain_smartrag import SmartRAGPolicy, parse_action
from langchain_smartrag.training.sft import SFTConfig, copy_kinds, train
from tests.unit_tests.test_export import hf_citizen

QUESTIONS = {
    "Who wrote Hamlet?": "[Answer] Shakespeare",
    "Capital of France?": "[Search] capital of France",
    "When did Apollo 11 land?": "[Answer] 1969",
    "Who wrote the first program?": "[Search] first computer program",
}


@pytest.fixture
def sft_data(tmp_path, tiny_model_dir):
    policy = SmartRAGPolicy.from_pretrained(tiny_model_dir)
    path = tmp_path / "warmup.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": policy.prompt(q), "completion": c}) + "\n" for q, c in QUESTIONS.items())
    )
    return path


def config(tmp_path, data, model_dir, **overrides):
    values = {
        "data": str(data),
        "output_dir": str(tmp_path / "run"),
        "base_model": str(model_dir),
        "lora": False,
        "learning_rate": 1e-2,
        "batch_size": 2,
        "max_steps": 150,
        "warmup_steps": 1,
        "bf16": False,
        "save_every": 50,
        "log_every": 5,
    }
    return SFTConfig(**{**values, **overrides})


def test_sft_lowers_the_loss_and_teaches_the_action_format(tmp_path, sft_data, tiny_model_dir):
    final = train(config(tmp_path, sft_data, tiny_model_dir))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] / 4
    policy = SmartRAGPolicy.from_pretrained(final, autocast=False)
    generations = policy.generate_batch([policy.prompt(q) for q in QUESTIONS], max_new_tokens=12)
    assert [parse_action(g.text) for g in generations] == [parse_action(c) for c in QUESTIONS.values()]


def test_lora_sft_saves_an_adapter_the_policy_loads(tmp_path, sft_data, tiny_model_dir):
    final = train(config(tmp_path, sft_data, tiny_model_dir, lora=True, lora_r=4, max_steps=3))
    hf_citizen(final)  # a base id, card, tokenizer and smartrag.json; peft alone loads it
    adapted = SmartRAGPolicy.from_pretrained(tiny_model_dir, adapter=final, autocast=False)
    assert adapted.search_probability_batch([adapted.prompt("Who wrote Hamlet?")])[0] >= 0


def test_sft_from_an_adapter_trains_its_own_lora_weights_on(tmp_path, sft_data, tiny_model_dir):
    first = train(config(tmp_path / "a", sft_data, tiny_model_dir, lora=True, lora_r=4, max_steps=3))
    further = train(
        config(
            tmp_path / "b",
            sft_data,
            tiny_model_dir,
            init=str(first),
            lora=True,
            lora_r=8,
            max_steps=1,
            learning_rate=1e-9,
        )
    )
    assert json.loads((further / "adapter_config.json").read_text())["r"] == 4  # the adapter's own, not lora_r
    before, after = load_file(first / "adapter_model.safetensors"), load_file(further / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(name.endswith("lora_B.weight") and tensor.abs().sum() > 0 for name, tensor in before.items())
    for name, tensor in before.items():  # a learning rate of 1e-9 leaves them where the first run put them
        torch.testing.assert_close(after[name], tensor, atol=1e-6, rtol=0)
    hf_citizen(further)


def test_sft_from_an_adapter_refuses_full_training(tmp_path, sft_data, tiny_model_dir):
    with pytest.raises(ValueError, match="is a LoRA adapter: it trains as one"):
        config(tmp_path, sft_data, tiny_model_dir, init="embedded", lora=False)


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, sft_data, tiny_model_dir, monkeypatch):
    settings = {"lora": True, "lora_r": 4, "lora_dropout": 0.1, "max_steps": 6, "save_every": 3, "learning_rate": 1e-2}
    straight = SmartRAGPolicy.from_pretrained(train(config(tmp_path / "a", sft_data, tiny_model_dir, **settings)))

    real_save = Trainer._save_checkpoint

    def save_then_die(trainer, *args, **kwargs):
        real_save(trainer, *args, **kwargs)
        if trainer.state.global_step == 3:
            raise KeyboardInterrupt  # the process is killed right after its first checkpoint

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", sft_data, tiny_model_dir, **settings))
    monkeypatch.setattr(Trainer, "_save_checkpoint", real_save)
    resumed = SmartRAGPolicy.from_pretrained(
        train(config(tmp_path / "b", sft_data, tiny_model_dir, resume=True, **settings))
    )
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_a_resumed_run_trains_at_its_configs_learning_rate_not_the_checkpoints(tmp_path, sft_data, tiny_model_dir):
    """The optimizer's saved state carries the old rate; a run resumed to try another must not silently keep it."""
    settings = {"max_steps": 4, "save_every": 2, "log_every": 1, "warmup_steps": 1}
    train(config(tmp_path, sft_data, tiny_model_dir, max_steps=2, save_every=2, log_every=1, learning_rate=1e-2))
    train(config(tmp_path, sft_data, tiny_model_dir, learning_rate=1e-3, resume=True, **settings))
    rates = [json.loads(line)["lr"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rates[2] == pytest.approx(1e-3 * (4 - 2) / (4 - 1))  # step 3's rate: linear decay after 1 warm-up step


def test_missing_or_corrupt_checkpoints_fail_clearly(tmp_path, sft_data, tiny_model_dir):
    with pytest.raises(ValueError, match="no checkpoint to resume from"):
        train(config(tmp_path, sft_data, tiny_model_dir, resume=True))
    train(config(tmp_path, sft_data, tiny_model_dir, max_steps=2, save_every=1))
    with pytest.raises(ValueError, match="holds checkpoints: pass resume=True"):
        train(config(tmp_path, sft_data, tiny_model_dir, max_steps=2))
    (tmp_path / "run" / "checkpoint-2" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot resume from .*checkpoint-2"):
        train(config(tmp_path, sft_data, tiny_model_dir, max_steps=4, resume=True))


def test_train_cli_warmup_then_sft_from_a_yaml_config_with_flag_overrides(
    tmp_path, tiny_model_dir, corpus_file, capsys
):
    from langchain_smartrag.cli import main

    warmup = tmp_path / "warmup.jsonl"
    flags = ["--rewrites", "1", "--policy", str(tiny_model_dir), "--corpus", str(corpus_file), "--output", str(warmup)]
    with pytest.raises(SystemExit) as exited:  # the toy corpus answers none of them: one line that says why
        main(["train", "warmup", "--datasets", "hotpotqa", "popqa", "--per-dataset", "3", "2", *flags])
    assert exited.value.code == 2 and "0 warm-up rows from 5 questions" in capsys.readouterr().err  # 3 + 2
    assert not warmup.exists()
    with pytest.raises(SystemExit) as exited:
        main(["train", "warmup", "--datasets", "hotpotqa", "popqa", "ambignq", "--per-dataset", "3", "2", *flags])
    assert exited.value.code == 2 and "one count for all or one per data set" in capsys.readouterr().err
    data = tmp_path / "sft.jsonl"  # the toy corpus answers no HotpotQA question: train on hand-made rows
    data.write_text(json.dumps({"prompt": "Question: who?\nResponse:\n", "completion": "[Answer] me"}) + "\n")
    (tmp_path / "sft.yaml").write_text(f"data: {data}\nbase_model: {tiny_model_dir}\nmax_steps: 50\nbf16: false\n")
    assert (
        main(
            [
                "train",
                "sft",
                "--config",
                str(tmp_path / "sft.yaml"),
                "--max-steps",
                "2",
                "--no-lora",
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("run/final")
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2  # the flag overrode the config's max_steps


def test_two_cpu_processes_under_torchrun_train_as_one_process_does(tmp_path, sft_data, tiny_model_dir):
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    flags = [
        "train",
        "sft",
        "--data",
        str(sft_data),
        "--base-model",
        str(tiny_model_dir),
        "--lora-r",
        "4",
        "--lora-dropout",
        "0",
        "--max-steps",
        "3",
        "--no-bf16",
        "--learning-rate",
        "1e-2",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_smartrag.cli",
            *flags,
            "--batch-size",
            "4",
            "--output-dir",
            str(tmp_path / "one"),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    launched = subprocess.run(  # batch_size is per process: two processes of 2 make the one process's step of 4
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "-m",
            "langchain_smartrag.cli",
            *flags,
            "--batch-size",
            "2",
            "--output-dir",
            str(tmp_path / "two"),
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    one = load_file(tmp_path / "one" / "final" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "final" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1  # only the main process logs


def test_kind_copies_repeat_or_drop_warmup_rows_by_kind(tmp_path, tiny_model_dir, capsys):
    from langchain_smartrag.cli import main

    rows = [
        {"kind": kind, "prompt": f"Question: q{i}?\nResponse:\n", "completion": "[Answer] a"}
        for i, kind in enumerate(["search", "observed", "direct"])
    ]
    assert [r["kind"] for r in copy_kinds(rows, {"search": 3, "observed": 0})] == ["search"] * 3 + ["direct"]
    with pytest.raises(ValueError, match=r"lacks: \['no_search'\] \(it has: \['direct', 'observed', 'search'\]\)"):
        copy_kinds(rows, {"no_search": 3})  # a misspelt kind fails instead of changing nothing
    with pytest.raises(ValueError, match="counts >= 0"):
        SFTConfig(data="w.jsonl", kind_copies={"search": -1})
    data = tmp_path / "w.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    flags = [
        "train",
        "sft",
        "--data",
        str(data),
        "--base-model",
        str(tiny_model_dir),
        "--no-lora",
        "--no-bf16",
        "--batch-size",
        "1",
        "--log-every",
        "1",
        "--output-dir",
        str(tmp_path / "run"),
    ]
    assert main([*flags, "--kind-copies", "search=3", "observed=0"]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 4  # one epoch of 3 + 0 + 1 rows at one row a step
    with pytest.raises(SystemExit):
        main([*flags, "--kind-copies", "search"])
    assert "expected KEY=VALUE, got 'search'" in capsys.readouterr().err


def test_report_to_tensorboard_is_trls_own_tracking(tmp_path, sft_data, tiny_model_dir):
    train(config(tmp_path, sft_data, tiny_model_dir, max_steps=2, log_every=1, report_to=["tensorboard"]))
    assert list((tmp_path / "run").rglob("events.out.tfevents.*"))  # under output_dir, as transformers puts them
