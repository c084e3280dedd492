"""Evaluation: modes route as named, records score as by hand, results files round-trip, bad QA files name the line."""

import json

import pytest
from langchain_core.documents import Document

from langchain_smartrag import create_smartrag_graph
from langchain_smartrag.cli import main
from langchain_smartrag.training import QAExample, at_threshold, evaluate, load_qa, means, sample, score_episode

EXAMPLES = [
    QAExample("q1", "Who wrote Hamlet?", ["William Shakespeare", "Shakespeare"]),
    QAExample("q2", "What is the capital of France?", ["Paris"]),
    QAExample("q3", "When did Apollo 11 land on the Moon?", ["1969", "July 1969"]),
]


def run(policy, retriever, mode, **kwargs):
    return evaluate(
        create_smartrag_graph(policy, retriever), EXAMPLES, mode=mode, progress=False, batch_size=2, **kwargs
    )


def test_no_retrieval_never_retrieves_even_when_the_policy_wants_to(searching_policy, retriever):
    results = run(searching_policy, retriever, "no-retrieval")
    assert results["retrieval_rate"] == 0.0 and results["hit"] is None
    assert all(r["queries"] == [] and r["search_probabilities"] == [] for r in results["records"])


def test_always_retrieve_question_searches_with_the_question(answering_policy, retriever):
    results = run(answering_policy, retriever, "always-retrieve-question")
    assert results["retrieval_rate"] == 1.0
    assert [r["queries"] for r in results["records"]] == [[e.question] for e in EXAMPLES]
    assert [r["hit"] for r in results["records"]] == [True, True, True]  # the toy corpus holds every answer


def test_always_retrieve_searches_with_the_policys_query(answering_policy, retriever):
    results = run(answering_policy, retriever, "always-retrieve")
    assert results["retrieval_rate"] == 1.0
    assert all(r["queries"] != [e.question] for r, e in zip(results["records"], EXAMPLES))


def test_smartrag_follows_the_policy_and_the_threshold(searching_policy, answering_policy, retriever):
    assert run(searching_policy, retriever, "smartrag")["retrieval_rate"] == 1.0
    assert run(answering_policy, retriever, "smartrag")["retrieval_rate"] == 0.0
    assert run(searching_policy, retriever, "smartrag", threshold=1.01)["retrieval_rate"] == 0.0


def test_a_threshold_sweep_is_read_off_the_two_forced_runs(policy, retriever):
    """Quota 1, greedy: at any threshold, each smartrag episode is the always-retrieve or the no-retrieval one."""
    always, never = run(policy, retriever, "always-retrieve"), run(policy, retriever, "no-retrieval")
    p_search = sorted(r["search_probabilities"][0] for r in always["records"])
    threshold = (p_search[0] + p_search[1]) / 2  # two questions retrieve, one answers directly
    real = run(policy, retriever, "smartrag", threshold=threshold)
    derived = at_threshold(always, never, threshold)
    assert [r["retrievals"] for r in derived] == [r["retrievals"] for r in real["records"]] and 0 < sum(
        r["retrievals"] for r in derived
    ) < 3
    assert [(r["answer"], r["queries"], r["reward"]) for r in derived] == [
        (r["answer"], r["queries"], r["reward"]) for r in real["records"]
    ]
    assert means(derived) == pytest.approx({k: real[k] for k in ("em", "f1", "reward", "retrieval_rate")})


def test_free_format_check_parses_the_unforced_first_turn(searching_policy, retriever):
    results = run(searching_policy, retriever, "smartrag", format_policy=searching_policy)
    # this policy's favoured tokens spell the action words but not "[Search] <query>" in order
    assert {r["free_action"] for r in results["records"]} <= {"search", "answer", "invalid"}
    assert results["free_format_error_rate"] == [r["free_action"] for r in results["records"]].count("invalid") / 3
    assert run(searching_policy, retriever, "smartrag")["free_format_error_rate"] is None


def test_unknown_modes_are_refused(policy, retriever):
    with pytest.raises(ValueError, match="unknown mode"):
        run(policy, retriever, "sometimes")


def test_a_record_scores_as_computed_by_hand():
    state = {
        "answer": "the Shakespeare",
        "well_formed": True,
        "retrievals": 1,
        "queries": ["hamlet author"],
        "documents": [Document(page_content="Hamlet was written by William Shakespeare.")],
        "search_probabilities": [0.9],
        "errors": [],
    }
    record = score_episode(EXAMPLES[0], state)
    # EM: "shakespeare" == "shakespeare" -> 1; F1 1; reward 1 + 1 - 0.2
    assert (record["em"], record["f1"], record["reward"], record["hit"]) == (1.0, 1.0, pytest.approx(1.8), True)
    partial = score_episode(EXAMPLES[1], {**state, "answer": "Paris, France", "documents": []})
    # tokens [paris, france] vs [paris]: P 1/2, R 1 -> F1 2/3; hit is False: nothing was retrieved
    assert (partial["em"], partial["f1"], partial["hit"]) == (0.0, pytest.approx(2 / 3), False)
    failed = score_episode(EXAMPLES[2], ValueError("boom"))
    assert (failed["reward"], failed["well_formed"], failed["errors"]) == (-1.0, False, ["ValueError: boom"])


def test_smartrag_eval_writes_a_results_file_that_round_trips(tmp_path, tiny_model_dir, corpus_file, capsys):
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": e.id, "question": e.question, "answers": e.answers, "dataset": "toy"}) + "\n"
            for e in EXAMPLES
        )
    )
    output = tmp_path / "out" / "results.json"
    code = main(
        [
            "eval",
            "--data",
            str(data),
            "--corpus",
            str(corpus_file),
            "--policy",
            str(tiny_model_dir),
            "--mode",
            "always-retrieve-question",
            "--limit",
            "2",
            "--output",
            str(output),
        ]
    )
    assert code == 0 and capsys.readouterr().out.startswith("always-retrieve-question: n=2 EM=")
    results = json.loads(output.read_text())
    assert results["n"] == 2 and len(results["records"]) == 2 and results["retrieval_rate"] == 1.0
    assert {
        "em",
        "f1",
        "reward",
        "retrieval_rate",
        "format_error_rate",
        "hit",
        "seconds",
        "questions_per_second",
    } <= set(results)
    assert results["config"]["mode"] == "always-retrieve-question" and results["config"]["limit"] == 2
    assert [r["id"] for r in results["records"]] == [e.id for e in sample(load_qa(data), 2, seed=0)]
    assert json.loads(json.dumps(results)) == results


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "question": "q?"}\n', r"qa.jsonl:1: 'answers'"),
        (
            '{"id": "a", "question": "q?", "answers": ["x"]}\n\n{"id": "b", "question": "r?", "answers": ["y"]}\n',
            r"qa.jsonl:2: empty line",
        ),
        ('{"id": "a", "question": 5, "answers": ["x"]}\n', r"qa.jsonl:1: 'question'"),
        ('{"id": "a", "question": "q?", "answers": "x"}\n', r"qa.jsonl:1: 'answers'"),
        ('{"id": null, "question": "q?", "answers": ["x"]}\n', r"qa.jsonl:1: 'id'"),
        ('{"id": "a", "question": "q?", "answers": ["x"]}\n[1, 2]\n', r"qa.jsonl:2: expected a JSON object"),
        ('{"id": "a", "question": "q?", "answers": ["x"]\n', r"qa.jsonl:1: not valid JSON"),
        ("", r"qa.jsonl: no examples"),
    ],
)
def test_bad_qa_files_fail_naming_the_line(tmp_path, content, message):
    path = tmp_path / "qa.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_qa(path)


def test_the_repositorys_data_sets_load(tmp_path):
    from langchain_smartrag.training import dataset_path

    examples = load_qa(dataset_path("hotpotqa", "dev"))
    assert len(examples) == 1000 and examples[0].extra["dataset"] == "hotpotqa"
    assert len(load_qa(dataset_path("popqa", "train"))) == 5000  # gzipped
    with pytest.raises(ValueError, match="no test split for data set 'popqa'"):
        dataset_path("popqa", "test")
