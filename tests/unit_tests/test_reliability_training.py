"""Training and the CLI under bad input and interruptions (issue #25): data set names are not paths, an output is
checked before the work, exports and `best/` are replaced whole, nonsense counts are refused where they are read, and
user mistakes are one line that names the file, the row and the fix (`smartrag: error: ...`, exit status 2). The
checks that need a training run (resuming never unpickles code, a resumed run logs each step once, stray checkpoint
folders) are `tests/integration_tests/test_reliability_training_runs.py`."""

import gzip
import json
import os
import shutil

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from langchain_smartrag import BM25Retriever, SmartRAGPolicy
from langchain_smartrag.cli import main
from langchain_smartrag.training import DATA_DIR, dataset_path, load_qa
from langchain_smartrag.training import export as export_module
from langchain_smartrag.training.actor_critic import save_policy, trainable_policy
from langchain_smartrag.training.export import export_adapter
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.sft import read_rows
from tests.toy_data import QA, WARMUP, write_jsonl


def make_adapter(model_dir, directory, r: int, seed: int):
    """A LoRA adapter with non-zero weights on the tiny model, as training saves it."""
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(r=r, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(directory)
    return directory


def cli_error(capsys, argv) -> str:
    """Run the CLI on a user's mistake: it must exit with status 2 and no traceback; returns what it wrote to stderr."""
    capsys.readouterr()  # what the test's set-up printed is not the CLI's
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# -- 2. data set names are names ----------------------------------------------------------------------


def test_a_data_set_is_named_never_given_as_a_path(tmp_path, qa_file, corpus_file, tiny_model_dir, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(qa_file, outside / "dev.jsonl")
    escape = os.path.relpath(outside, DATA_DIR)  # ../../tmp/.../outside
    for name in (escape, str(outside), "hotpotqa/../popqa"):
        with pytest.raises(ValueError, match=r"unknown data set .*: give one of .*hotpotqa, musique, nq, popqa"):
            dataset_path(name, "dev")
    with pytest.raises(ValueError, match=r"no \.\./popqa/dev split for data set 'hotpotqa' .*\(splits: dev, train\)"):
        dataset_path("hotpotqa", "../popqa/dev")
    err = cli_error(
        capsys,
        [
            "eval",
            "--dataset",
            escape,
            "--corpus",
            corpus_file,
            "--policy",
            tiny_model_dir,
            "--output",
            tmp_path / "results.json",
        ],
    )
    assert err.startswith(f"smartrag: error: unknown data set {escape!r}") and err.count("\n") == 1
    assert not (tmp_path / "results.json").exists()


# -- 3. the output is checked before the work ---------------------------------------------------------


@pytest.mark.parametrize("output", ["a-file/results.json", "a-folder"])
def test_eval_refuses_an_output_it_cannot_write_before_loading_the_model(
    output, tmp_path, qa_file, corpus_file, capsys
):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    # the policy does not exist: had the model been loaded first, that would be the error
    err = cli_error(
        capsys,
        [
            "eval",
            "--data",
            qa_file,
            "--corpus",
            corpus_file,
            "--policy",
            tmp_path / "no-model",
            "--output",
            tmp_path / output,
        ],
    )
    assert err.startswith(f"smartrag: error: --output {tmp_path / output}: cannot write there")


# -- 4. and 5. replaced whole, never half ----------------------------------------------------------------


def test_an_interrupted_re_export_leaves_the_previous_export_whole(tiny_model_dir, tmp_path, monkeypatch):
    first = make_adapter(tiny_model_dir, tmp_path / "first", r=4, seed=0)
    second = make_adapter(tiny_model_dir, tmp_path / "second", r=8, seed=1)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "README.md").write_text("model card")
    export_adapter(first, shipped)
    before = {path.name: path.read_bytes() for path in shipped.iterdir()}
    real_save = export_module.save_file

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the new weights were written

    monkeypatch.setattr(export_module, "save_file", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        export_adapter(second, shipped)
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == before  # old weights with the old config
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "second", "shipped"]  # nothing left aside
    monkeypatch.undo()
    export_adapter(second, shipped)
    assert json.loads((shipped / "adapter_config.json").read_text())["r"] == 8
    assert (
        load_file(shipped / "adapter_model.safetensors").keys()
        == load_file(second / "adapter_model.safetensors").keys()
    )
    assert (shipped / "README.md").read_text() == "model card"
    assert SmartRAGPolicy.from_pretrained(shipped, autocast=False).search_probability(["q?"])[0] >= 0


def test_a_kill_while_a_new_best_is_saved_keeps_the_old_best(tiny_model_dir, tmp_path, monkeypatch):
    policy = trainable_policy(PPOConfig(base_model=str(tiny_model_dir), bf16=False, lora_r=4))
    value_head = torch.nn.Linear(policy.model.config.hidden_size, 1)
    best = tmp_path / "best"
    save_policy(policy, value_head, best, {"iteration": 0, "reward": 0.1})

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # killed while the new best's value head is written

    monkeypatch.setattr(torch, "save", die)
    with pytest.raises(KeyboardInterrupt):
        save_policy(policy, value_head, best, {"iteration": 5, "reward": 0.2})
    monkeypatch.undo()
    assert json.loads((best / "selected.json").read_text()) == {"iteration": 0, "reward": 0.1}
    assert SmartRAGPolicy.from_pretrained(best, autocast=False).search_probability(["q?"])[0] >= 0
    save_policy(policy, value_head, best, {"iteration": 5, "reward": 0.2})
    assert json.loads((best / "selected.json").read_text()) == {"iteration": 5, "reward": 0.2}
    assert [path.name for path in tmp_path.iterdir()] == ["best"]  # the old one is gone, nothing left aside


# -- 6. nonsense counts are refused where they are read -------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flags", "message"),
    [
        ("eval", ["--limit", "0"], "argument --limit: must be a whole number >= 1, not 0"),
        ("eval", ["--limit", "-1"], "argument --limit: must be a whole number >= 1, not -1"),
        ("eval", ["--limit", "-3"], "argument --limit: must be a whole number >= 1, not -3"),
        ("eval", ["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, not 0"),
        ("sft", ["--max-steps", "0"], "smartrag: error: max_steps must be a whole number >= 1 (or none), not 0"),
        ("sft", ["--max-steps", "-2"], "smartrag: error: max_steps must be a whole number >= 1 (or none), not -2"),
        ("sft", ["--batch-size", "0"], "smartrag: error: batch_size must be a whole number >= 1, not 0"),
        ("sft", ["--config", "{yaml}"], "smartrag: error: max_steps must be a whole number >= 1 (or none), not 0"),
        ("ppo", ["--iterations", "0"], "smartrag: error: iterations must be a whole number >= 1, not 0"),
    ],
)
def test_nonsense_counts_are_refused_before_any_work(
    command, flags, message, tmp_path, qa_file, sft_data, corpus_file, tiny_model_dir, capsys
):
    (tmp_path / "sft.yaml").write_text("max_steps: 0\n")  # a config file is checked as the flags are
    run, output = tmp_path / "run", tmp_path / "out" / "results.json"
    where = {
        "eval": ["eval", "--data", qa_file, "--corpus", corpus_file, "--policy", tiny_model_dir, "--output", output],
        "sft": ["train", "sft", "--data", sft_data, "--base-model", tiny_model_dir, "--no-bf16", "--output-dir", run],
        "ppo": [
            "train",
            "ppo",
            "--data",
            qa_file,
            "--corpus",
            corpus_file,
            "--base-model",
            tiny_model_dir,
            "--dev-dataset",
            "none",
            "--episodes-per-iteration",
            "4",
            "--rollout-batch-size",
            "4",
            "--lora-r",
            "4",
            "--no-bf16",
            "--no-progress",
            "--output-dir",
            run,
        ],
    }
    err = cli_error(capsys, [*where[command], *(flag.format(yaml=tmp_path / "sft.yaml") for flag in flags)])
    assert message in err and "Traceback" not in err
    assert not run.exists() and not output.parent.exists()


# -- 7. user mistakes: one line naming the file, the row and the fix ----------------------------------------------


def test_sft_rows_without_a_prompt_fail_naming_the_file_line_and_field(tmp_path, tiny_model_dir, capsys):
    data = write_jsonl(tmp_path / "warmup.jsonl", [WARMUP[0], {"completion": "[Answer] me"}])
    err = cli_error(
        capsys,
        ["train", "sft", "--data", data, "--base-model", tiny_model_dir, "--no-bf16", "--output-dir", tmp_path / "run"],
    )
    assert (
        err == f"smartrag: error: {data}:2: a warm-up row needs a string field 'prompt' (training.warmup writes them)\n"
    )


def test_sft_rows_with_a_given_text_not_a_string_fail_naming_the_line(tmp_path):
    data = write_jsonl(tmp_path / "warmup.jsonl", [WARMUP[0], {**WARMUP[0], "given": 1}])
    with pytest.raises(ValueError, match=r"warmup.jsonl:2: a warm-up row's 'given' must be a string"):
        read_rows(data)


def test_qa_files_may_end_in_blank_lines_but_not_hold_one_between_rows(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n\n\n")
    assert [e.id for e in load_qa(path)] == ["h"]
    path.write_text(json.dumps(QA[0]) + "\n\n" + json.dumps(QA[1]) + "\n\n")
    with pytest.raises(ValueError, match=r"qa.jsonl:2: empty line"):
        load_qa(path)


def rows_bytes() -> bytes:
    return "".join(json.dumps(row) + "\n" for row in QA * 50).encode()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "cut.jsonl.gz",
            lambda: gzip.compress(rows_bytes())[:200],
            r"cut.jsonl.gz: not a complete gzip file .*: compress",
        ),
        ("plain.jsonl.gz", rows_bytes, r"plain.jsonl.gz: not a complete gzip file .*: compress"),
        (
            "latin.jsonl",
            lambda: rows_bytes() + '{"id": "é", "question": "Où?", "answers": ["là"]}\n'.encode("latin-1"),
            r"latin.jsonl:151: not UTF-8 text .*: save it as UTF-8",
        ),
    ],
)
def test_unreadable_data_files_fail_naming_the_file(name, content, message, tmp_path):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(ValueError, match=message):
        load_qa(path)


def test_a_corpus_of_only_stopwords_fails_saying_it_has_nothing_to_index(tmp_path):
    corpus = write_jsonl(
        tmp_path / "stopwords.jsonl", [{"id": "1", "text": "the of and"}, {"id": "2", "text": "a an, it."}]
    )
    with pytest.raises(ValueError, match=r"no indexable words in corpus .*stopwords.jsonl"):
        BM25Retriever.from_jsonl(corpus)


@pytest.mark.parametrize("damage", ["truncated", "short"])
def test_an_index_whose_documents_file_is_damaged_fails_at_load_saying_to_rebuild_it(damage, retriever, tmp_path):
    index = tmp_path / "index"
    retriever.save(index)
    documents = index / "documents.jsonl.gz"
    if damage == "truncated":
        documents.write_bytes(documents.read_bytes()[:-20])
    else:  # a row lost: it would load, then fail (IndexError) on the first query that ranks the last document
        rows = gzip.decompress(documents.read_bytes()).decode().splitlines(keepends=True)
        documents.write_bytes(gzip.compress("".join(rows[:-1]).encode()))
    with pytest.raises(ValueError, match=r"index is not a readable BM25Retriever index .*: rebuild it"):
        BM25Retriever.load(index)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "not a peft adapter directory (no adapter_config.json)"),
        ("corrupt", "adapter_config.json: not valid JSON"),
        ("not an object", "adapter_config.json: not a JSON object"),
    ],
)
def test_an_export_source_with_a_missing_or_corrupt_config_fails_clearly(
    damage, message, tiny_model_dir, tmp_path, capsys
):
    adapter = make_adapter(tiny_model_dir, tmp_path / "adapter", r=4, seed=0)
    config = adapter / "adapter_config.json"
    if damage == "missing":
        config.unlink()
    else:
        config.write_text('{"r": 4' if damage == "corrupt" else "[]")
    err = cli_error(capsys, ["train", "export", adapter, "--output", tmp_path / "shipped"])
    assert err.startswith("smartrag: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "shipped").exists()


def test_a_missing_data_file_is_a_one_line_cli_error(tmp_path, corpus_file, capsys):
    err = cli_error(
        capsys,
        [
            "eval",
            "--data",
            tmp_path / "missing.jsonl",
            "--corpus",
            corpus_file,
            "--policy",
            tmp_path / "no-model",
            "--output",
            tmp_path / "results.json",
        ],
    )
    assert err.startswith("smartrag: error: ") and "missing.jsonl" in err and err.count("\n") == 1


# -- why checkpoint rotation is our own, not the libraries' --------------------------------------------------------


def test_transformers_save_total_limit_would_delete_a_users_checkpoint_like_folder(tmp_path):
    """What `Trainer` runs after each save with `save_total_limit` (by modification time): a user's `checkpoint-5.bak`
    beside the run goes. `SFTCallback` prunes only `checkpoint-STEP` folders instead; if this starts to fail,
    transformers has changed and its rotation may do."""
    from transformers.trainer_utils import rotate_checkpoints

    from langchain_smartrag.training.checkpoints import checkpoints

    for age, name in enumerate(("checkpoint-5.bak", "checkpoint-1", "checkpoint-2")):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1_000_000 + 10 * age, 1_000_000 + 10 * age))
    assert checkpoints(tmp_path) == [tmp_path / "checkpoint-1", tmp_path / "checkpoint-2"]  # ours: kept both, no prune
    rotate_checkpoints(str(tmp_path), save_total_limit=2, use_mtime=True)
    assert not (tmp_path / "checkpoint-5.bak").exists()
