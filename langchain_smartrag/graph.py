"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import asyncio
import contextlib
import operator
import random
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Annotated, Any, Required, TypedDict

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import ContextThreadPoolExecutor, get_callback_manager_for_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Command

from .policy import Decision, Generation, SmartRAGPolicy
from .protocol import ANSWER, SEARCH, parse_action, validate_question


class SmartRAGState(TypedDict, total=False):
    """What an episode produces. Lists and counts accumulate across nodes."""

    question: Required[str]
    seed: int
    """With `SmartRAGContext(sample=True)`: seeds this episode's draws, whatever else shares its batches."""
    answer: str
    well_formed: bool
    """Whether the final output parsed as an `[Answer]` with text (the reward's -1 case when False)."""
    retrievals: Annotated[int, operator.add]
    queries: Annotated[list[str], operator.add]
    documents: Annotated[list[Document], operator.add]
    search_probabilities: Annotated[list[float], operator.add]
    errors: Annotated[list[str], operator.add]
    trace: Annotated[list[dict[str, Any]], operator.add]
    """With `record=True`: every policy call as {node, prompt, prefix, token_ids, logprobs} (for training)."""


@dataclass
class SmartRAGContext:
    """Per-call overrides (`graph.invoke(..., context=SmartRAGContext(policy=trained))`); None keeps the default."""

    policy: SmartRAGPolicy | None = None
    retriever: BaseRetriever | None = None
    threshold: float | None = None
    max_retrievals: int | None = None
    rewrite_query: bool | None = None
    sample: bool | None = None
    """Training rollouts: draw the decision from P(search) and sample text (top-k 50) instead of greedy."""
    temperature: float | None = None
    """With `sample`: the text's sampling temperature (default 1)."""
    sample_decision: bool | None = None
    """With `sample`: draw the decision (default), or take it at `threshold` as when serving while the text is
    still sampled (paired PPO rollouts force each branch with threshold 0 and above 1)."""
    record: bool | None = None
    """Append every policy call to the state's `trace`."""


_RETRIEVAL_POOL = ContextThreadPoolExecutor(max_workers=32, thread_name_prefix="smartrag-retrieve")
"""Runs sync retrievals under a timeout; a retriever that hangs holds one of these threads, not the graph."""


class _PolicyRun:
    """A policy call reported to LangChain callbacks as a chat-model run, so tracers and
    `stream_mode="messages"` see it; generated text streams through `token`."""

    def __init__(self, manager: CallbackManagerForLLMRun | None) -> None:
        self.manager = manager
        self.message_id = f"lc_run--{manager.run_id}" if manager else None  # chunks and the final message share it

    def token(self, _row: int, text: str) -> None:
        if self.manager is not None:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text, id=self.message_id))
            self.manager.on_llm_new_token(text, chunk=chunk)

    def end(self, text: str, **metadata: Any) -> None:
        if self.manager is not None:
            message = AIMessage(content=text, id=self.message_id, response_metadata=metadata)
            self.manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))


@contextlib.contextmanager
def _policy_run(config: RunnableConfig, node: str, prompt: str, *, stream: bool = True) -> Iterator[_PolicyRun]:
    manager = get_callback_manager_for_config(config)
    if not manager.handlers:
        yield _PolicyRun(None)
        return
    if not stream:
        manager.add_tags([TAG_NOSTREAM], inherit=False)
    (run,) = manager.on_chat_model_start(
        {"name": "SmartRAGPolicy"}, [[HumanMessage(content=prompt)]], name=f"policy:{node}"
    )
    try:
        yield _PolicyRun(run)
    except BaseException as error:
        run.on_llm_error(error)
        raise


def _draws(state: SmartRAGState, node: str) -> random.Random | Any:
    """The random source of one sampling node call: derived from the episode's `seed`, else the global one."""
    if state.get("seed") is None:
        return random
    return random.Random(f"{state['seed']}/{node}/{state.get('retrievals', 0)}")


def create_smartrag_graph(
    policy: SmartRAGPolicy,
    retriever: BaseRetriever,
    *,
    max_retrievals: int = 1,
    threshold: float = 0.5,
    retriever_timeout: float | None = 30.0,
    rewrite_query: bool = True,
) -> CompiledStateGraph:
    """Compile the SmartRAG graph: a Runnable taking `{"question": str}` and returning `SmartRAGState`.

    decide retrieves when P(search) >= `threshold` (0 always retrieves, above 1 never does) until
    `max_retrievals`, after which the answer is forced. A retrieval that raises or takes longer than
    `retriever_timeout` seconds is recorded in `errors` and the episode goes on without it. With
    `rewrite_query=False` the question itself is the query (plain retrieve-then-read).
    """
    if max_retrievals < 0:
        raise ValueError("max_retrievals must be >= 0")
    defaults = SmartRAGContext(policy, retriever, threshold, max_retrievals, rewrite_query, sample=False, record=False,
                               temperature=1.0, sample_decision=True)

    def settings() -> SmartRAGContext:
        context = get_runtime(SmartRAGContext).context
        if context is None:
            return defaults
        return replace(defaults, **{k: v for k, v in vars(context).items() if v is not None})

    # decide ---------------------------------------------------------------------------------
    def decision_prompt(state: SmartRAGState) -> tuple[SmartRAGContext, str | None]:
        """The prompt to score, or None when the quota forces the answer. Validates the question first."""
        question = validate_question(state.get("question"))
        ctx = settings()
        if state.get("retrievals", 0) >= ctx.max_retrievals:
            return ctx, None
        return ctx, ctx.policy.prompt(question, state.get("documents", []))

    def route(state: SmartRAGState, ctx: SmartRAGContext, prompt: str, decision: Decision, run: _PolicyRun) -> Command:
        if ctx.sample and ctx.sample_decision:
            search = _draws(state, "decide").random() < decision.p_search
        else:
            search = decision.p_search >= ctx.threshold
        action = SEARCH if search else ANSWER
        run.end(action, search_probability=decision.p_search)
        update: dict[str, Any] = {"search_probabilities": [decision.p_search]}
        if ctx.record:
            logprobs = decision.search_logprobs if search else decision.answer_logprobs
            update["trace"] = [{"node": "decide", "prompt": prompt, "prefix": "", "text": action,
                                "token_ids": ctx.policy.encode(action), "logprobs": logprobs}]
        return Command(update=update, goto="rewrite" if search else "answer")

    def decide(state: SmartRAGState, config: RunnableConfig) -> Command:
        ctx, prompt = decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        with _policy_run(config, "decide", prompt, stream=False) as run:
            return route(state, ctx, prompt, ctx.policy.decide([prompt])[0], run)

    async def adecide(state: SmartRAGState, config: RunnableConfig) -> Command:
        ctx, prompt = decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        with _policy_run(config, "decide", prompt, stream=False) as run:
            return route(state, ctx, prompt, (await ctx.policy.adecide([prompt]))[0], run)

    # rewrite and answer: generation after a forced action prefix ------------------------------
    def generation_call(state: SmartRAGState, node: str) -> tuple[SmartRAGContext, str, dict[str, Any]]:
        """Settings, prompt, and sampling arguments (top-k 50, the paper's rollout setting, when sampling)."""
        ctx = settings()
        sampling: dict[str, Any] = {}
        if ctx.sample:
            seed = None if state.get("seed") is None else _draws(state, node).getrandbits(63)
            sampling = {"sample": True, "seeds": [seed], "temperature": ctx.temperature or 1.0}
        return ctx, ctx.policy.prompt(state["question"], state.get("documents", [])), sampling

    def recorded(ctx: SmartRAGContext, node: str, prompt: str, prefix: str, generation: Generation) -> dict[str, Any]:
        if not ctx.record:
            return {}
        return {"trace": [{"node": node, "prompt": prompt, "prefix": prefix, "text": generation.text,
                           "token_ids": generation.token_ids, "logprobs": generation.logprobs}]}

    def query_update(
        state: SmartRAGState, ctx: SmartRAGContext, prompt: str, generation: Generation, run: _PolicyRun
    ) -> dict[str, Any]:
        action = parse_action(SEARCH + generation.text)
        run.end(action.text)
        update = recorded(ctx, "rewrite", prompt, SEARCH, generation)
        if action.well_formed:
            return {**update, "queries": [action.text]}
        return {**update, "queries": [state["question"]], "errors": ["rewrite: empty query, searched with the question"]}

    def answer_update(
        state: SmartRAGState, ctx: SmartRAGContext, prompt: str, generation: Generation, run: _PolicyRun
    ) -> dict[str, Any]:
        action = parse_action(ANSWER + generation.text)
        run.end(action.text)
        return {**recorded(ctx, "answer", prompt, ANSWER, generation), "answer": action.text, "well_formed": action.well_formed}

    def rewrite(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        if not settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling = generation_call(state, "rewrite")
        with _policy_run(config, "rewrite", prompt) as run:
            generation = ctx.policy.generate([prompt], SEARCH, on_token=run.token, **sampling)[0]
            return query_update(state, ctx, prompt, generation, run)

    async def arewrite(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        if not settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling = generation_call(state, "rewrite")
        with _policy_run(config, "rewrite", prompt) as run:
            generation = (await ctx.policy.agenerate([prompt], SEARCH, on_token=run.token, **sampling))[0]
            return query_update(state, ctx, prompt, generation, run)

    def answer(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        ctx, prompt, sampling = generation_call(state, "answer")
        with _policy_run(config, "answer", prompt) as run:
            generation = ctx.policy.generate([prompt], ANSWER, on_token=run.token, **sampling)[0]
            return answer_update(state, ctx, prompt, generation, run)

    async def aanswer(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        ctx, prompt, sampling = generation_call(state, "answer")
        with _policy_run(config, "answer", prompt) as run:
            generation = (await ctx.policy.agenerate([prompt], ANSWER, on_token=run.token, **sampling))[0]
            return answer_update(state, ctx, prompt, generation, run)

    # retrieve --------------------------------------------------------------------------------
    def retrieval_failed(error: BaseException) -> dict[str, Any]:
        if isinstance(error, (TimeoutError, FutureTimeout)):
            error = TimeoutError(f"no documents within {retriever_timeout} s")
        return {"retrievals": 1, "errors": [f"retrieve: {type(error).__name__}: {error}"]}

    def retrieve(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        retriever = settings().retriever
        try:
            if retriever_timeout is None:
                documents = retriever.invoke(state["queries"][-1], config)
            else:
                future = _RETRIEVAL_POOL.submit(retriever.invoke, state["queries"][-1], config)
                documents = future.result(timeout=retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- any retriever may fail; the answer must still come
            return retrieval_failed(error)
        return {"retrievals": 1, "documents": documents}

    async def aretrieve(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        retriever = settings().retriever
        try:
            documents = await asyncio.wait_for(retriever.ainvoke(state["queries"][-1], config), retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- as in retrieve
            return retrieval_failed(error)
        return {"retrievals": 1, "documents": documents}

    builder = StateGraph(SmartRAGState, context_schema=SmartRAGContext)
    builder.add_node("decide", RunnableLambda(decide, adecide, name="decide"), destinations=("rewrite", "answer"))
    builder.add_node("rewrite", RunnableLambda(rewrite, arewrite, name="rewrite"))
    builder.add_node("retrieve", RunnableLambda(retrieve, aretrieve, name="retrieve"))
    builder.add_node("answer", RunnableLambda(answer, aanswer, name="answer"))
    builder.add_edge(START, "decide")
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_edge("answer", END)
    return builder.compile(name="SmartRAG")
