"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import copy
import uuid
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from pydantic import BaseModel, Field

from .messages import conversation_question
from .nodes import SmartRAGNodes, _threshold, gate_of
from .policy_protocol import PolicyLike, check_policy
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
    graph_context_schema,
)

__all__ = [
    "EPISODE_START",
    "SmartRAGContext",
    "SmartRAGGraph",
    "SmartRAGInput",
    "SmartRAGOutput",
    "SmartRAGState",
    "SmartRAGToolInput",
    "create_smartrag_graph",
    "create_smartrag_tool",
]


def _preview_setting(policy: PolicyLike, retriever: BaseRetriever, preview: int | None) -> int:
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


def _decision_setting(policy: PolicyLike, retriever: BaseRetriever, decision: str | None) -> Decider:
    """Who decides: the caller's choice, else the policy's gate where it has one (not for a web search, whose probe
    would be a real search and gives no scores), else the action token."""
    if decision is None:
        has_gate = getattr(policy, "gate", None) is not None
        return "gate" if has_gate and not isinstance(retriever, DuckDuckGoRetriever) else "token"
    if decision not in ("gate", "token"):
        raise ValueError(f"decision must be 'gate' or 'token', not {decision!r}")
    gate_of(policy, decision)  # raises for a gate the policy does not have
    return "gate" if decision == "gate" else "token"


def _shown_defaults(defaults: Settings) -> dict[str, Any]:
    """The graph's default for each field of the public context, as its JSON schema shows them: the threshold the
    decider takes when none is given, not None."""
    return {
        "threshold": _threshold(defaults, gate_of(defaults.policy, defaults.decision)),
        "max_retrievals": defaults.max_retrievals,
        "rewrite_query": defaults.rewrite_query,
        "preview": defaults.preview,
        "decision": defaults.decision,
    }


def _checked(input: Any) -> Any:
    """A new question, checked before it touches a thread: a bad one raises and leaves a paused or finished thread as
    it was. A conversation without a `question` asks its last human message (None resumes a paused thread; a Command
    is LangGraph's own)."""
    if isinstance(input, dict) and "question" not in input and "messages" in input:
        input = {**input, "question": conversation_question(input["messages"])}
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
        input = _checked(input)
        view = self._fresh_view(input, kwargs)
        return _viewed(super().stream(input, config, **kwargs), view)

    def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        """`CompiledStateGraph.astream` (what `ainvoke` runs), with the question checked first."""
        input = _checked(input)
        view = self._fresh_view(input, kwargs)
        return _aviewed(super().astream(input, config, **kwargs), view)

    def as_tool(
        self,
        args_schema: type[BaseModel] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
    ) -> BaseTool:
        """`Runnable.as_tool`, whose model sees the question alone (not the input's `messages`) and gets the whole
        output back. An agent reads `create_smartrag_tool(graph)` better: the answer, with the documents beside it."""
        if args_schema is None and arg_types is None:
            args_schema = SmartRAGToolInput
        return super().as_tool(args_schema, name=name, description=description, arg_types=arg_types)

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


class SmartRAGToolInput(BaseModel):
    """What a model passes a SmartRAG tool: the question."""

    question: str = Field(description="A self-contained question: the tool sees nothing else of the conversation.")


TOOL_DESCRIPTION = (
    "Answer a factual question. Searches a document index first when that is likely to help, and returns a short "
    "answer."
)
"""What `create_smartrag_tool` tells a model the tool does, unless told otherwise."""


def create_smartrag_tool(
    graph: SmartRAGGraph, *, name: str = "smartrag", description: str = TOOL_DESCRIPTION
) -> BaseTool:
    """The graph as a tool an agent reads: the model passes a question and gets the answer as the tool message's
    content, with the documents the answer read as its `artifact` (for citations; never shown to the model).

    Each call is its own episode. On a graph that keeps checkpoints, a call whose config names no thread runs on a
    thread of its own, deleted afterwards. Inside an agent the graph runs as the tool's subgraph, on the agent's
    thread if it has one. A graph that pauses before answering (`interrupt_before`) is an error when called alone.
    """

    def answer(question: str, config: RunnableConfig) -> tuple[str, list[Document]]:
        config, saver = _own_thread(graph, config)
        try:
            return _content_and_artifact(graph.stream({"question": question}, config, stream_mode=_TOOL_MODES))
        finally:
            if saver is not None:
                saver.delete_thread(config["configurable"]["thread_id"])

    async def aanswer(question: str, config: RunnableConfig) -> tuple[str, list[Document]]:
        config, saver = _own_thread(graph, config)
        try:
            chunks = graph.astream({"question": question}, config, stream_mode=_TOOL_MODES)
            return _content_and_artifact([chunk async for chunk in chunks])
        finally:
            if saver is not None:
                await saver.adelete_thread(config["configurable"]["thread_id"])

    return StructuredTool.from_function(
        func=answer,
        coroutine=aanswer,
        name=name,
        description=description,
        args_schema=SmartRAGToolInput,
        response_format="content_and_artifact",
    )


def _own_thread(graph: SmartRAGGraph, config: RunnableConfig) -> tuple[RunnableConfig, BaseCheckpointSaver | None]:
    """A tool call's config, and the saver to delete its thread from afterwards: a new thread where the graph keeps
    checkpoints and the config names none; else the config as it is, and None."""
    saver, configurable = graph.checkpointer, config.get("configurable") or {}
    if not isinstance(saver, BaseCheckpointSaver) or configurable.get("thread_id") is not None:
        return config, None
    return {**config, "configurable": {**configurable, "thread_id": f"smartrag-tool-{uuid.uuid4()}"}}, saver


_TOOL_MODES = ["values", "updates"]
"""What a tool call streams: the output (the last `values`), and `updates`, where a pause shows."""


def _content_and_artifact(chunks: Iterable[tuple[str, Any]]) -> tuple[str, list[Document]]:
    """A tool's answer and documents from the graph's stream; a graph that paused is an error, not an empty answer."""
    output: dict[str, Any] = {}
    for mode, chunk in chunks:
        if mode == "updates" and "__interrupt__" in chunk:
            raise RuntimeError(
                "the SmartRAG graph paused before answering (interrupt_before/interrupt_after), but a tool call must "
                "end with an answer: make the tool from a graph without interrupts"
            )
        if mode == "values":
            output = chunk
    return output["answer"], list(output.get("documents", []))


def create_smartrag_graph(
    policy: PolicyLike,
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
    """Compile the SmartRAG graph: a Runnable taking `{"question": str}` (or `{"messages": [...]}`, whose last human
    message is the question and which gets the answer appended as an AIMessage) and returning `SmartRAGOutput`.

    decide retrieves when P(search) >= `threshold` (0 always retrieves, above 1 never does) until
    `max_retrievals`, after which the answer is forced. The first decision's P(search) comes from the policy's
    decision gate (`decision="gate"`, the default where the policy ships one: it reads the policy's decision pass and
    a probe search with the question, counted in `previews`; a gate trained with `--reader` also reads the policy's
    two drafts, closed book and over the probe's hits, answers with the one it picks and, when that is the read one,
    counts the probe as the retrieval) or from the action token (`decision="token"`, the paper's). `threshold` None
    takes the gate's own (selected when it was trained), or 0.5 for the token. A retrieval that raises or takes
    longer than `retriever_timeout` seconds is recorded in `errors` and the episode goes on without it. With
    `rewrite_query=False` the question itself is the query (plain retrieve-then-read). `checkpointer`,
    `store`, `interrupt_before`/`interrupt_after` (e.g. `["retrieve"]` to approve each search) and `name`
    go to LangGraph's `compile`; each new question starts a fresh episode on a thread.

    `preview=n` first searches with the question and shows the first decision the titles of the top n hits
    (counted in `previews`, charged `ALPHA_PREVIEW` in the reward; a real search, so a web retriever pays for it).
    None takes the setting the policy was trained with (`policy.preview`), except with `DuckDuckGoRetriever`,
    where it is off unless asked for; a setting other than the training's is a warning.

    `policy` is anything `PolicyLike`: `SmartRAGPolicy` (a model in this process) or `SmartRAGEndpointPolicy` (a
    served one, whose failures are recorded in `errors` where the episode can go on); a policy that lacks a member
    is a TypeError naming it, here.
    """
    check_policy(policy)
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
        SmartRAGState,
        context_schema=graph_context_schema(_shown_defaults(defaults)),
        input_schema=SmartRAGInput,
        output_schema=SmartRAGOutput,
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
