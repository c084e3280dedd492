"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Required, TypedDict

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from .policy import SmartRAGPolicy
from .protocol import ANSWER, SEARCH, parse_action, validate_question


class SmartRAGState(TypedDict, total=False):
    """What an episode produces. Lists and counts accumulate across nodes."""

    question: Required[str]
    answer: str
    well_formed: bool
    """Whether the final output parsed as an `[Answer]` with text (the reward's -1 case when False)."""
    retrievals: Annotated[int, operator.add]
    queries: Annotated[list[str], operator.add]
    documents: Annotated[list[Document], operator.add]
    search_probabilities: Annotated[list[float], operator.add]
    errors: Annotated[list[str], operator.add]


@dataclass
class SmartRAGContext:
    """Per-call overrides (`graph.invoke(..., context=SmartRAGContext(policy=trained))`); None keeps the default."""

    policy: SmartRAGPolicy | None = None
    retriever: BaseRetriever | None = None
    threshold: float | None = None
    max_retrievals: int | None = None


def create_smartrag_graph(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    *,
    max_retrievals: int = 1,
    threshold: float = 0.5,
) -> CompiledStateGraph:
    """Compile the SmartRAG graph: a Runnable taking `{"question": str}` and returning `SmartRAGState`.

    decide retrieves when P(search) >= `threshold` (0 always retrieves, above 1 never does) until
    `max_retrievals`, after which the answer is forced.
    """
    if max_retrievals < 0:
        raise ValueError("max_retrievals must be >= 0")
    defaults = SmartRAGContext(policy, retriever, threshold, max_retrievals)

    def settings(runtime: Runtime[SmartRAGContext]) -> SmartRAGContext:
        if runtime.context is None:
            return defaults
        return replace(defaults, **{k: v for k, v in vars(runtime.context).items() if v is not None})

    def decide(state: SmartRAGState, runtime: Runtime[SmartRAGContext]) -> Command[Literal["rewrite", "answer"]]:
        question = validate_question(state.get("question"))
        ctx = settings(runtime)
        if state.get("retrievals", 0) >= ctx.max_retrievals:
            return Command(goto="answer")
        prompt = ctx.policy.prompt(question, state.get("documents", []))
        p_search = ctx.policy.search_probability([prompt])[0]
        return Command(update={"search_probabilities": [p_search]}, goto="rewrite" if p_search >= ctx.threshold else "answer")

    def rewrite(state: SmartRAGState, runtime: Runtime[SmartRAGContext]) -> dict[str, Any]:
        policy = settings(runtime).policy
        generation = policy.generate([policy.prompt(state["question"], state.get("documents", []))], SEARCH)[0]
        action = parse_action(SEARCH + generation.text)
        if action.well_formed:
            return {"queries": [action.text]}
        return {"queries": [state["question"]], "errors": ["rewrite: empty query, searched with the question"]}

    def retrieve(state: SmartRAGState, config: RunnableConfig, runtime: Runtime[SmartRAGContext]) -> dict[str, Any]:
        query = state["queries"][-1]
        try:
            documents = settings(runtime).retriever.invoke(query, config)
        except Exception as error:  # any retriever may fail; the answer must still come
            return {"retrievals": 1, "errors": [f"retrieve: {type(error).__name__}: {error}"]}
        return {"retrievals": 1, "documents": documents}

    def answer(state: SmartRAGState, runtime: Runtime[SmartRAGContext]) -> dict[str, Any]:
        policy = settings(runtime).policy
        generation = policy.generate([policy.prompt(state["question"], state.get("documents", []))], ANSWER)[0]
        action = parse_action(ANSWER + generation.text)
        return {"answer": action.text, "well_formed": action.well_formed}

    builder = StateGraph(SmartRAGState, context_schema=SmartRAGContext)
    builder.add_node("decide", decide)
    builder.add_node("rewrite", rewrite)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", answer)
    builder.add_edge(START, "decide")
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_edge("answer", END)
    return builder.compile(name="SmartRAG")
