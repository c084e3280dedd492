"""The SmartRAG graph: decide -> (rewrite -> retrieve -> decide)* -> answer, one policy behind every node."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import operator
import random
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, NotRequired

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import get_callback_manager_for_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer, Command, Overwrite
from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

from .policy import Decision, Generation, SmartRAGPolicy
from .protocol import ANSWER, SEARCH, parse_action, preview_titles, validate_question
from .retrievers.web import DuckDuckGoRetriever


class SmartRAGInput(TypedDict):
    """What a caller passes: the question (all the model of a tool made by `graph.as_tool()` sees)."""

    question: str


class SmartRAGOutput(TypedDict, total=False):
    """What an episode produces; every list and count is this question's own, whatever the thread held before."""

    question: str
    answer: str
    well_formed: bool
    """Whether the final output parsed as an `[Answer]` with text (the reward's -1 case when False)."""
    retrievals: int
    queries: list[str]
    documents: list[Document]
    search_probabilities: list[float]
    errors: list[str]
    trace: list[dict[str, Any]]
    """With `record=True`: every policy call as {node, prompt, prefix, token_ids, logprobs} (for training)."""
    previews: int
    """Searches made only to show the first decision the top hits' titles (0 with the preview off)."""
    preview: list[str] | None
    """The titles that decision saw (None with the preview off)."""


class SmartRAGState(TypedDict):
    """The graph's channels. Lists and counts accumulate across the nodes of one episode; `begin` clears them."""

    question: str
    answer: NotRequired[str]
    well_formed: NotRequired[bool]
    retrievals: NotRequired[Annotated[int, operator.add]]
    queries: NotRequired[Annotated[list[str], operator.add]]
    documents: NotRequired[Annotated[list[Document], operator.add]]
    search_probabilities: NotRequired[Annotated[list[float], operator.add]]
    errors: NotRequired[Annotated[list[str], operator.add]]
    trace: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    previews: NotRequired[Annotated[int, operator.add]]
    preview: NotRequired[list[str] | None]


EPISODE_START: dict[str, Any] = {
    "retrievals": 0, "queries": [], "documents": [], "search_probabilities": [], "errors": [], "trace": [],
    "previews": 0,
}
"""Each accumulating channel's value when a question starts (written over whatever a thread or parent held)."""


@dataclass
class SmartRAGContext:
    """Per-call overrides (`graph.invoke(..., context=SmartRAGContext(policy=trained))`); None keeps the default."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(arbitrary_types_allowed=True)

    policy: SkipJsonSchema[SmartRAGPolicy | None] = None
    retriever: SkipJsonSchema[BaseRetriever | None] = None
    threshold: float | None = None
    max_retrievals: int | None = None
    rewrite_query: bool | None = None
    preview: int | None = None
    """Titles of the question's top hits the first decision sees (0: off, the paper's protocol)."""
    sample: bool | None = None
    """Training rollouts: draw the decision from P(search) and sample text (top-k 50) instead of greedy.
    `config["configurable"]["seed"]` seeds an episode's draws, whatever else shares its batches."""
    temperature: float | None = None
    """With `sample`: the text's sampling temperature (default 1)."""
    sample_decision: bool | None = None
    """With `sample`: draw the decision (default), or take it at `threshold` as when serving while the text is
    still sampled (paired PPO rollouts force each branch with threshold 0 and above 1)."""
    record: bool | None = None
    """Append every policy call to the state's `trace`."""


def _in_daemon_thread(call: Callable[[], Any]) -> Future:
    """Run `call` in a new daemon thread (with the caller's context vars) and return its future.

    A retriever that hangs past its timeout holds only its own thread: no pool shared with other graphs or
    with the event loop, and a daemon thread never keeps the process from exiting.
    """
    future: Future = Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():  # a running future can no longer be cancelled under us
            return
        try:
            future.set_result(context.run(call))
        except BaseException as error:  # noqa: BLE001 -- handed to the waiting node, which records it
            future.set_exception(error)

    threading.Thread(target=run, name="smartrag-retrieve", daemon=True).start()
    return future


def _documents(node: str, result: Any) -> tuple[list[Document], list[str]]:
    """A retriever's result as Documents, with an error for anything that is not one (strings, dicts, None)."""
    if not isinstance(result, (list, tuple)):
        return [], [f"{node}: the retriever returned {type(result).__name__}, not a list of Documents"]
    documents = [d for d in result if isinstance(d, Document)]
    if len(documents) < len(result):
        kinds = sorted({type(d).__name__ for d in result if not isinstance(d, Document)})
        return documents, [f"{node}: dropped {len(result) - len(documents)} results that are not Documents ({', '.join(kinds)})"]
    return documents, []


class _PolicyRun:
    """A policy call reported to LangChain callbacks as a chat-model run, so tracers and
    `stream_mode="messages"` see it; generated text streams through `token`."""

    def __init__(self, manager: CallbackManagerForLLMRun | None, model_name: str) -> None:
        self.manager, self.model_name = manager, model_name
        self.message_id = f"lc_run--{manager.run_id}" if manager else None  # chunks and the final message share it

    def token(self, _row: int, text: str) -> None:
        if self.manager is not None:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text, id=self.message_id))
            self.manager.on_llm_new_token(text, chunk=chunk)

    def end(self, text: str, prompt_tokens: int, completion_tokens: int, **metadata: Any) -> None:
        """Close the run with its text, token usage (as LangChain's chat models report it) and any metadata."""
        if self.manager is None:
            return
        usage = UsageMetadata(input_tokens=prompt_tokens, output_tokens=completion_tokens,
                              total_tokens=prompt_tokens + completion_tokens)
        message = AIMessage(content=text, id=self.message_id, usage_metadata=usage,
                            response_metadata={"model_name": self.model_name, **metadata})
        token_usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                       "total_tokens": prompt_tokens + completion_tokens}
        self.manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]],
                                          llm_output={"token_usage": token_usage, "model_name": self.model_name}))


@contextlib.contextmanager
def _policy_run(
    config: RunnableConfig, node: str, prompt: str, policy: SmartRAGPolicy, params: dict[str, Any], *, stream: bool = True
) -> Iterator[_PolicyRun]:
    """Report one policy call as a chat-model run: model name, provider and invocation parameters up front
    (the `ls_*` metadata LangSmith reads), token usage at the end."""
    manager = get_callback_manager_for_config(config)
    if not manager.handlers:
        yield _PolicyRun(None, policy.model_name)
        return
    if not stream:
        manager.add_tags([TAG_NOSTREAM], inherit=False)
    manager.add_metadata({"ls_provider": "huggingface", "ls_model_name": policy.model_name, "ls_model_type": "chat",
                          "ls_temperature": params.get("temperature"), "ls_max_tokens": params.get("max_new_tokens")},
                         inherit=False)
    (run,) = manager.on_chat_model_start(
        {"name": "SmartRAGPolicy"}, [[HumanMessage(content=prompt)]], name=f"policy:{node}",
        invocation_params={"model": policy.model_name, "node": node, **params},
    )
    try:
        yield _PolicyRun(run, policy.model_name)
    except BaseException as error:
        run.on_llm_error(error)
        raise


def _episode_seed(config: RunnableConfig) -> int | None:
    """The episode's seed, `config["configurable"]["seed"]` (one config per input of a batch), if any."""
    return (config.get("configurable") or {}).get("seed")


def _draws(config: RunnableConfig, node: str, retrievals: int) -> random.Random | Any:
    """The random source of one sampling node call: derived from the episode's seed, else the global one."""
    seed = _episode_seed(config)
    return random if seed is None else random.Random(f"{seed}/{node}/{retrievals}")


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
        default = (self.config or {}).get("max_concurrency")
        if default is None or isinstance(config, Sequence):  # a list of configs: each caller's own
            return config
        return config if (config or {}).get("max_concurrency") is not None else {**(config or {}), "max_concurrency": default}

    def batch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        return super().batch(inputs, self._batch_config(config), **kwargs)

    async def abatch(self, inputs: Sequence[Any], config: Any = None, **kwargs: Any) -> list[Any]:
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

    def settings() -> SmartRAGContext:
        context = get_runtime(SmartRAGContext).context
        if context is None:
            return defaults
        return replace(defaults, **{k: v for k, v in vars(context).items() if v is not None})

    # begin: one question, one episode --------------------------------------------------------
    def begin(state: SmartRAGState) -> Command:
        """Validate the question, clear the accumulating channels a thread or a parent graph may carry, and go
        to the preview if this episode has one."""
        if "question" not in state:
            raise ValueError("the input has no 'question': invoke the graph with {\"question\": \"...\"}")
        validate_question(state["question"])
        update = {key: Overwrite(value) for key, value in EPISODE_START.items()}
        return Command(update={**update, "preview": None}, goto="preview" if settings().preview else "decide")

    # decide ---------------------------------------------------------------------------------
    def decision_prompt(state: SmartRAGState) -> tuple[SmartRAGContext, str | None]:
        """The prompt to score, or None when the quota forces the answer."""
        ctx = settings()
        if state.get("retrievals", 0) >= ctx.max_retrievals:
            return ctx, None
        return ctx, ctx.policy.prompt(state["question"], state.get("documents", []), state.get("preview"))

    def route(
        state: SmartRAGState, config: RunnableConfig, ctx: SmartRAGContext, prompt: str, decision: Decision,
        run: _PolicyRun,
    ) -> Command:
        if ctx.sample and ctx.sample_decision:
            search = _draws(config, "decide", state.get("retrievals", 0)).random() < decision.p_search
        else:
            search = decision.p_search >= ctx.threshold
        action = SEARCH if search else ANSWER
        action_ids = ctx.policy.encode(action)
        run.end(action, decision.prompt_tokens, len(action_ids), search_probability=decision.p_search)
        update: dict[str, Any] = {"search_probabilities": [decision.p_search]}
        if ctx.record:
            logprobs = decision.search_logprobs if search else decision.answer_logprobs
            update["trace"] = [{"node": "decide", "prompt": prompt, "prefix": "", "text": action,
                                "token_ids": action_ids, "logprobs": logprobs}]
        return Command(update=update, goto="rewrite" if search else "answer")

    def decide_params(ctx: SmartRAGContext) -> dict[str, Any]:
        return {"threshold": ctx.threshold, "sample": bool(ctx.sample and ctx.sample_decision)}

    def decide(state: SmartRAGState, config: RunnableConfig) -> Command:
        ctx, prompt = decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        with _policy_run(config, "decide", prompt, ctx.policy, decide_params(ctx), stream=False) as run:
            return route(state, config, ctx, prompt, ctx.policy.decide([prompt])[0], run)

    async def adecide(state: SmartRAGState, config: RunnableConfig) -> Command:
        ctx, prompt = decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        with _policy_run(config, "decide", prompt, ctx.policy, decide_params(ctx), stream=False) as run:
            return route(state, config, ctx, prompt, (await ctx.policy.adecide([prompt]))[0], run)

    # rewrite and answer: generation after a forced action prefix ------------------------------
    def generation_call(
        state: SmartRAGState, config: RunnableConfig, node: str
    ) -> tuple[SmartRAGContext, str, dict[str, Any], dict[str, Any]]:
        """Settings, prompt, sampling arguments (top-k 50, the paper's rollout setting, when sampling) and the
        invocation parameters a tracer sees."""
        ctx = settings()
        sampling: dict[str, Any] = {}
        if ctx.sample:
            seed = None
            if _episode_seed(config) is not None:
                seed = _draws(config, node, state.get("retrievals", 0)).getrandbits(63)
            sampling = {"sample": True, "seeds": [seed], "temperature": ctx.temperature or 1.0}
        params = {"max_new_tokens": ctx.policy.max_new_tokens, "temperature": sampling.get("temperature", 0.0),
                  "top_k": 50 if ctx.sample else None, "prefix": SEARCH if node == "rewrite" else ANSWER}
        # the rewrite continues the decision's own prompt (preview included); the answer never sees the preview
        preview = state.get("preview") if node == "rewrite" else None
        return ctx, ctx.policy.prompt(state["question"], state.get("documents", []), preview), sampling, params

    def recorded(ctx: SmartRAGContext, node: str, prompt: str, prefix: str, generation: Generation) -> dict[str, Any]:
        if not ctx.record:
            return {}
        return {"trace": [{"node": node, "prompt": prompt, "prefix": prefix, "text": generation.text,
                           "token_ids": generation.token_ids, "logprobs": generation.logprobs}]}

    def query_update(
        state: SmartRAGState, ctx: SmartRAGContext, prompt: str, generation: Generation, run: _PolicyRun
    ) -> dict[str, Any]:
        action = parse_action(SEARCH + generation.text)
        run.end(action.text, generation.prompt_tokens, len(generation.token_ids))
        update = recorded(ctx, "rewrite", prompt, SEARCH, generation)
        if action.well_formed:
            return {**update, "queries": [action.text]}
        return {**update, "queries": [state["question"]], "errors": ["rewrite: empty query, searched with the question"]}

    def answer_update(
        state: SmartRAGState, ctx: SmartRAGContext, prompt: str, generation: Generation, run: _PolicyRun
    ) -> dict[str, Any]:
        action = parse_action(ANSWER + generation.text)
        run.end(action.text, generation.prompt_tokens, len(generation.token_ids))
        return {**recorded(ctx, "answer", prompt, ANSWER, generation), "answer": action.text, "well_formed": action.well_formed}

    def rewrite(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        if not settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling, params = generation_call(state, config, "rewrite")
        with _policy_run(config, "rewrite", prompt, ctx.policy, params) as run:
            generation = ctx.policy.generate([prompt], SEARCH, on_token=run.token, **sampling)[0]
            return query_update(state, ctx, prompt, generation, run)

    async def arewrite(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        if not settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling, params = generation_call(state, config, "rewrite")
        with _policy_run(config, "rewrite", prompt, ctx.policy, params) as run:
            generation = (await ctx.policy.agenerate([prompt], SEARCH, on_token=run.token, **sampling))[0]
            return query_update(state, ctx, prompt, generation, run)

    def answer(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        ctx, prompt, sampling, params = generation_call(state, config, "answer")
        with _policy_run(config, "answer", prompt, ctx.policy, params) as run:
            generation = ctx.policy.generate([prompt], ANSWER, on_token=run.token, **sampling)[0]
            return answer_update(state, ctx, prompt, generation, run)

    async def aanswer(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        ctx, prompt, sampling, params = generation_call(state, config, "answer")
        with _policy_run(config, "answer", prompt, ctx.policy, params) as run:
            generation = (await ctx.policy.agenerate([prompt], ANSWER, on_token=run.token, **sampling))[0]
            return answer_update(state, ctx, prompt, generation, run)

    # retrieve and preview: one search, under the timeout -----------------------------------------
    def failed(node: str, error: BaseException) -> tuple[list[Document], list[str]]:
        if isinstance(error, (TimeoutError, FutureTimeout)):
            error = TimeoutError(f"no documents within {retriever_timeout} s")
        return [], [f"{node}: {type(error).__name__}: {error}"]

    def search(node: str, query: str, config: RunnableConfig) -> tuple[list[Document], list[str]]:
        """The retriever's documents for `query` and the errors to record; never raises."""
        retriever = settings().retriever
        try:
            if retriever_timeout is None:
                result = retriever.invoke(query, config)
            else:
                result = _in_daemon_thread(lambda: retriever.invoke(query, config)).result(timeout=retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- any retriever may fail; the answer must still come
            return failed(node, error)
        return _documents(node, result)

    async def asearch(node: str, query: str, config: RunnableConfig) -> tuple[list[Document], list[str]]:
        retriever = settings().retriever
        try:
            if type(retriever)._aget_relevant_documents is BaseRetriever._aget_relevant_documents:
                # a sync-only retriever: its own daemon thread, not the event loop's shared default pool
                call = asyncio.wrap_future(_in_daemon_thread(lambda: retriever.invoke(query, config)))
            else:
                call = retriever.ainvoke(query, config)
            result = await asyncio.wait_for(call, retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- as in search
            return failed(node, error)
        return _documents(node, result)

    def retrieved(documents: list[Document], errors: list[str]) -> dict[str, Any]:
        return {"retrievals": 1, "documents": documents, **({"errors": errors} if errors else {})}

    def previewed(documents: list[Document], errors: list[str]) -> dict[str, Any]:
        titles = preview_titles(documents, settings().preview)
        return {"previews": 1, "preview": titles, **({"errors": errors} if errors else {})}

    def retrieve(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        return retrieved(*search("retrieve", state["queries"][-1], config))

    async def aretrieve(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        return retrieved(*await asearch("retrieve", state["queries"][-1], config))

    def preview(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        return previewed(*search("preview", state["question"], config))

    async def apreview(state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        return previewed(*await asearch("preview", state["question"], config))

    builder = StateGraph(SmartRAGState, context_schema=SmartRAGContext, input_schema=SmartRAGInput,
                         output_schema=SmartRAGOutput)
    builder.add_node("begin", begin, destinations=("preview", "decide"))
    builder.add_node("preview", RunnableLambda(preview, apreview, name="preview"))
    builder.add_node("decide", RunnableLambda(decide, adecide, name="decide"), destinations=("rewrite", "answer"))
    builder.add_node("rewrite", RunnableLambda(rewrite, arewrite, name="rewrite"))
    builder.add_node("retrieve", RunnableLambda(retrieve, aretrieve, name="retrieve"))
    builder.add_node("answer", RunnableLambda(answer, aanswer, name="answer"))
    builder.add_edge(START, "begin")
    builder.add_edge("preview", "decide")
    builder.add_edge("rewrite", "retrieve")
    builder.add_edge("retrieve", "decide")
    builder.add_edge("answer", END)
    compiled = builder.compile(checkpointer=checkpointer, store=store, interrupt_before=interrupt_before,
                               interrupt_after=interrupt_after, name=name)
    graph = SmartRAGGraph(**{k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"})
    return graph.with_config(max_concurrency=policy.max_batch_size)
