"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from .nodes import SmartRAGNodes
from .policy import SmartRAGPolicy
from .retrievers.web import DuckDuckGoRetriever
from .state import EPISODE_START, SmartRAGContext, SmartRAGInput, SmartRAGOutput, SmartRAGState

__all__ = [
    "EPISODE_START", "SmartRAGContext", "SmartRAGGraph", "SmartRAGInput", "SmartRAGOutput", "SmartRAGState",
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
        warnings.warn(f"the policy was trained with preview={trained} but the graph uses preview={preview}: its "
                      "decisions were not trained on these prompts", stacklevel=3)
    return preview


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

    def batch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        """`CompiledStateGraph.batch`, as many at once as the policy batches unless the config says otherwise."""
        return super().batch(inputs, self._batch_config(config), **kwargs)

    async def abatch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        """`CompiledStateGraph.abatch`, as many at once as the policy batches unless the config says otherwise."""
        return await super().abatch(inputs, self._batch_config(config), **kwargs)


def create_smartrag_graph(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    *,
    max_retrievals: int = 1,
    threshold: float = 0.5,
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
    `max_retrievals`, after which the answer is forced. A retrieval that raises or takes longer than
    `retriever_timeout` seconds is recorded in `errors` and the episode goes on without it. With
    `rewrite_query=False` the question itself is the query (plain retrieve-then-read). `checkpointer`,
    `store`, `interrupt_before`/`interrupt_after` (e.g. `["retrieve"]` to approve each search) and `name`
    go to LangGraph's `compile`; each new question starts a fresh episode on a thread.

    `preview=n` first searches with the question and shows the first decision the titles of the top n hits
    (counted in `previews`, charged `ALPHA_PREVIEW` in the reward; a real search, so a web retriever pays for it).
    None takes the setting the policy was trained with (`policy.preview`), except with `DuckDuckGoRetriever`,
    where it is off unless asked for; a setting other than the training's is a warning.
    """
    if max_retrievals < 0:
        raise ValueError("max_retrievals must be >= 0")
    preview = _preview_setting(policy, retriever, preview)
    defaults = SmartRAGContext(policy, retriever, threshold, max_retrievals, rewrite_query, preview, sample=False,
                               record=False, temperature=1.0, sample_decision=True)
    nodes = SmartRAGNodes(defaults, retriever_timeout)

    builder = StateGraph(SmartRAGState, context_schema=SmartRAGContext, input_schema=SmartRAGInput,
                         output_schema=SmartRAGOutput)
    builder.add_node("begin", nodes.begin, destinations=("preview", "decide"))
    builder.add_node("preview", RunnableLambda(nodes.preview, nodes.apreview, name="preview"))
    builder.add_node("decide", RunnableLambda(nodes.decide, nodes.adecide, name="decide"),
                     destinations=("rewrite", "answer"))
    builder.add_node("rewrite", RunnableLambda(nodes.rewrite, nodes.arewrite, name="rewrite"))
    builder.add_node("retrieve", RunnableLambda(nodes.retrieve, nodes.aretrieve, name="retrieve"))
    builder.add_node("answer", RunnableLambda(nodes.answer, nodes.aanswer, name="answer"))
    builder.add_edge(START, "begin")
    builder.add_edge("preview", "decide")
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_edge("answer", END)
    compiled = builder.compile(checkpointer=checkpointer, store=store, interrupt_before=interrupt_before,
                               interrupt_after=interrupt_after, name=name)
    graph = SmartRAGGraph(**{k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"})
    return graph.with_config(max_concurrency=policy.max_batch_size)
