"""Each node of the SmartRAG graph on its own: a hand-made state in, the node's update and route out.

No model is loaded: a scripted policy stands in for `SmartRAGPolicy`, and the retriever is a real BM25 index
over three documents (or one that fails). Outside a graph the nodes run with the defaults they were built with.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langgraph.types import Command, Overwrite

from langchain_smartrag import SEARCH, BM25Retriever
from langchain_smartrag.decision import Decision
from langchain_smartrag.decoding import Generation
from langchain_smartrag.nodes import SmartRAGNodes
from langchain_smartrag.state import EPISODE_CLEARED, EPISODE_START, Settings

DOCUMENTS = [
    Document(page_content="Paris is the capital and largest city of France.", metadata={"title": "Paris"}),
    Document(page_content="Hamlet is a tragedy written by William Shakespeare.", metadata={"title": "Hamlet"}),
    Document(page_content="Apollo 11 landed on the Moon in 1969.", metadata={"title": "Apollo 11"}),
]
NO_CALLBACKS: dict[str, Any] = {}
"""A node's config outside a graph: no tracer, no seed."""


class ScriptedPolicy:
    """What the nodes use of a policy: a fixed P(search) and fixed completions, with every prompt it was given."""

    model_name = "scripted"
    max_new_tokens = 8

    def __init__(self, p_search: float = 0.5, completion: str = " capital of France") -> None:
        self.p_search, self.completion, self.prompts = p_search, completion, []

    def prompt(self, question: str, documents: list[Document], preview: list[str] | None = None) -> str:
        titles = ", ".join(d.metadata.get("title", "") for d in documents)
        return f"Q: {question} | documents: {titles} | preview: {preview}"

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decide(self, prompts: list[str]) -> list[Decision]:
        self.prompts += prompts
        return [Decision(self.p_search, [-0.1], [-2.3], prompt_tokens=5) for _ in prompts]

    def generate(self, prompts: list[str], prefix: str, on_token: Any = None, **sampling: Any) -> list[Generation]:
        self.prompts += prompts
        return [Generation(self.completion, self.encode(self.completion), [-0.5] * len(self.completion))]


class FailingRetriever(BaseRetriever):
    """A retriever whose search service is down."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        raise ConnectionError("search service unreachable")


class HangingRetriever(BaseRetriever):
    """A retriever that never answers (until the test releases it)."""

    release: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.release.wait()
        return []


def nodes_with(
    policy: Any = None, retriever: BaseRetriever | None = None, timeout: float | None = 30.0, **settings: Any
) -> SmartRAGNodes:
    """Nodes with the graph's usual defaults, some of them changed."""
    defaults = Settings(
        policy or ScriptedPolicy(),
        retriever or BM25Retriever.from_documents(DOCUMENTS, k=2),
        threshold=0.5,
        max_retrievals=1,
        rewrite_query=True,
        preview=0,
        decision="token",
        sample=False,
        temperature=1.0,
        sample_decision=True,
        record=False,
    )
    return SmartRAGNodes(replace(defaults, **settings), timeout)


# begin ------------------------------------------------------------------------------------------------------
def test_begin_clears_what_a_thread_carried_and_goes_to_decide():
    command = nodes_with().begin({"question": "Where is Paris?", "retrievals": 3, "queries": ["old"]})

    assert command.goto == "decide"
    assert command.update == {**{key: Overwrite(value) for key, value in EPISODE_START.items()}, **EPISODE_CLEARED}


def test_begin_goes_to_the_preview_when_the_episode_has_one():
    assert nodes_with(preview=2).begin({"question": "Where is Paris?"}).goto == "preview"


@pytest.mark.parametrize("state", [{}, {"question": "   "}, {"question": 42}])
def test_begin_refuses_an_input_without_a_question(state):
    with pytest.raises(ValueError, match="question"):
        nodes_with().begin(state)


def test_outside_a_graph_the_nodes_use_their_defaults():
    nodes = nodes_with(threshold=0.8)
    assert nodes.settings() is nodes.defaults


# decide -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("p_search", "goto"), [(0.5, "rewrite"), (0.9, "rewrite"), (0.49, "answer")])
def test_decide_searches_when_p_search_reaches_the_threshold(p_search, goto):
    command = nodes_with(ScriptedPolicy(p_search)).decide({"question": "Where is Paris?"}, NO_CALLBACKS)

    assert command == Command(update={"search_probabilities": [p_search]}, goto=goto)


def test_decide_answers_without_asking_the_policy_once_the_quota_is_spent():
    policy = ScriptedPolicy(p_search=1.0)
    command = nodes_with(policy).decide({"question": "Where is Paris?", "retrievals": 1}, NO_CALLBACKS)

    assert command == Command(goto="answer")
    assert policy.prompts == []


def test_decide_records_the_action_it_took_for_training():
    command = nodes_with(ScriptedPolicy(0.9), record=True).decide({"question": "Where is Paris?"}, NO_CALLBACKS)

    (step,) = command.update["trace"]
    assert step["node"] == "decide"
    assert step["text"] == SEARCH
    assert step["logprobs"] == [-0.1]  # the search prefix's, since it searched


# rewrite ----------------------------------------------------------------------------------------------------
def test_rewrite_writes_the_query_after_the_search_prefix():
    update = nodes_with().rewrite({"question": "Where is Paris?"}, NO_CALLBACKS)
    assert update == {"queries": ["capital of France"]}


def test_an_empty_rewrite_searches_with_the_question_and_says_so():
    update = nodes_with(ScriptedPolicy(completion="")).rewrite({"question": "Where is Paris?"}, NO_CALLBACKS)
    assert update == {"queries": ["Where is Paris?"], "errors": ["rewrite: empty query, searched with the question"]}


def test_with_rewriting_off_the_question_is_the_query_and_the_policy_is_not_asked():
    policy = ScriptedPolicy()
    update = nodes_with(policy, rewrite_query=False).rewrite({"question": "Where is Paris?"}, NO_CALLBACKS)

    assert update == {"queries": ["Where is Paris?"]}
    assert policy.prompts == []


# retrieve and preview ---------------------------------------------------------------------------------------
def test_retrieve_searches_with_the_latest_query():
    update = nodes_with().retrieve({"question": "q", "queries": ["Hamlet", "capital of France"]}, NO_CALLBACKS)

    assert update["retrievals"] == 1
    assert update["documents"][0].metadata["title"] == "Paris"
    assert "errors" not in update


async def test_aretrieve_finds_the_same_documents():
    state = {"question": "q", "queries": ["capital of France"]}
    nodes = nodes_with()
    assert await nodes.aretrieve(state, NO_CALLBACKS) == nodes.retrieve(state, NO_CALLBACKS)


def test_a_failing_retriever_is_recorded_and_the_episode_goes_on():
    update = nodes_with(retriever=FailingRetriever()).retrieve({"question": "q", "queries": ["Paris"]}, NO_CALLBACKS)

    assert update == {
        "retrievals": 1,
        "documents": [],
        "errors": ["retrieve: ConnectionError: search service unreachable"],
    }


@pytest.mark.parametrize("run_async", [False, True])
async def test_a_retriever_slower_than_the_timeout_is_recorded_as_a_timeout(run_async):
    release = threading.Event()
    nodes = nodes_with(retriever=HangingRetriever(release=release), timeout=0.05)
    state = {"question": "q", "queries": ["Paris"]}
    try:
        update = await nodes.aretrieve(state, NO_CALLBACKS) if run_async else nodes.retrieve(state, NO_CALLBACKS)
    finally:
        release.set()

    assert update == {
        "retrievals": 1,
        "documents": [],
        "errors": ["retrieve: TimeoutError: no documents within 0.05 s"],
    }


def test_preview_shows_the_titles_of_the_questions_top_hits():
    update = nodes_with(preview=1).preview({"question": "What is the capital of France?"}, NO_CALLBACKS)
    assert update == {"previews": 1, "preview": ["Paris"]}


# answer -----------------------------------------------------------------------------------------------------
def test_answer_writes_after_the_answer_prefix_from_the_retrieved_documents():
    policy = ScriptedPolicy(completion=" Paris")
    state = {"question": "Where is Paris?", "documents": DOCUMENTS[:1], "preview": ["Hamlet"]}
    update = nodes_with(policy).answer(state, NO_CALLBACKS)

    assert update == {"answer": "Paris", "well_formed": True}
    assert policy.prompts == ["Q: Where is Paris? | documents: Paris | preview: None"]  # never the preview


def test_an_answer_without_text_is_not_well_formed():
    update = nodes_with(ScriptedPolicy(completion="")).answer({"question": "Where is Paris?"}, NO_CALLBACKS)
    assert update == {"answer": "", "well_formed": False}
