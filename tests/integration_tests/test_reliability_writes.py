"""Nothing written is lost (issue #32, item 5), on real runs of the tiny model: `smartrag eval` on a full disk keeps
the previous results whole, a linked output or `final/` is written through its link, `--resume` skips a checkpoint
that a kill left half-written and refuses one that lost its optimizer, and a new run in a folder with an earlier
run's log starts the log afresh. The checks without a model are `tests/unit_tests/test_reliability_writes.py`."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.cli import main
from langchain_smartrag.training.sft import SFTConfig, train


def sft_config(tmp_path, data, model_dir, **overrides) -> SFTConfig:
    values = {
        "data": str(data),
        "output_dir": str(tmp_path / "run"),
        "base_model": str(model_dir),
        "lora": True,
        "lora_r": 4,
        "learning_rate": 1e-2,
        "batch_size": 1,
        "max_steps": 3,
        "save_every": 1,
        "log_every": 1,
        "warmup_steps": 1,
        "bf16": False,
    }
    return SFTConfig(**{**values, **overrides})


def weights(folder):
    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(folder / name)


def logged_steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- eval results --------------------------------------------------------------------------------------------------


def eval_argv(qa_file, corpus_file, model_dir, output):
    return [
        "eval",
        "--data",
        str(qa_file),
        "--corpus",
        str(corpus_file),
        "--policy",
        str(model_dir),
        "--batch-size",
        "3",
        "--output",
        str(output),
    ]


def disk_full_after(size: int):
    """For a subprocess: writes past `size` bytes of any file fail as on a full disk (EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return limit


def test_eval_on_a_full_disk_keeps_the_previous_results_whole(tmp_path, qa_file, corpus_file, tiny_model_dir):
    results = tmp_path / "results.json"
    results.write_text('{"previous": true}')
    code = "import sys; from langchain_smartrag.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run(
        [sys.executable, "-c", code, *eval_argv(qa_file, corpus_file, tiny_model_dir, results)],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=disk_full_after(512),
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 2, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("smartrag: error: ") and "File too large" in last and "Traceback" not in run.stderr
    assert results.read_text() == '{"previous": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl", "results.json"]  # nothing left beside it


def test_eval_writes_through_a_linked_output(tmp_path, qa_file, corpus_file, tiny_model_dir, capsys):
    (tmp_path / "kept").mkdir()
    real, link = tmp_path / "kept" / "results.json", tmp_path / "results.json"
    real.write_text("old")
    link.symlink_to(real)
    assert main(eval_argv(qa_file, corpus_file, tiny_model_dir, link)) == 0
    assert link.is_symlink() and len(json.loads(real.read_text())["records"]) == 3


# -- final/ through a link -----------------------------------------------------------------------------------------


def test_a_linked_final_folder_is_replaced_through_its_link(tmp_path, sft_data, tiny_model_dir):
    other, run = tmp_path / "OTHER", tmp_path / "run"
    other.mkdir()
    (other / "stale.txt").write_text("an earlier policy")
    run.mkdir()
    (run / "final").symlink_to(other)
    final = train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=1))
    assert (run / "final").is_symlink() and final == run / "final"
    assert (other / "adapter_model.safetensors").exists() and not (other / "stale.txt").exists()
    assert not [p.name for p in [*run.iterdir(), *tmp_path.iterdir()] if p.name.startswith(".")]  # nothing aside
    assert SmartRAGPolicy.from_pretrained(run / "final", autocast=False).search_probability(["q?"])[0] >= 0


# -- --resume ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "no trainer_state.json", "no weights"])
def test_resume_skips_a_half_written_checkpoint_for_the_last_complete_one(damage, tmp_path, sft_data, tiny_model_dir):
    straight = weights(train(sft_config(tmp_path / "a", sft_data, tiny_model_dir, max_steps=4)))
    run = tmp_path / "b" / "run"
    train(sft_config(tmp_path / "b", sft_data, tiny_model_dir, max_steps=3))  # checkpoints 2 and 3
    shutil.rmtree(run / "final")
    cut = run / "checkpoint-3"  # as a kill or a full disk leaves it
    if damage == "empty":
        shutil.rmtree(cut)
        cut.mkdir()
    elif damage == "no trainer_state.json":
        (cut / "trainer_state.json").unlink()
    else:
        (cut / "adapter_model.safetensors").write_bytes(b"")
    resumed = weights(train(sft_config(tmp_path / "b", sft_data, tiny_model_dir, max_steps=4, resume=True)))
    assert resumed.keys() == straight.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=1e-6)
    assert logged_steps(run) == [1, 2, 3, 4]


@pytest.mark.parametrize("lost", ["optimizer.pt", "rng_state.pth"])
def test_resume_refuses_a_checkpoint_missing_its_optimizer_or_rng_state(
    lost, tmp_path, sft_data, tiny_model_dir, capsys
):
    train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=2))
    (tmp_path / "run" / "checkpoint-2" / lost).unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "sft",
                "--data",
                str(sft_data),
                "--base-model",
                str(tiny_model_dir),
                "--no-bf16",
                "--max-steps",
                "3",
                "--output-dir",
                str(tmp_path / "run"),
                "--resume",
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"smartrag: error: cannot resume exactly from {tmp_path / 'run' / 'checkpoint-2'}: it has no {lost}"
    )


def test_a_new_run_where_an_earlier_one_logged_but_saved_nothing_starts_its_log_afresh(
    tmp_path, sft_data, tiny_model_dir
):
    run = tmp_path / "run"
    train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=2, save_every=5))  # only the last step saves
    shutil.rmtree(run / "checkpoint-2")  # as if killed after logging step 2, before any checkpoint
    train(sft_config(tmp_path, sft_data, tiny_model_dir, max_steps=2, save_every=5))
    assert logged_steps(run) == [1, 2]


# -- a model folder without its tokenizer -------------------------------------------------------------------------


def test_from_pretrained_of_a_model_without_its_tokenizer_says_so(tmp_path, tiny_model_dir):
    folder = tmp_path / "model-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, folder / name)
    with pytest.raises(ValueError, match=r"model-only holds a model but no tokenizer .*tokenizer.save_pretrained"):
        SmartRAGPolicy.from_pretrained(folder)


@pytest.mark.parametrize("earlier", [False, True], ids=["no checkpoint whole", "checkpoint-2 whole"])
def test_sft_on_a_full_disk_says_in_one_line_how_to_go_on(earlier, tmp_path, sft_data, tiny_model_dir):
    run = tmp_path / "run"
    argv = ["train", "sft", "--data", str(sft_data), "--base-model", str(tiny_model_dir), "--no-bf16"]
    argv += ["--max-steps", "4", "--save-every", "2", "--log-every", "1", "--output-dir", str(run)]
    if earlier:  # a first run saved checkpoint-2, then lost its later ones and final/
        assert main(argv) == 0
        shutil.rmtree(run / "checkpoint-4"), shutil.rmtree(run / "final")
        argv.append("--resume")
    code = "import sys; from langchain_smartrag.cli import main; sys.exit(main(sys.argv[1:]))"
    full = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=disk_full_after(16_384),  # the log fits; a checkpoint's optimizer state does not
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert full.returncode == 2, full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    said = [
        "smartrag: error:" + line.split("smartrag: error:")[1] for line in full.stderr.splitlines() if "error:" in line
    ]
    then = "--resume (it continues from checkpoint-2" if earlier else "rerun the command (no checkpoint was"
    assert len(said) == 1 and said[0].startswith(f"smartrag: error: {run}: no room on the disk to save a checkpoint")
    assert then in said[0]
    assert main(argv) == 0  # room again: the same command finishes the run
    assert (run / "final" / "adapter_model.safetensors").exists() and logged_steps(run) == [1, 2, 3, 4]
