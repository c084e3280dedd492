"""A decision gate that reads the reader: the policy drafts the answer closed-book and over the probe's hits in one
batched call, the gate reads both drafts and the episode answers with the one it picks."""

import asyncio
import json
import shutil

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_smartrag import ANSWER, BM25Retriever, SmartRAGContext, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.cli import main
from langchain_smartrag.decoding import Generation
from langchain_smartrag.gate import READER_FEATURES, DecisionGate, reader_features
from langchain_smartrag.protocol import parse_action
from langchain_smartrag.training.data import QAExample
from langchain_smartrag.training.pairs import draft_pairs, drafted_pairs, read_pairs
from langchain_smartrag.training.trajectories import rollout_context

QUESTION = "Who wrote Hamlet?"


def reader_gate(bias: float, weights=(0.0,), features=("agree",), **kwargs) -> DecisionGate:
    """A hand-made gate on unstandardised reader features: P = sigmoid(weights . features + bias)."""
    n = len(features)
    return DecisionGate(list(features), [0.0] * n, [1.0] * n, list(weights), bias, **kwargs)


def answer_of(generation: Generation) -> str:
    return parse_action(ANSWER + generation.text).text


class Calls:
    """Counts the policy's batched model passes (the real ones run)."""

    def __init__(self, policy, monkeypatch) -> None:
        self.decide, self.generate = [], []
        decide, generate = policy.decide_batch, policy.generate_batch
        monkeypatch.setattr(policy, "decide_batch", lambda prompts: self.decide.append(prompts) or decide(prompts))

        def counted(prompts, *args, **kwargs):
            self.generate.append(list(prompts))
            return generate(prompts, *args, **kwargs)

        monkeypatch.setattr(policy, "generate_batch", counted)


def test_the_reader_features_describe_both_drafts_and_the_hits():
    hits = [Document("Hamlet is a tragedy by William Shakespeare.")]
    closed = Generation("Marlowe", [1, 2], [-2.0, -1.0])
    read = Generation("William Shakespeare", [3, 4, 5], [-0.5, -0.1, -0.3])
    f = reader_features(hits, closed, read)
    assert set(f) == set(READER_FEATURES)
    assert f["closed_mean"] == -1.5 and f["closed_first"] == -2.0 and f["closed_min"] == -2.0
    assert f["read_mean"] == pytest.approx(-0.3) and f["read_first"] == -0.5 and f["read_min"] == -0.5
    assert f["read_minus_closed"] == pytest.approx(1.2)
    assert f["agree"] == 0.0 and f["read_in_docs"] == 1.0 and f["closed_in_docs"] == 0.0
    same = reader_features(hits, read, read)
    assert same["agree"] == 1.0 and same["read_minus_closed"] == 0.0


def test_a_gate_sure_the_hits_pay_answers_with_the_draft_over_them(policy, retriever, monkeypatch):
    policy.gate = reader_gate(50.0)
    probe = retriever.invoke(QUESTION)
    read = policy.generate_batch([policy.prompt(QUESTION, probe)], ANSWER)[0]
    calls = Calls(policy, monkeypatch)
    out = create_smartrag_graph(policy, retriever).invoke({"question": QUESTION})
    assert out["answer"] == answer_of(read)
    # the probe is the search: counted as the retrieval (and as the probe), its hits the documents, no rewrite
    assert out["retrievals"] == 1 and out["previews"] == 1 and out["queries"] == [QUESTION]
    assert out["documents"] == probe and out["search_probabilities"] == [pytest.approx(1.0)]
    # one decision pass, one batched pass drafting both answers, and none for the answer: never paid twice
    assert len(calls.decide) == 1
    assert calls.generate == [[policy.prompt(QUESTION), policy.prompt(QUESTION, probe)]]


def test_a_gate_sure_they_do_not_pay_answers_with_the_closed_book_draft(policy, retriever):
    policy.gate = reader_gate(-50.0)
    out = create_smartrag_graph(policy, retriever).invoke({"question": QUESTION})
    closed_book = create_smartrag_graph(policy, retriever, decision="token").invoke(
        {"question": QUESTION}, context=SmartRAGContext(threshold=2.0)
    )
    assert out["answer"] == closed_book["answer"] and out["well_formed"] == closed_book["well_formed"]
    assert out["retrievals"] == 0 and out["previews"] == 1 and out["documents"] == []


def test_the_gate_reads_the_drafts_features(policy, retriever):
    # search unless the drafts mostly agree: P = sigmoid(-20 * agree + 10) >= 0.5 when agree <= 0.5
    policy.gate = reader_gate(10.0, [-20.0])
    probe = retriever.invoke(QUESTION)
    closed, read = policy.generate_batch([policy.prompt(QUESTION), policy.prompt(QUESTION, probe)], ANSWER)
    agree = reader_features(probe, closed, read)["agree"]
    out = create_smartrag_graph(policy, retriever).invoke({"question": QUESTION})
    assert out["retrievals"] == (agree <= 0.5)
    assert out["answer"] == answer_of(read if agree <= 0.5 else closed)


def test_the_picked_draft_streams_as_the_answer_and_async_gives_the_same(policy, retriever):
    policy.gate = reader_gate(50.0)
    graph = create_smartrag_graph(policy, retriever)
    out = graph.invoke({"question": QUESTION})
    streamed = "".join(
        chunk.content
        for chunk, meta in graph.stream({"question": QUESTION}, stream_mode="messages")
        if meta["langgraph_node"] == "answer"
    )
    assert streamed and parse_action(ANSWER + streamed).text == out["answer"]  # once, whole: drafted before
    assert asyncio.run(graph.ainvoke({"question": QUESTION})) == out
    assert graph.batch([{"question": QUESTION}] * 3) == [out] * 3


def test_a_reader_gate_saves_and_loads_with_its_policy(tiny_model_dir, tmp_path):
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    saved = reader_gate(0.5, [0.1] * len(READER_FEATURES), features=READER_FEATURES, threshold=0.4)
    saved.save(folder)
    loaded = SmartRAGPolicy.from_pretrained(folder, autocast=False).gate
    assert loaded == saved and loaded.reads_reader and loaded.reads_index and not loaded.reads_scores


def test_on_a_thread_each_question_answers_with_its_own_draft(policy, retriever):
    from langgraph.checkpoint.memory import InMemorySaver

    policy.gate = reader_gate(50.0)
    graph = create_smartrag_graph(policy, retriever, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t"}}
    alone = create_smartrag_graph(policy, retriever)
    for question in (QUESTION, "What is the capital of France?"):
        out = graph.invoke({"question": question}, thread)
        assert out == alone.invoke({"question": question})


class Empty(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager):
        return []


def test_with_no_hits_the_gate_decides_on_two_drafts_of_the_question_alone(policy):
    policy.gate = reader_gate(0.0, [-20.0])  # search unless the drafts agree: they do, there was nothing to read
    out = create_smartrag_graph(policy, Empty()).invoke({"question": QUESTION})
    assert out["retrievals"] == 0 and out["previews"] == 1 and out["search_probabilities"][0] < 1e-6


def test_a_sampled_rollout_cannot_use_a_gate_that_reads_greedy_drafts(policy, retriever):
    policy.gate = reader_gate(50.0)
    graph = create_smartrag_graph(policy, retriever)
    with pytest.raises(ValueError, match="greedy drafts.*decision='token'"):
        graph.invoke({"question": QUESTION}, context=rollout_context(sample=True))


# -- training it: the drafts are the pair ---------------------------------------------------------


def examples(n: int) -> list[QAExample]:
    asked = ["Who wrote Hamlet?", "What is the capital of France?", "When did Apollo 11 land?", "Who is Zorblax?"]
    return [QAExample(f"q{i}", f"{asked[i % 4]} ({i})", ["Shakespeare", "Paris", "1969"]) for i in range(n)]


def test_each_question_drafts_its_pair_as_the_graph_would_and_a_killed_run_resumes(policy, retriever, tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = draft_pairs(policy, retriever, examples(6), path, batch_size=4)
    assert [p["id"] for p in read_pairs(path)] == [f"q{i}" for i in range(6)]
    first = pairs[0]
    probe = retriever.invoke(first["question"])
    closed, read = policy.generate_batch(
        [policy.prompt(first["question"]), policy.prompt(first["question"], probe)], ANSWER
    )
    assert first["search"]["answer"] == answer_of(read) and first["answer"]["answer"] == answer_of(closed)
    assert first["search"]["retrievals"] == 1 and first["answer"]["retrievals"] == 0
    assert first["delta"] == first["search"]["reward"] - first["answer"]["reward"]
    assert first["features"]["reader"] == pytest.approx(reader_features(probe, closed, read))
    path.write_text(path.read_text()[:-40])  # killed mid-line: the last question is drafted again
    assert [p["id"] for p in draft_pairs(policy, retriever, examples(8), path)] == [f"q{i}" for i in range(8)]


def test_the_graph_reads_what_training_read(policy, retriever):
    pairs = drafted_pairs(policy, retriever, examples(4))
    head = DecisionGate(list(READER_FEATURES), [0.0] * 10, [1.0] * 10, [0.3] * 10, 0.1)
    policy.gate = head
    graph = create_smartrag_graph(policy, retriever)
    served = [out["search_probabilities"][0] for out in graph.batch([{"question": p["question"]} for p in pairs])]
    assert served == pytest.approx([head.p_search(**p["features"]) for p in pairs], abs=1e-6)


def test_smartrag_train_gate_reader_fits_a_gate_the_graph_answers_with(tiny_model_dir, corpus_file, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(json.dumps({"id": e.id, "question": e.question, "answers": e.answers}) + "\n" for e in examples(48))
    )
    out = tmp_path / "gate"
    common = ["--policy", str(tiny_model_dir), "--data", str(data), "--corpus", str(corpus_file), "--k", "2"]
    assert main(["train", "gate", *common, "--per-dataset", "48", "--reader", "--output-dir", str(out)]) == 0
    trained = DecisionGate.load(out)
    assert trained.reads_reader and json.loads((out / "report.json").read_text())["candidate"]["family"].startswith(
        "reader"
    )
    assert all("features" in p for p in read_pairs(out / "pairs.jsonl"))
    policy = SmartRAGPolicy.from_pretrained(tiny_model_dir, autocast=False)
    policy.gate = trained
    state = create_smartrag_graph(policy, BM25Retriever.from_jsonl(corpus_file, k=2)).invoke(
        {"question": "Who wrote Hamlet?"}
    )
    assert state["previews"] == 1 and state["answer"] is not None
    # refit from the drafted pairs without drafting again, and `smartrag eval --compare` reads the drafts too
    assert main(["train", "gate", *common, "--fit-only", "--output-dir", str(out)]) == 0
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    trained.save(folder)
    compared = tmp_path / "compare.json"
    args = ["eval", "--data", str(data), "--policy", str(folder), "--corpus", str(corpus_file), "--k", "2"]
    assert main([*args, "--limit", "8", "--compare", "--output", str(compared)]) == 0
    table = json.loads(compared.read_text())["table"]
    assert table["n"] == 8 and {"never", "always-retrieve", "gate", "oracle"} <= set(table["strategies"])


def test_smartrag_calibrate_refits_a_reader_gates_threshold_on_your_drafts(tiny_model_dir, corpus_file, tmp_path):
    folder = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, folder)
    reader_gate(0.0, [1.0]).save(folder)
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(json.dumps({"id": e.id, "question": e.question, "answers": e.answers}) + "\n" for e in examples(24))
    )
    args = ["calibrate", "--data", str(data), "--policy", str(folder), "--corpus", str(corpus_file), "--k", "2"]
    assert main([*args, "--output-dir", str(tmp_path / "run"), "--save-to", str(tmp_path / "out")]) == 0
    assert all("features" in p for p in read_pairs(tmp_path / "run" / "pairs.jsonl"))
    assert DecisionGate.load(tmp_path / "out").trained_under["calibrated"]["questions"] == 24
