"""The LangGraph graph: routing by P(search), the retrieval quota, per-call context, and every Runnable entry point."""

import asyncio
import re
from pathlib import Path
from typing import ClassVar

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_smartrag import SmartRAGContext, create_smartrag_graph


def test_nodes_are_begin_preview_decide_rewrite_retrieve_answer(policy, retriever):
    nodes = set(create_smartrag_graph(policy, retriever).get_graph().nodes)
    assert nodes == {"__start__", "begin", "preview", "decide", "rewrite", "retrieve", "answer", "__end__"}


def test_a_searching_policy_rewrites_retrieves_then_must_answer(searching_policy, retriever):
    out = create_smartrag_graph(searching_policy, retriever, max_retrievals=1).invoke({"question": "Who wrote Hamlet?"})
    assert out["retrievals"] == 1 and len(out["queries"]) == 1
    assert len(out["search_probabilities"]) == 1 and out["search_probabilities"][0] > 0.99  # quota: no 2nd decision
    assert isinstance(out["answer"], str) and out["errors"] == []


def test_an_answering_policy_never_retrieves(answering_policy, retriever):
    out = create_smartrag_graph(answering_policy, retriever).invoke({"question": "Who wrote Hamlet?"})
    assert out["retrievals"] == 0 and out["queries"] == [] and out["documents"] == []
    assert out["search_probabilities"][0] < 0.01


def test_the_quota_bounds_retrievals(searching_policy, retriever):
    for quota in (0, 1, 3):
        out = create_smartrag_graph(searching_policy, retriever, max_retrievals=quota).invoke({"question": "Paris?"})
        assert out["retrievals"] == quota and len(out["search_probabilities"]) == quota


class StaticRetriever(BaseRetriever):
    """Returns the same document for any query (the forced policy's queries are gibberish)."""

    def _get_relevant_documents(self, query, *, run_manager):
        return [Document(page_content="Hamlet is a tragedy by William Shakespeare.", metadata={"title": "Hamlet"})]


def test_retrieved_documents_reach_the_answer_prompt(searching_policy, monkeypatch):
    seen = []
    original = searching_policy.generate
    monkeypatch.setattr(
        searching_policy,
        "generate",
        lambda prompts, prefix, **kw: seen.append(prompts[0]) or original(prompts, prefix, **kw),
    )
    out = create_smartrag_graph(searching_policy, StaticRetriever()).invoke({"question": "Who wrote Hamlet?"})
    rewrite_prompt, answer_prompt = seen
    assert "Observation:" not in rewrite_prompt
    assert "Observation:\n(1) Hamlet: Hamlet is a tragedy by William Shakespeare." in answer_prompt
    assert out["documents"][0].metadata == {"title": "Hamlet"}


def test_threshold_and_policy_can_be_overridden_per_call(searching_policy, answering_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever)
    assert graph.invoke({"question": "Paris?"}, context=SmartRAGContext(threshold=1.01))["retrievals"] == 0
    assert graph.invoke({"question": "Paris?"}, context=SmartRAGContext(policy=answering_policy))["retrievals"] == 0
    assert graph.invoke({"question": "Paris?"}, context=SmartRAGContext(max_retrievals=2))["retrievals"] == 2
    answering = create_smartrag_graph(answering_policy, retriever, threshold=0.0)
    assert answering.invoke({"question": "Paris?"})["retrievals"] == 1  # threshold 0 always retrieves


@pytest.mark.parametrize("bad", ["", "   ", None, 7])
def test_bad_questions_raise_before_any_model_call(searching_policy, retriever, monkeypatch, bad):
    monkeypatch.setattr(searching_policy, "search_probability", lambda prompts: pytest.fail("model was called"))
    with pytest.raises(ValueError, match="question"):
        create_smartrag_graph(searching_policy, retriever).invoke({"question": bad})


class FailingRetriever(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager):
        raise ConnectionError("index offline")


def test_a_failing_retriever_is_recorded_and_the_answer_still_comes(searching_policy):
    out = create_smartrag_graph(searching_policy, FailingRetriever()).invoke({"question": "Who wrote Hamlet?"})
    assert out["retrievals"] == 1 and out["documents"] == []
    assert out["errors"] == ["retrieve: ConnectionError: index offline"]
    assert "answer" in out and "well_formed" in out


def same_run(a: dict, b: dict) -> bool:
    """Equal states; P(search) to 1e-6, as a padded batch's float sums may differ from a lone prompt's in the 7th
    digit."""
    key = "search_probabilities"
    return {**a, key: None} == {**b, key: None} and a[key] == pytest.approx(b[key], abs=1e-6)


def test_batch_stream_and_ainvoke_agree_with_invoke(policy, retriever):
    graph = create_smartrag_graph(policy, retriever)
    questions = [{"question": q} for q in ("Who wrote Hamlet?", "Capital of France?", "   ")]
    expected = [graph.invoke(q) for q in questions[:2]]
    batched = graph.batch(questions, return_exceptions=True)
    assert all(same_run(b, e) for b, e in zip(batched[:2], expected)) and isinstance(batched[2], ValueError)
    assert same_run(asyncio.run(graph.ainvoke(questions[0])), expected[0])
    updates = [next(iter(chunk)) for chunk in graph.stream(questions[0], stream_mode="updates")]
    assert updates[:2] == ["begin", "decide"] and updates[-1] == "answer"


def test_the_retriever_sees_the_graph_callbacks(searching_policy, retriever):
    class Recorder(BaseCallbackHandler):
        queries: ClassVar[list] = []

        def on_retriever_start(self, serialized, query, **kwargs):
            self.queries.append(query)

    recorder = Recorder()
    out = create_smartrag_graph(searching_policy, retriever).invoke({"question": "Hamlet?"}, {"callbacks": [recorder]})
    assert recorder.queries == out["queries"]


def test_readme_mermaid_is_the_graphs(policy, retriever):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", readme, re.DOTALL).group(1)
    assert block.strip() == create_smartrag_graph(policy, retriever).get_graph().draw_mermaid().strip()


def test_without_rewriting_the_question_is_the_query(searching_policy, retriever, monkeypatch):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    out = graph.invoke({"question": "Who wrote Hamlet?"})
    assert out["queries"] == ["Who wrote Hamlet?"] and out["documents"][0].metadata["title"] == "Hamlet"
    rewriting = graph.invoke({"question": "Who wrote Hamlet?"}, context=SmartRAGContext(rewrite_query=True))
    assert rewriting["queries"] != ["Who wrote Hamlet?"]
