"""Nothing written is lost, and every mistake is one line (issue #32, items 3, 5 and 9), checked without a model:
outputs are checked before the work and written aside then renamed into place (a full disk or an encoding error
leaves the previous file whole), links are written through and never replaced, an export never copies its
surroundings aside, `--resume` takes the last complete SFT checkpoint and refuses one that cannot resume exactly,
lone surrogates in a QA file are refused naming the line, and `--retriever`, `--config` and `--trainer-args` mistakes
are one line that names the flag and what to do. The checks that need a tiny model or a subprocess are
`tests/integration_tests/test_reliability_writes.py`."""

import contextlib
import errno
import json
import os
import re
import resource
import signal
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.cli import main
from langchain_smartrag.retrievers import build_retriever
from langchain_smartrag.training import load_qa
from langchain_smartrag.training.checkpoints import prepare_output_dir, replace_directory
from langchain_smartrag.training.export import export_adapter
from langchain_smartrag.training.sft import SFTConfig
from tests.toy_data import QA, WARMUP, write_jsonl


def atomic_write_text(path, text):
    from langchain_smartrag._files import atomic_write_text

    return atomic_write_text(path, text)


def trl_checkpoint_gap(folder):
    from langchain_smartrag.training.sft import trl_checkpoint_gap

    return trl_checkpoint_gap(folder)


def cli_error(capsys, argv) -> str:
    """Run the CLI on a user's mistake: exit status 2, one line, no traceback; returns that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    return err


def one_line(err: str) -> str:
    assert err.startswith("smartrag: error: ") and err.count("\n") == 1, err
    return err.removeprefix("smartrag: error: ").rstrip("\n")


def fake_adapter(directory: Path, r: int, value: float = 0.5) -> Path:
    """A peft adapter folder as training saves one (config and float32 weights), built without any model."""
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text(
        json.dumps({"r": r, "peft_type": "LORA", "base_model_name_or_path": "somewhere"})
    )
    save_file(
        {"base_model.model.lm_head.lora_A.weight": torch.full((r, 4), value)}, directory / "adapter_model.safetensors"
    )
    return directory


@contextlib.contextmanager
def disk_full_after(size: int):
    """Writes past `size` bytes of any file fail as on a full disk (EFBIG from RLIMIT_FSIZE, SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# -- a file is replaced whole, or not at all ---------------------------------------------------------------------


def test_a_write_cut_short_by_a_full_disk_leaves_the_previous_file_whole(tmp_path):
    results = tmp_path / "results.json"
    results.write_text('{"previous": true}')
    with disk_full_after(4096), pytest.raises(OSError) as error:
        atomic_write_text(results, json.dumps({"records": ["x" * 100] * 1000}))
    assert error.value.errno == errno.EFBIG
    assert results.read_text() == '{"previous": true}'
    assert siblings(results) == ["results.json"]  # no temporary file left beside it
    atomic_write_text(results, '{"new": true}')
    assert results.read_text() == '{"new": true}' and siblings(results) == ["results.json"]


def test_text_that_cannot_be_encoded_leaves_the_previous_file_whole(tmp_path):
    results = tmp_path / "results.json"
    results.write_text("previous")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(results, "Who wrote \ud800 Hamlet?")
    assert results.read_text() == "previous" and siblings(results) == ["results.json"]


def test_a_linked_file_is_written_through_its_link(tmp_path):
    (tmp_path / "real").mkdir()
    real, link = tmp_path / "real" / "results.json", tmp_path / "results.json"
    real.write_text("old")
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert siblings(real) == ["results.json"]


def test_eval_refuses_a_dangling_link_before_loading_anything(tmp_path, capsys):
    qa, dangling = write_jsonl(tmp_path / "qa.jsonl", QA), tmp_path / "dangling.json"
    dangling.symlink_to("nodir/results.json")
    # no such policy: had the model been loaded before the output was checked, that would be the error
    err = one_line(cli_error(capsys, ["eval", "--data", qa, "--policy", tmp_path / "no-model", "--output", dangling]))
    assert err.startswith(f"--output {dangling}: a link to nodir/results.json, whose folder") and "create" in err
    assert dangling.is_symlink() and not (tmp_path / "nodir").exists()


# -- lone surrogates are refused naming the line -------------------------------------------------------------------


def test_a_lone_surrogate_in_a_qa_file_is_refused_naming_the_file_and_line(tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps(QA[0]) + "\n" + '{"id": "s", "question": "Who wrote \\ud800 Hamlet?", "answers": ["x"]}\n')
    with pytest.raises(ValueError, match=r"qa.jsonl:2: .*lone surrogate .*\\ud800"):
        load_qa(qa)
    paired = tmp_path / "paired.jsonl"  # an escaped pair is one character (an emoji), and fine
    paired.write_text('{"id": "e", "question": "What is \\ud83d\\ude00?", "answers": ["a smile"]}\n')
    assert load_qa(paired)[0].question == "What is \U0001f600?"
    results = tmp_path / "results.json"
    results.write_text("previous")
    err = one_line(cli_error(capsys, ["eval", "--data", qa, "--policy", tmp_path / "no-model", "--output", results]))
    assert err.startswith(f"{qa}:2: ") and "lone surrogate" in err
    assert results.read_text() == "previous"
    warmup = tmp_path / "warmup.jsonl"  # the warm-up reads it before any model loads, and writes nothing
    err = one_line(
        cli_error(
            capsys,
            ["train", "warmup", "--data", qa, "--policy", tmp_path / "no-model", "--rewrites", "0", "--output", warmup],
        )
    )
    assert err.startswith(f"{qa}:2: 'question' holds a lone surrogate ('\\ud800')") and not warmup.exists()


# -- exports: through links, never onto a file, never the folder they stand in ------------------------------------


def test_an_export_through_a_link_replaces_the_linked_folder(tmp_path):
    first, second = fake_adapter(tmp_path / "A", r=4), fake_adapter(tmp_path / "B", r=8)
    real, link = tmp_path / "real", tmp_path / "link"
    export_adapter(first, real)
    link.symlink_to(real)
    export_adapter(second, link)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads((real / "adapter_config.json").read_text())["r"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B", "link", "real"]  # nothing left aside


def test_an_export_onto_an_existing_file_is_refused_and_the_file_kept(tmp_path, capsys):
    adapter, notes = fake_adapter(tmp_path / "A", r=4), tmp_path / "notes.txt"
    notes.write_text("notes")
    err = one_line(cli_error(capsys, ["train", "export", adapter, "--output", notes]))
    assert err.startswith(f"--output {notes}: a file, not a folder") and "choose" in err
    assert notes.read_text() == "notes" and sorted(p.name for p in tmp_path.iterdir()) == ["A", "notes.txt"]


@pytest.mark.parametrize("output", [".", "..", "{proj}"])
def test_an_export_to_the_folder_it_runs_in_is_refused_without_copying_it(output, tmp_path, monkeypatch, capsys):
    adapter, proj = fake_adapter(tmp_path / "A", r=4), tmp_path / "proj"
    proj.mkdir()
    (proj / "notes.txt").write_text("notes")
    monkeypatch.chdir(proj)
    err = one_line(cli_error(capsys, ["train", "export", adapter, "--output", output.format(proj=proj)]))
    assert "the current folder" in err and "--output" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "proj"]  # nothing copied aside
    assert sorted(p.name for p in proj.iterdir()) == ["notes.txt"]


def test_a_re_export_keeps_links_in_the_folder_as_links(tmp_path):
    shipped = tmp_path / "shipped"
    export_adapter(fake_adapter(tmp_path / "A", r=4), shipped)
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "README.md").write_text("model card")
    (shipped / "README.md").unlink()  # the generated model card, replaced by a link to the user's own
    (shipped / "README.md").symlink_to("../cards/README.md")
    (shipped / "docs").mkdir()
    (shipped / "docs" / "notes.md").write_text("notes")
    export_adapter(fake_adapter(tmp_path / "B", r=8), shipped)
    assert (shipped / "README.md").is_symlink() and (shipped / "README.md").read_text() == "model card"
    assert (shipped / "docs" / "notes.md").read_text() == "notes"


def test_an_export_of_an_empty_weights_file_is_one_line(tmp_path, capsys):
    adapter = fake_adapter(tmp_path / "zero", r=4)
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    err = one_line(cli_error(capsys, ["train", "export", adapter, "--output", tmp_path / "out"]))
    assert err.startswith(f"{adapter / 'adapter_model.safetensors'} is not a valid safetensors file")
    assert not (tmp_path / "out").exists()


def test_a_folder_replaced_through_a_link_stays_a_link_and_a_file_is_never_replaced(tmp_path):
    other, run = tmp_path / "OTHER", tmp_path / "run"
    other.mkdir()
    (other / "old.txt").write_text("old")
    run.mkdir()
    (run / "final").symlink_to(other)
    replace_directory(run / "final", lambda tmp: (tmp / "new.txt").write_text("new"))
    assert (run / "final").is_symlink() and sorted(p.name for p in other.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in run.iterdir()) == ["final"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "OTHER",
        "run",
    ]
    (run / "best").write_text("a file")
    with pytest.raises(ValueError, match=r"best: a file, not a folder"):
        replace_directory(run / "best", lambda tmp: None)
    assert (run / "best").read_text() == "a file"


# -- read-only places: one line at the start -----------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """`tmp_path/ro` behaves as a read-only file system (the tests may run as root, where chmod does not bind)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path):
        if str(os.fspath(path)).startswith(str(ro)):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return ro


def test_an_sft_run_folder_on_a_read_only_file_system_is_one_line(read_only, tmp_path, capsys):
    data = write_jsonl(tmp_path / "warmup.jsonl", WARMUP)
    err = one_line(
        cli_error(
            capsys,
            [
                "train",
                "sft",
                "--data",
                data,
                "--base-model",
                tmp_path / "no-model",
                "--no-bf16",
                "--output-dir",
                read_only / "run",
            ],
        )
    )
    assert err.startswith(f"--output-dir {read_only / 'run'}: cannot write there") and "Read-only" in err


def test_a_ppo_run_folder_on_a_read_only_file_system_is_one_line(read_only, tmp_path, capsys):
    argv = ["train", "ppo", "--base-model", tmp_path / "no-model", "--no-bf16", "--output-dir", read_only / "run"]
    err = one_line(cli_error(capsys, argv))
    assert err.startswith(f"--output-dir {read_only / 'run'}: cannot write there") and "Read-only" in err


def test_a_warmup_file_on_a_read_only_file_system_is_one_line_before_the_work(read_only, tmp_path, capsys):
    qa, output = write_jsonl(tmp_path / "qa.jsonl", QA), read_only / "w.jsonl"
    argv = ["train", "warmup", "--data", qa, "--policy", tmp_path / "no-model", "--rewrites", "0", "--output", output]
    err = one_line(cli_error(capsys, argv))  # no such policy: had the warm-up run first, that would be the error
    assert err.startswith(f"--output {output}: cannot write there") and "Read-only" in err


def test_an_export_to_a_read_only_file_system_is_one_line(read_only, tmp_path, capsys):
    adapter = fake_adapter(tmp_path / "A", r=4)
    err = one_line(cli_error(capsys, ["train", "export", adapter, "--output", read_only / "out"]))
    assert err.startswith(f"--output {read_only / 'out'}: cannot write there") and "Read-only" in err


def test_an_sft_run_folder_that_is_a_file_is_refused(tmp_path, capsys):
    data, run = write_jsonl(tmp_path / "warmup.jsonl", WARMUP), tmp_path / "run"
    run.write_text("notes")
    err = one_line(
        cli_error(
            capsys,
            ["train", "sft", "--data", data, "--base-model", tmp_path / "no-model", "--no-bf16", "--output-dir", run],
        )
    )
    assert err.startswith(f"--output-dir {run}: a file, not a folder")


# -- resume: the last complete checkpoint, and only one that resumes exactly ---------------------------------------


def trl_checkpoint(folder: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """The files TRL's `_save_checkpoint` writes for a LoRA run, trainer_state.json last (empty stand-ins)."""
    folder.mkdir(parents=True)
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
    ):
        if name not in skip:
            (folder / name).write_text("{}")
    return folder


def test_resume_skips_half_written_checkpoints_for_the_last_complete_one(tmp_path):
    run = tmp_path / "run"
    trl_checkpoint(run / "checkpoint-38")
    trl_checkpoint(run / "checkpoint-39", skip=("trainer_state.json",))  # killed before the state was written
    (run / "checkpoint-40").mkdir()  # killed right after the folder was made
    assert trl_checkpoint_gap(run / "checkpoint-40") is not None
    assert prepare_output_dir(run, True, incomplete=trl_checkpoint_gap) == run / "checkpoint-38"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-38"]  # the half-written ones are gone


def test_a_run_whose_only_checkpoints_are_half_written_says_so(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no complete checkpoint to resume from in .*run \(checkpoint-2 .*\)"):
        prepare_output_dir(run, True, incomplete=trl_checkpoint_gap)
    assert prepare_output_dir(run, False, incomplete=trl_checkpoint_gap) is None  # a new run may start there
    assert list(run.iterdir()) == []


@pytest.mark.parametrize("lost", ["optimizer.pt", "rng_state.pth", "scheduler.pt"])
def test_resume_refuses_a_checkpoint_that_cannot_resume_exactly(lost, tmp_path, capsys):
    data, run = write_jsonl(tmp_path / "warmup.jsonl", WARMUP), tmp_path / "run"
    trl_checkpoint(run / "checkpoint-4", skip=(lost,))
    err = one_line(
        cli_error(
            capsys,
            [
                "train",
                "sft",
                "--data",
                data,
                "--base-model",
                tmp_path / "no-model",
                "--no-bf16",
                "--output-dir",
                run,
                "--resume",
            ],
        )
    )
    assert err.startswith(f"cannot resume exactly from {run / 'checkpoint-4'}: it has no {lost}")
    assert "delete" in err and "--output-dir" in err


# -- --retriever MODULE:FACTORY ------------------------------------------------------------------------------------

FACTORIES = """
class NotCallable:
    pass

not_callable = NotCallable()

def raises():
    raise RuntimeError("index server down")

def raises_value_error():
    raise ValueError("bad index name")

def needs_args(index_path, k):
    return None
"""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rfact:raises", "--retriever rfact:raises: the factory raised RuntimeError: index server down"),
        (
            "rfact:raises_value_error",
            "--retriever rfact:raises_value_error: the factory raised ValueError: bad index name",
        ),
        (
            "rfact:needs_args",
            "--retriever rfact:needs_args: the factory must take no arguments (it takes index_path, k)",
        ),
        ("rfact:not_callable", "--retriever rfact:not_callable: rfact.not_callable is a NotCallable, not a function"),
        ("..x:f", "--retriever ..x:f: expected MODULE:FACTORY"),
        (":f", "--retriever :f: expected MODULE:FACTORY"),
        ("rfact:", "--retriever rfact:: expected MODULE:FACTORY"),
        ("rfact:missing", "--retriever rfact:missing: cannot import 'missing' from 'rfact'"),
    ],
)
def test_a_retriever_factory_mistake_is_one_line_naming_the_factory(spec, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "rfact.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as error:
        build_retriever(spec)
    assert str(error.value).startswith(message), str(error.value)
    qa = write_jsonl(tmp_path / "qa.jsonl", QA)  # the retriever is built before the model loads
    err = one_line(
        cli_error(
            capsys,
            [
                "eval",
                "--data",
                qa,
                "--policy",
                tmp_path / "no-model",
                "--retriever",
                spec,
                "--output",
                tmp_path / "results.json",
            ],
        )
    )
    assert err.startswith(message)
    assert not (tmp_path / "results.json").exists()


# -- --config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", r"--config .*bad.yaml: not valid YAML \(.*line 2.*\): fix it"),
        (
            "- max_steps: 2\n",
            r"--config .*bad.yaml: expected field: value lines \(a mapping of SFTConfig .*\), got a list",
        ),
        (
            "trainer_args: gradient_checkpointing\n",
            (
                r"trainer_args must be a mapping of TRL SFTConfig fields "
                r"\(trainer_args: \{gradient_checkpointing: true\}, "
                r".*\), "
                r"got the text 'gradient_checkpointing'"
            ),
        ),
        ("1: 2\nmax_stepz: 3\n", r"--config .*bad.yaml: unknown config fields \['1', 'max_stepz'\]"),
    ],
)
def test_a_bad_config_file_is_one_line(text, message, tmp_path, capsys):
    data, config = write_jsonl(tmp_path / "warmup.jsonl", WARMUP), tmp_path / "bad.yaml"
    config.write_text(text)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                "sft",
                "--data",
                str(data),
                "--base-model",
                str(tmp_path / "no-model"),
                "--config",
                str(config),
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
    err = one_line(capsys.readouterr().err)
    assert exit_info.value.code == 2 and re.match(message, err), err
    assert not (tmp_path / "run").exists()


# -- --trainer-args: TRL's own fields, checked before the model loads ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["foo=1"], "--trainer-args foo=1: not a field of TRL's SFTConfig"),
        (["lora_r=4"], "--trainer-args lora_r=4: a setting of smartrag train sft itself: give --lora-r"),
        (["learning_rate=abc"], "--trainer-args learning_rate='abc': TRL's SFTConfig.learning_rate takes a number"),
        (["seed=abc"], "--trainer-args seed='abc': TRL's SFTConfig.seed takes a whole number"),
        (
            ["gradient_checkpointing=maybe"],
            "--trainer-args gradient_checkpointing='maybe': TRL's SFTConfig.gradient_checkpointing takes true or false",
        ),
        (["optim_args=[1, 2]"], "--trainer-args optim_args=[1, 2]: TRL's SFTConfig.optim_args takes text or none"),
        (["output_dir=other"], "--trainer-args output_dir='other': give --output-dir"),
        (["save_only_model=true"], "--trainer-args save_only_model=True: refused: --resume needs the optimizer"),
        (["max_steps=-5"], "--trainer-args max_steps=-5: give --max-steps N (N >= 1)"),
        (["max_steps=0"], "--trainer-args max_steps=0: give --max-steps N (N >= 1)"),
        (["num_train_epochs=0"], "--trainer-args num_train_epochs=0: give --epochs N (N >= 1)"),
        (["max_steps=3"], "--trainer-args max_steps=3: smartrag train sft sets TRL's max_steps from --max-steps: give"),
        (
            ["learning_rate=-1"],  # our --learning-rate refuses it; and a resume resets the rate to --learning-rate's
            "--trainer-args learning_rate=-1: smartrag train sft sets TRL's learning_rate from --learning-rate: give",
        ),
        (["per_device_train_batch_size=4"], "--trainer-args per_device_train_batch_size=4: smartrag train sft sets"),
        (["save_total_limit=1"], "--trainer-args save_total_limit=1: give --keep-checkpoints N"),
        (
            ["lr_scheduler_type=sideways"],
            ("--trainer-args: TRL's SFTConfig refused them: ValueError: sideways is not a valid SchedulerType"),
        ),
    ],
)
def test_a_trainer_arg_mistake_is_one_line_before_the_model_loads(args, message, tmp_path, capsys):
    data = write_jsonl(tmp_path / "warmup.jsonl", WARMUP)
    # no such base model: had it been loaded before the arguments were checked, that would be the error
    err = one_line(
        cli_error(
            capsys,
            [
                "train",
                "sft",
                "--data",
                data,
                "--base-model",
                tmp_path / "no-model",
                "--no-bf16",
                "--max-steps",
                "2",
                "--output-dir",
                tmp_path / "run",
                "--trainer-args",
                *args,
            ],
        )
    )
    assert err.startswith(message), err
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_trainer_arg_that_is_not_yaml_is_one_argparse_error(tmp_path, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sft", "--data", str(tmp_path / "w.jsonl"), "--trainer-args", "optim_args=[1, 2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "--trainer-args: optim_args=[1, 2 is not valid YAML" in err.splitlines()[-1]


def test_deepspeed_without_its_package_is_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    if __import__("importlib").util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed")
    data = write_jsonl(tmp_path / "warmup.jsonl", WARMUP)
    (tmp_path / "ds.json").write_text("{}")
    err = one_line(
        cli_error(
            capsys,
            [
                "train",
                "sft",
                "--data",
                data,
                "--base-model",
                tmp_path / "no-model",
                "--no-bf16",
                "--max-steps",
                "2",
                "--output-dir",
                tmp_path / "run",
                "--trainer-args",
                f"deepspeed={tmp_path / 'ds.json'}",
            ],
        )
    )
    assert err.startswith("--trainer-args: TRL's SFTConfig refused them: ") and "deepspeed" in err
    assert "pip install" in err
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    assert is_deepspeed_zero3_enabled() is False  # no half-built DeepSpeed config left to break later model loads


def test_trainer_args_of_the_right_types_pass_and_numbers_written_as_text_are_read(tmp_path):
    config = SFTConfig(
        data="w.jsonl",
        trainer_args={
            "gradient_checkpointing": True,
            "adam_epsilon": "1e-8",
            "lr_scheduler_type": "cosine",
            "optim_args": None,
        },
    )
    assert config.trainer_args["adam_epsilon"] == 1e-8 and isinstance(config.trainer_args["adam_epsilon"], float)


# -- an empty model folder -----------------------------------------------------------------------------------------


def test_from_pretrained_of_an_empty_folder_says_it_holds_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty holds no model or adapter \(no config.json or adapter_config.json\)"):
        SmartRAGPolicy.from_pretrained(tmp_path / "empty")


def test_from_pretrained_of_a_folder_that_is_not_here_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `runs/final` reads as a hub id too; offline (conftest), that cannot load either
    with pytest.raises(ValueError) as error:
        SmartRAGPolicy.from_pretrained("runs/final")
    assert str(error.value).startswith("runs/final: no such folder here, and no hub model of that id loaded (")
    assert "\n" not in str(error.value) and "a run's final/" in str(error.value)


def test_export_writes_float_weights_as_bf16(tmp_path):  # the export itself still works as before
    shipped = export_adapter(fake_adapter(tmp_path / "A", r=4), tmp_path / "shipped")
    assert next(iter(load_file(shipped / "adapter_model.safetensors").values())).dtype == torch.bfloat16
