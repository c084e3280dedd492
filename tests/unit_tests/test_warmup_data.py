"""SFT's data, without a training run: the loss mask covers exactly the completion, and warm-up rows are built from a
policy and a retriever."""

import json

import pytest

from langchain_smartrag import ANSWER, SEARCH, parse_action
from langchain_smartrag.cli import main
from langchain_smartrag.training import QAExample
from langchain_smartrag.training.sft import completion_example
from langchain_smartrag.training.warmup import build_warmup, warmup_ids, warmup_protocol, write_warmup


def test_the_loss_mask_covers_exactly_the_completion(tiny_tokenizer):
    example = completion_example(tiny_tokenizer, "Question: who?\nResponse:\n", "[Answer] Paris", max_length=512)
    completion = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert tiny_tokenizer.decode(completion) == "[Answer] Paris<|im_end|>"
    prompt_length = len(tiny_tokenizer("Question: who?\nResponse:\n", add_special_tokens=False).input_ids)
    assert example["labels"][:prompt_length] == [-100] * prompt_length
    assert example["labels"][prompt_length:] == example["input_ids"][prompt_length:]


def test_a_decision_word_alone_is_trained_without_ending_the_turn(tiny_tokenizer):
    example = completion_example(tiny_tokenizer, "Question: who?\nResponse:\n", "[Answer]", max_length=512, end=False)
    completion = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert tiny_tokenizer.decode(completion) == "[Answer]"  # what follows is the answer, not the end of the turn


def test_text_the_graph_forces_is_read_not_learned(tiny_tokenizer):
    prompt = "Question: who?\nResponse:\n"
    example = completion_example(tiny_tokenizer, prompt, " Paris", max_length=512, given=ANSWER)
    completion = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert tiny_tokenizer.decode(completion) == " Paris<|im_end|>"
    # the tokens the answer turn sees when the graph forces the action word: prompt, word, then the answer
    parts = [tiny_tokenizer(text, add_special_tokens=False).input_ids for text in (prompt, ANSWER, " Paris")]
    assert example["input_ids"] == parts[0] + parts[1] + parts[2] + [tiny_tokenizer.eos_token_id]


def test_warmup_builds_the_three_kinds_from_policy_and_retriever(policy, retriever, tmp_path):
    examples = [
        QAExample("h", "Who wrote Hamlet?", ["William Shakespeare"]),
        QAExample("p", "What is the capital of France?", ["Paris"]),
        QAExample("z", "Who is Zorblax?", ["nobody"]),
    ]
    rows, report = build_warmup(policy, retriever, examples, rewrites=1)
    assert report["questions"] == 3 and report["no_query_found_answer"] >= 1  # nothing retrieves "nobody"
    for row in rows:
        action = parse_action(row.completion)
        assert action.well_formed and action.kind == ("search" if row.kind == "search" else "answer")
        assert ("Observation:" in row.prompt) == (row.kind == "observed")
    observed = {r.id: r.completion for r in rows if r.kind == "observed"}
    assert observed.get("h") == f"{ANSWER} William Shakespeare" and observed.get("p") == f"{ANSWER} Paris"
    write_warmup(rows, report, tmp_path / "w.jsonl")
    assert len((tmp_path / "w.jsonl").read_text().splitlines()) == len(rows)
    assert json.loads((tmp_path / "w.report.json").read_text())["mix"] == report["mix"]
    assert warmup_ids(tmp_path / "w.jsonl") == {r.id for r in rows}  # what evaluations of the SFT run leave out
    assert SEARCH  # the action grammar is the protocol's
    assert "no-search" not in report["mix"]  # the paper's protocol labels no question it cannot answer


def test_warmup_that_finds_nothing_is_an_error_that_says_why_and_writes_nothing(policy, retriever, tmp_path):
    rows, report = build_warmup(policy, retriever, [QAExample("z", "Who is Zorblax?", ["nobody"])], rewrites=0)
    assert rows == [] and report["no_query_found_answer"] == 1  # nothing retrieves "nobody"
    with pytest.raises(ValueError, match=r"w.jsonl: 0 warm-up rows from 1 question: .* no query .*--corpus"):
        write_warmup(rows, report, tmp_path / "w.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_smartrag_train_warmup_that_writes_no_rows_fails_saying_why(tiny_model_dir, corpus_file, tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "z", "question": "Who is Zorblax?", "answers": ["nobody"]}) + "\n")
    output = tmp_path / "warmup.jsonl"
    argv = ["train", "warmup", "--data", qa, "--policy", tiny_model_dir, "--corpus", corpus_file, "--rewrites", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, argv), "--output", str(output)])
    err = capsys.readouterr().err  # the progress bar's lines, then the error's
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"smartrag: error: {output}: 0 warm-up rows from 1 question: the policy")
    assert not output.exists()


def test_warmup_labels_what_nothing_answers_answer_when_asked(policy, retriever):
    examples = [
        QAExample("p", "What is the capital of France?", ["Paris"]),
        QAExample("z", "Who is Zorblax?", ["nobody"]),
    ]
    rows, report = build_warmup(policy, retriever, examples, rewrites=1, no_search=True)
    abstain = [r for r in rows if r.kind == "no-search"]
    assert [r.id for r in abstain] == ["z"] and report["mix"]["no-search"] == 1  # nothing retrieves "nobody"
    assert abstain[0].completion == ANSWER and not abstain[0].end and "Observation:" not in abstain[0].prompt


def test_the_preview_travels_in_every_row_so_a_copied_file_trains_the_same_policy(policy, retriever, tmp_path):
    examples = [QAExample("h", "Who wrote Hamlet?", ["William Shakespeare"])]
    rows, report = build_warmup(policy, retriever, examples, rewrites=1, preview=2)
    write_warmup(rows, report, tmp_path / "w.jsonl")
    copied = tmp_path / "copied.jsonl"  # no report beside it
    copied.write_text((tmp_path / "w.jsonl").read_text())
    assert all(json.loads(line)["preview"] == 2 for line in copied.read_text().splitlines())
    assert warmup_protocol(copied) == {"preview": 2}


def test_rows_of_different_previews_are_refused(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    row = {"kind": "direct", "prompt": "p", "completion": f"{ANSWER} x", "id": "a"}
    mixed.write_text(json.dumps({**row, "preview": 0}) + "\n" + json.dumps({**row, "preview": 3}) + "\n")
    with pytest.raises(ValueError, match="mixed.jsonl: its rows were built with different previews"):
        warmup_protocol(mixed)


def test_reading_rows_put_the_gold_passage_among_the_hits_and_teach_the_answer_it_shows(policy, retriever):
    from langchain_smartrag.training.warmup import reading_rows

    passages = {d.metadata["title"]: d for d in retriever.documents}
    examples = [
        QAExample("h", "Who wrote the tragedy?", ["William Shakespeare"], {"supporting_titles": ["Hamlet"]}),
        QAExample("m", "What landed on the Moon?", ["Apollo 11"], {"s_wiki_title": "Apollo 11"}),
        QAExample("a", "Who wrote the first program?", ["Charles Babbage"], {"s_wiki_title": "Ada Lovelace"}),
        QAExample("x", "Who is Zorblax?", ["nobody"]),  # its data set names no passage: no row
    ]
    rows, report = reading_rows(policy, retriever, examples, passages)
    assert [r.id for r in rows] == ["h", "m", "a"] and {r.kind for r in rows} == {"reading"}
    hamlet = rows[0]
    assert "Hamlet is a tragedy written by William Shakespeare" in hamlet.prompt  # the search missed it: put in
    assert "(2) " in hamlet.prompt and "(3) " not in hamlet.prompt  # still k=2 documents: the last hit made room
    assert (hamlet.given, hamlet.completion) == (ANSWER, " William Shakespeare")  # the graph forces the action word
    assert rows[2].completion == " Charles Babbage"  # not in the passage: the answer, not a copy of it
    assert report == {"questions": 4, "rows": 3, "answer_shown": 2}


def test_train_warmup_adds_reading_rows_from_questions_it_did_not_draw(tiny_model_dir, corpus_file, tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "question": "Who wrote Hamlet?",
            "answers": ["William Shakespeare"],
            "supporting_titles": ["Hamlet"],
        }
        for i in range(4)
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "warmup.jsonl"
    flags = ["--data", str(qa), "--per-dataset", "2", "--reading-per-dataset", "2", "--rewrites", "0"]
    flags += ["--policy", str(tiny_model_dir), "--corpus", str(corpus_file), "--output", str(output)]
    assert main(["train", "warmup", *flags]) == 0
    written = [json.loads(line) for line in output.read_text().splitlines()]
    reading = [r for r in written if r["kind"] == "reading"]
    others = {r["id"] for r in written if r["kind"] != "reading"}
    assert len(reading) == 2 and not others & {r["id"] for r in reading}  # drawn apart from the warm-up's questions
    report = json.loads(output.with_suffix(".report.json").read_text())
    assert report["mix"]["reading"] == 2 and report["reading"]["answer_shown"] == 2
