"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import copy
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from .nodes import SmartRAGNodes, gate_of
from .policy import SmartRAGPolicy
from .protocol import validate_question
from .retrievers.web import DuckDuckGoRetriever
from .state import (
    EPISODE_CLEARED,
    EPISODE_START,
    Decider,
    Settings,
    SmartRAGContext,
    SmartRAGInput,
    SmartRAGOutput,
    SmartRAGState,
)

__all__ = [
    "EPISODE_START",
    "SmartRAGContext",
    "SmartRAGGraph",
    "SmartRAGInput",
    "SmartRAGOutput",
    "SmartRAGState",
    "create_smartrag_graph",
]


def _preview_setting(policy: SmartRAGPolicy, retriever: BaseRetriever, preview: int | None) -> int:
    """The graph's preview: the caller's, else the policy's own (off for a web search), warning on a mismatch."""
    trained = getattr(policy, "preview", 0)
    if preview is None:
        preview = 0 if isinstance(retriever, DuckDuckGoRetriever) else trained
    if preview < 0:
        raise ValueError("preview must be >= 0")
    if preview != trained:
        warnings.warn(
            f"the policy was trained with preview={trained} but the graph uses preview={preview}: its "
            "decisions were not trained on these prompts",
            stacklevel=3,
        )
    return preview


def _decision_setting(policy: SmartRAGPolicy, retriever: BaseRetriever, decision: str | None) -> Decider:
    """Who decides: the caller's choice, else the policy's gate where it has one (not for a web search, whose probe
    would be a real search and gives no scores), else the action token."""
    if decision is None:
        has_gate = getattr(policy, "gate", None) is not None
        return "gate" if has_gate and not isinstance(retriever, DuckDuckGoRetriever) else "token"
    if decision not in ("gate", "token"):
        raise ValueError(f"decision must be 'gate' or 'token', not {decision!r}")
    gate_of(policy, decision)  # raises for a gate the policy does not have
    return "gate" if decision == "gate" else "token"


def _checked(input: Any) -> Any:
    """A new question is checked before it touches a thread: a bad one raises and leaves a paused or finished thread
    as it was (None resumes a paused thread; a Command is LangGraph's own)."""
    if isinstance(input, dict) and "question" in input:
        validate_question(input["question"])
    return input


class _FreshFirstValues:
    """A new question's first `values` chunk, as the question's own: LangGraph emits it after the input step, before
    `begin` clears what the thread's last episode left (its answer, documents and counts), so without this a thread
    would stream the new question beside the old answer."""

    def __init__(self, input: Any, stream_mode: Any, subgraphs: bool, version: str) -> None:
        self.pending = isinstance(input, dict) and "question" in input
        self.stream_mode, self.subgraphs, self.version = stream_mode, subgraphs, version

    def __call__(self, chunk: Any) -> Any:
        if not self.pending:
            return chunk
        if self.version == "v2":
            ns, mode, values = chunk.get("ns"), chunk.get("type"), chunk.get("data")
        elif isinstance(self.stream_mode, list):
            ns, mode, values = chunk if self.subgraphs else ((), *chunk)
        else:
            ns, values = chunk if self.subgraphs else ((), chunk)
            mode = self.stream_mode
        if mode != "values" or ns:
            return chunk
        self.pending = False
        if isinstance(values, dict):
            cleared = {**EPISODE_START, **EPISODE_CLEARED}
            values = {key: copy.copy(cleared[key]) if key in cleared else value for key, value in values.items()}
        if self.version == "v2":
            return {**chunk, "data": values}
        if isinstance(self.stream_mode, list) or self.subgraphs:
            return (*chunk[:-1], values)
        return values


def _viewed(chunks: Iterator[Any], view: _FreshFirstValues) -> Iterator[Any]:
    try:
        for chunk in chunks:
            yield view(chunk)
    finally:
        getattr(chunks, "close", lambda: None)()


async def _aviewed(chunks: AsyncIterator[Any], view: _FreshFirstValues) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            yield view(chunk)
    finally:
        if hasattr(chunks, "aclose"):
            await chunks.aclose()


class SmartRAGGraph(CompiledStateGraph):
    """The compiled SmartRAG graph. `batch` and `abatch` run up to the policy's `max_batch_size` inputs at once
    unless the caller's config says otherwise, so the policy's dynamic batcher sees them together."""

    def _batch_config(self, config: RunnableConfig | Sequence[RunnableConfig] | None) -> Any:
        """The caller's config, given the graph's `max_concurrency` unless it (or a list of configs) sets its own."""
        default = (self.config or {}).get("max_concurrency")
        if default is None or isinstance(config, Sequence):  # a list of configs: each caller's own
            return config
        if (config or {}).get("max_concurrency") is not None:
            return config
        return {**(config or {}), "max_concurrency": default}

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:
        """`CompiledStateGraph.stream` (what `invoke` runs), with the question checked before it enters a thread."""
        view = self._fresh_view(_checked(input), kwargs)
        return _viewed(super().stream(input, config, **kwargs), view)

    def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        """`CompiledStateGraph.astream` (what `ainvoke` runs), with the question checked first."""
        view = self._fresh_view(_checked(input), kwargs)
        return _aviewed(super().astream(input, config, **kwargs), view)

    def _fresh_view(self, input: Any, kwargs: dict[str, Any]) -> _FreshFirstValues:
        """What shows a new question's first `values` chunk without the thread's last answer."""
        stream_mode = kwargs.get("stream_mode") or self.stream_mode
        return _FreshFirstValues(input, stream_mode, kwargs.get("subgraphs", False), kwargs.get("version", "v1"))

    def batch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        """`CompiledStateGraph.batch`, as many at once as the policy batches unless the config says otherwise."""
        return super().batch(list(inputs), self._batch_config(config), **kwargs)

    async def abatch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        """`CompiledStateGraph.abatch`, as many at once as the policy batches unless the config says otherwise."""
        return await super().abatch(list(inputs), self._batch_config(config), **kwargs)


def create_smartrag_graph(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    *,
    max_retrievals: int = 1,
    threshold: float | None = None,
    decision: Decider | None = None,
    retriever_timeout: float | None = 30.0,
    rewrite_query: bool = True,
    preview: int | None = None,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    interrupt_before: list[str] | None = None,
    interrupt_after: list[str] | None = None,
    name: str = "SmartRAG",
) -> SmartRAGGraph:
    """Compile the SmartRAG graph: a Runnable taking `{"question": str}` and returning `SmartRAGOutput`.

    decide retrieves when P(search) >= `threshold` (0 always retrieves, above 1 never does) until
    `max_retrievals`, after which the answer is forced. The first decision's P(search) comes from the policy's
    decision gate (`decision="gate"`, the default where the policy ships one: it reads the policy's hidden state and
    the scores of a probe search with the question, counted in `previews`) or from the action token
    (`decision="token"`, the paper's). `threshold` None takes the gate's own (selected when it was trained), or 0.5
    for the token. A retrieval that raises or takes longer than
    `retriever_timeout` seconds is recorded in `errors` and the episode goes on without it. With
    `rewrite_query=False` the question itself is the query (plain retrieve-then-read). `checkpointer`,
    `store`, `interrupt_before`/`interrupt_after` (e.g. `["retrieve"]` to approve each search) and `name`
    go to LangGraph's `compile`; each new question starts a fresh episode on a thread.

    `preview=n` first searches with the question and shows the first decision the titles of the top n hits
    (counted in `previews`, charged `ALPHA_PREVIEW` in the reward; a real search, so a web retriever pays for it).
    None takes the setting the policy was trained with (`policy.preview`), except with `DuckDuckGoRetriever`,
    where it is off unless asked for; a setting other than the training's is a warning.
    """
    defaults = Settings(
        policy,
        retriever,
        threshold,
        max_retrievals,
        rewrite_query,
        _preview_setting(policy, retriever, preview),
        _decision_setting(policy, retriever, decision),
        sample=False,
        temperature=1.0,
        sample_decision=True,
        record=False,
    )
    nodes = SmartRAGNodes(defaults, retriever_timeout)

    builder = StateGraph(
        SmartRAGState, context_schema=SmartRAGContext, input_schema=SmartRAGInput, output_schema=SmartRAGOutput
    )
    builder.add_node("begin", nodes.begin, destinations=("preview", "decide"))
    builder.add_node("preview", RunnableLambda(nodes.preview, nodes.apreview, name="preview"))
    builder.add_node(
        "decide", RunnableLambda(nodes.decide, nodes.adecide, name="decide"), destinations=("rewrite", "answer")
    )
    builder.add_node("rewrite", RunnableLambda(nodes.rewrite, nodes.arewrite, name="rewrite"))
    builder.add_node("retrieve", RunnableLambda(nodes.retrieve, nodes.aretrieve, name="retrieve"))
    builder.add_node("answer", RunnableLambda(nodes.answer, nodes.aanswer, name="answer"))
    builder.add_edge(START, "begin")
    builder.add_edge("preview", "decide")
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_edge("answer", END)
    compiled = builder.compile(
        checkpointer=checkpointer,
        store=store,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        name=name,
    )
    graph = SmartRAGGraph(**{k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"})
    return graph.with_config(max_concurrency=policy.max_batch_size)
