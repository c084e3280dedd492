"""The SmartRAG graph's nodes: begin, preview, decide, rewrite, retrieve and answer, one policy behind them all."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import warnings
from collections.abc import Awaitable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import get_runtime
from langgraph.types import Command, Overwrite

from .decision import Decision
from .decoding import Generation
from .gate import DecisionGate, index_features, reader_features
from .injection import split_instructions
from .messages import joined_question
from .policy_protocol import PolicyError, PolicyLike
from .protocol import ANSWER, OBSERVATION_DOCUMENTS, SEARCH, parse_action, preview_titles, validate_question
from .search import Search, as_documents, in_daemon_thread
from .state import EPISODE_CLEARED, EPISODE_START, Settings, SmartRAGContext, SmartRAGState
from .tracing import PolicyRun, policy_run


def _episode_seed(config: RunnableConfig) -> int | None:
    """The episode's seed, `config["configurable"]["seed"]` (one config per input of a batch), if any."""
    return (config.get("configurable") or {}).get("seed")


def _draws(config: RunnableConfig, node: str, retrievals: int) -> random.Random | Any:
    """The random source of one sampling node call: derived from the episode's seed, else the global one."""
    seed = _episode_seed(config)
    return random if seed is None else random.Random(f"{seed}/{node}/{retrievals}")


def _recorded(ctx: Settings, node: str, prompt: str, prefix: str, generation: Generation) -> dict[str, Any]:
    """The generation as a `trace` entry when the call records, else no update."""
    if not ctx.record:
        return {}
    return {
        "trace": [
            {
                "node": node,
                "prompt": prompt,
                "prefix": prefix,
                "text": generation.text,
                "token_ids": generation.token_ids,
                "logprobs": generation.logprobs,
            }
        ]
    }


def _observed(node: str, documents: list[Document], errors: list[str]) -> Search:
    """What the answer turn may read of a search: its first OBSERVATION_DOCUMENTS documents, less any that address
    the model (documents are data, not instructions; the rest are never read), and the errors, that one included."""
    documents, dropped = split_instructions(documents, keep=OBSERVATION_DOCUMENTS)
    if dropped:
        titles = ", ".join(repr(str(d.metadata.get("title") or d.page_content[:40])) for d in dropped)
        errors = [
            *errors,
            f"{node}: left out {len(dropped)} document(s) that address the model rather than state facts ({titles})",
        ]
    return documents, errors


def _retrieved(documents: list[Document], errors: list[str]) -> dict[str, Any]:
    """A retrieval's update: one more retrieval, what the answer turn may read of it and any errors."""
    documents, errors = _observed("retrieve", documents, errors)
    return {"retrievals": 1, "documents": documents, **({"errors": errors} if errors else {})}


def _undecided(error: PolicyError) -> Command:
    """A decision the policy could not take (its server failed), recorded: the episode searches, as
    retrieve-then-read would, within the quota, and records no P(search)."""
    return Command(update={"errors": [f"decide: {error}; searched without a decision"]}, goto="rewrite")


def _unwritten(state: SmartRAGState, error: PolicyError) -> dict[str, Any]:
    """A query the policy could not write (its server failed), recorded: the question is the query."""
    return {"queries": [state["question"]], "errors": [f"rewrite: {error}; searched with the question"]}


def _drafted(state: SmartRAGState, run: PolicyRun) -> Generation | None:
    """The draft the gate picked as this episode's answer (streamed whole: it was written before the gate chose)."""
    draft = state.get("draft")
    if not draft:
        return None
    generation = Generation(**draft)
    run.token(0, generation.text)
    return generation


def gate_of(policy: PolicyLike, decision: str) -> DecisionGate | None:
    """The gate that takes the first decision, or None when the action token does."""
    if decision != "gate":
        return None
    gate = getattr(policy, "gate", None)
    if gate is None:
        raise ValueError(
            "decision='gate', but this policy has no decision gate (gate.json beside it): train one with "
            "`smartrag train gate`, or use decision='token'"
        )
    return gate


def _gate_deciding(ctx: Settings, state: SmartRAGState) -> DecisionGate | None:
    """The gate when it takes this decision: the first one, after a probe that gave scores if it reads them."""
    gate = gate_of(ctx.policy, ctx.decision)
    if gate is None or state.get("retrievals", 0):
        return None
    return gate if state.get("probe") is not None or not gate.reads_scores else None


def _draft_prompts(ctx: Settings, state: SmartRAGState, prompt: str) -> list[str] | None:
    """The two drafts' prompts when a gate that reads them decides: the question alone (the decision's own prompt,
    whose `[Answer]` branch the decision pass has cached) and the question over the probe's hits; else None."""
    gate = _gate_deciding(ctx, state)
    if gate is None or not gate.reads_reader:
        return None
    if ctx.sample:
        raise ValueError(
            "this decision gate reads greedy drafts and cannot sample a rollout: train with decision='token'"
        )
    return [prompt, ctx.policy.prompt(state["question"], state.get("probe_documents", []))]


def _threshold(ctx: Settings, gate: DecisionGate | None) -> float:
    """The call's threshold, else the decider's own: the gate's selected one, or 0.5 for the action token."""
    if ctx.threshold is not None:
        return ctx.threshold
    return gate.threshold if gate is not None else 0.5


def _decide_params(ctx: Settings, state: SmartRAGState) -> dict[str, Any]:
    """The decision's invocation parameters a tracer sees."""
    gate = _gate_deciding(ctx, state)
    return {
        "threshold": _threshold(ctx, gate),
        "decision": "gate" if gate is not None else "token",
        "sample": ctx.sample and ctx.sample_decision,
    }


class SmartRAGNodes:
    """The graph's nodes, bound to the graph's defaults and retriever timeout; a call's context overrides them.

    Sync and async variants share every step but the policy or retriever call itself.
    """

    def __init__(self, defaults: Settings, retriever_timeout: float | None = 30.0) -> None:
        self.defaults, self.retriever_timeout = defaults, retriever_timeout
        self._warned_no_scores = False

    def settings(self) -> Settings:
        """This call's settings: the defaults with the run's context over them; the defaults alone for a node
        called outside a graph."""
        try:
            runtime = get_runtime(SmartRAGContext)
        except RuntimeError:  # no runnable context: a node called on its own
            return self.defaults
        return self.defaults.over(getattr(runtime, "context", None))

    # begin: one question, one episode --------------------------------------------------------
    def begin(self, state: SmartRAGState) -> Command:
        """Validate the question, clear the accumulating channels a thread or a parent graph may carry, and go
        to the preview if this episode has one."""
        if "question" not in state:
            raise ValueError(
                'the input has no \'question\': invoke the graph with {"question": "..."} or with {"messages": [...]} '
                "ending in the question"
            )
        validate_question(state["question"])
        update = {key: Overwrite(value) for key, value in EPISODE_START.items()}
        ctx = self.settings()
        gate = gate_of(ctx.policy, ctx.decision)
        probe = ctx.preview or (gate is not None and gate.reads_index)
        joined = joined_question(state.get("messages") or [], state["question"])
        return Command(update={**update, **EPISODE_CLEARED, **joined}, goto="preview" if probe else "decide")

    # decide ---------------------------------------------------------------------------------
    def decide(self, state: SmartRAGState, config: RunnableConfig) -> Command:
        """Search or answer: rewrite when P(search) clears the threshold (or a draw says so), else answer."""
        ctx, prompt = self._decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        try:
            with policy_run(config, "decide", prompt, ctx.policy, _decide_params(ctx, state), stream=False) as run:
                decision = ctx.policy.decide([prompt])[0]
                drafts = _draft_prompts(ctx, state, prompt)
                drafted = ctx.policy.generate(drafts, ANSWER) if drafts else None
                return self._route(state, config, ctx, prompt, decision, run, drafted)
        except PolicyError as error:
            return _undecided(error)

    async def adecide(self, state: SmartRAGState, config: RunnableConfig) -> Command:
        """`decide` with the policy's async, batched call."""
        ctx, prompt = self._decision_prompt(state)
        if prompt is None:
            return Command(goto="answer")
        try:
            with policy_run(config, "decide", prompt, ctx.policy, _decide_params(ctx, state), stream=False) as run:
                decision = (await ctx.policy.adecide([prompt]))[0]
                drafts = _draft_prompts(ctx, state, prompt)
                drafted = await ctx.policy.agenerate(drafts, ANSWER) if drafts else None
                return self._route(state, config, ctx, prompt, decision, run, drafted)
        except PolicyError as error:
            return _undecided(error)

    def _decision_prompt(self, state: SmartRAGState) -> tuple[Settings, str | None]:
        """The settings and the prompt to score, or None when the quota forces the answer."""
        ctx = self.settings()
        if state.get("retrievals", 0) >= ctx.max_retrievals:
            return ctx, None
        return ctx, ctx.policy.prompt(state["question"], state.get("documents", []), state.get("preview"))

    @staticmethod
    def _route(
        state: SmartRAGState,
        config: RunnableConfig,
        ctx: Settings,
        prompt: str,
        decision: Decision,
        run: PolicyRun,
        drafts: list[Generation] | None = None,
    ) -> Command:
        """Take the action (drawn from P(search) when sampling decisions, else at the threshold) and go there. With
        `drafts` (closed book, over the probe's hits) the gate reads them and the answer is the one it picks: a
        search answers from the probe's hits, which count as the episode's retrieval."""
        p_search, gate, probe = decision.p_search, _gate_deciding(ctx, state), state.get("probe")
        reader = reader_features(state.get("probe_documents", []), *drafts) if drafts else None
        if gate is not None:
            if probe is not None and gate.reads_scores:
                gate.check_scores(probe)
            p_search = gate.p_search(decision.hidden, decision.search_logit, probe, reader)
        threshold = _threshold(ctx, gate)
        if ctx.sample and ctx.sample_decision:
            search = _draws(config, "decide", state.get("retrievals", 0)).random() < p_search
        else:
            search = p_search >= threshold
        action = SEARCH if search else ANSWER
        action_ids = ctx.policy.encode(action)
        outside = {"outside_top_k": decision.outside_top_k} if decision.outside_top_k else {}
        run.end(action, decision.prompt_tokens, len(action_ids), search_probability=p_search, **outside)
        update: dict[str, Any] = {"search_probabilities": [p_search]}
        if gate is None and len(decision.outside_top_k) == 2:
            floors = f"P(search) {p_search:.2f} compares two floors"
            update["errors"] = [
                f"decide: neither {SEARCH} nor {ANSWER} was among the served model's top tokens: {floors}"
            ]
        if ctx.record:
            logprobs = decision.search_logprobs if search else decision.answer_logprobs
            update["trace"] = [
                {
                    "node": "decide",
                    "decider": "gate" if gate is not None else "token",
                    "prompt": prompt,
                    "prefix": "",
                    "text": action,
                    "token_ids": action_ids,
                    "logprobs": logprobs,
                }
            ]
        if drafts:
            update["draft"] = dataclasses.asdict(drafts[1] if search else drafts[0])
            if search:
                update.update(retrievals=1, queries=[state["question"]], documents=state.get("probe_documents", []))
            return Command(update=update, goto="answer")
        return Command(update=update, goto="rewrite" if search else "answer")

    # rewrite and answer: generation after a forced action prefix ------------------------------
    def rewrite(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """The search query the policy writes after `[Search]` (the question itself with rewriting off)."""
        if not self.settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling, params = self._generation_call(state, config, "rewrite")
        try:
            with policy_run(config, "rewrite", prompt, ctx.policy, params) as run:
                generation = ctx.policy.generate([prompt], SEARCH, on_token=run.token, **sampling)[0]
                return self._query_update(state, ctx, prompt, generation, run)
        except PolicyError as error:
            return _unwritten(state, error)

    async def arewrite(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """`rewrite` with the policy's async, batched call."""
        if not self.settings().rewrite_query:
            return {"queries": [state["question"]]}
        ctx, prompt, sampling, params = self._generation_call(state, config, "rewrite")
        try:
            with policy_run(config, "rewrite", prompt, ctx.policy, params) as run:
                generation = (await ctx.policy.agenerate([prompt], SEARCH, on_token=run.token, **sampling))[0]
                return self._query_update(state, ctx, prompt, generation, run)
        except PolicyError as error:
            return _unwritten(state, error)

    def answer(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """The answer the policy writes after `[Answer]`, from the question and the documents retrieved."""
        ctx, prompt, sampling, params = self._generation_call(state, config, "answer")
        with policy_run(config, "answer", prompt, ctx.policy, params) as run:
            generation = (
                _drafted(state, run) or ctx.policy.generate([prompt], ANSWER, on_token=run.token, **sampling)[0]
            )
            return self._answer_update(ctx, prompt, generation, run, bool(state.get("messages")))

    async def aanswer(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """`answer` with the policy's async, batched call."""
        ctx, prompt, sampling, params = self._generation_call(state, config, "answer")
        with policy_run(config, "answer", prompt, ctx.policy, params) as run:
            generation = (
                _drafted(state, run)
                or (await ctx.policy.agenerate([prompt], ANSWER, on_token=run.token, **sampling))[0]
            )
            return self._answer_update(ctx, prompt, generation, run, bool(state.get("messages")))

    def _generation_call(
        self, state: SmartRAGState, config: RunnableConfig, node: str
    ) -> tuple[Settings, str, dict[str, Any], dict[str, Any]]:
        """Settings, prompt, sampling arguments (top-k 50, the paper's rollout setting, when sampling) and the
        invocation parameters a tracer sees."""
        ctx = self.settings()
        sampling: dict[str, Any] = {}
        if ctx.sample:
            seed = None
            if _episode_seed(config) is not None:
                seed = _draws(config, node, state.get("retrievals", 0)).getrandbits(63)
            sampling = {"sample": True, "seeds": [seed], "temperature": ctx.temperature or 1.0}
        params = {
            "max_new_tokens": ctx.policy.max_new_tokens,
            "temperature": sampling.get("temperature", 0.0),
            "top_k": 50 if ctx.sample else None,
            "prefix": SEARCH if node == "rewrite" else ANSWER,
        }
        # the rewrite continues the decision's own prompt (preview included); the answer never sees the preview
        preview = state.get("preview") if node == "rewrite" else None
        return ctx, ctx.policy.prompt(state["question"], state.get("documents", []), preview), sampling, params

    @staticmethod
    def _query_update(
        state: SmartRAGState, ctx: Settings, prompt: str, generation: Generation, run: PolicyRun
    ) -> dict[str, Any]:
        """The rewritten query, or the question with an error when the policy wrote none."""
        action = parse_action(SEARCH + generation.text)
        run.end(action.text, generation.prompt_tokens, len(generation.token_ids))
        update = _recorded(ctx, "rewrite", prompt, SEARCH, generation)
        if action.well_formed:
            return {**update, "queries": [action.text]}
        error = "rewrite: empty query, searched with the question"
        return {**update, "queries": [state["question"]], "errors": [error]}

    @staticmethod
    def _answer_update(
        ctx: Settings, prompt: str, generation: Generation, run: PolicyRun, conversation: bool = False
    ) -> dict[str, Any]:
        """The parsed answer and whether it was well formed; in a conversation, also the answer as an AIMessage (with
        the id its streamed tokens carried, so `stream_mode="messages"` shows it once)."""
        action = parse_action(ANSWER + generation.text)
        run.end(action.text, generation.prompt_tokens, len(generation.token_ids))
        reply = {"messages": [AIMessage(action.text, id=run.message_id)]} if conversation else {}
        return {
            **_recorded(ctx, "answer", prompt, ANSWER, generation),
            "answer": action.text,
            "well_formed": action.well_formed,
            **reply,
        }

    # retrieve and preview: one search, under the timeout -----------------------------------------
    def retrieve(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """Search with the latest query; a failure is recorded in `errors`, never raised."""
        return _retrieved(*self._search("retrieve", state["queries"][-1], config))

    async def aretrieve(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """`retrieve` with the retriever's async call (a sync-only one in its own thread)."""
        return _retrieved(*await self._asearch("retrieve", state["queries"][-1], config))

    def preview(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """Search with the question to show the first decision the top hits' titles, or the gate their scores."""
        return self._previewed(state["question"], *self._search("preview", state["question"], config))

    async def apreview(self, state: SmartRAGState, config: RunnableConfig) -> dict[str, Any]:
        """`preview` with the retriever's async call."""
        return self._previewed(state["question"], *await self._asearch("preview", state["question"], config))

    def _previewed(self, question: str, documents: list[Document], errors: list[str]) -> dict[str, Any]:
        """A preview's update: one more preview, the titles the decision sees, what the gate reads, any errors."""
        ctx = self.settings()
        titles = preview_titles(documents, ctx.preview) if ctx.preview else None
        update: dict[str, Any] = {"previews": 1, "preview": titles}
        gate = gate_of(ctx.policy, ctx.decision)
        if gate is not None and gate.reads_reader:
            update["probe_documents"], errors = _observed("preview", documents, errors)
        if gate is not None and gate.reads_index:
            update["probe"] = index_features(question, documents)
            if update["probe"] is None and gate.reads_scores and not self._warned_no_scores:
                self._warned_no_scores = True
                warnings.warn(
                    "the retriever gives no scores (Document.metadata['score'] or 'relevance_score'), which "
                    "the decision gate reads: the action token decides instead",
                    stacklevel=2,
                )
        return {**update, **({"errors": errors} if errors else {})}

    def _failed(self, node: str, error: BaseException) -> Search:
        """No documents and the error to record (a timeout says how long it waited)."""
        if isinstance(error, (TimeoutError, FutureTimeout)):
            error = TimeoutError(f"no documents within {self.retriever_timeout} s")
        return [], [f"{node}: {type(error).__name__}: {error}"]

    def _search(self, node: str, query: str, config: RunnableConfig) -> Search:
        """The retriever's documents for `query` and the errors to record; never raises."""
        retriever = self.settings().retriever
        try:
            if self.retriever_timeout is None:
                result = retriever.invoke(query, config)
            else:
                future = in_daemon_thread(lambda: retriever.invoke(query, config))
                result = future.result(timeout=self.retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- any retriever may fail; the answer must still come
            return self._failed(node, error)
        return as_documents(node, result)

    async def _asearch(self, node: str, query: str, config: RunnableConfig) -> Search:
        """`_search` with the retriever's async call; a sync-only retriever gets its own daemon thread."""
        retriever = self.settings().retriever
        call: Awaitable[Any]
        try:
            if type(retriever)._aget_relevant_documents is BaseRetriever._aget_relevant_documents:
                # a sync-only retriever: its own daemon thread, not the event loop's shared default pool
                call = asyncio.wrap_future(in_daemon_thread(lambda: retriever.invoke(query, config)))
            else:
                call = retriever.ainvoke(query, config)
            result = await asyncio.wait_for(call, self.retriever_timeout)
        except Exception as error:  # noqa: BLE001 -- as in _search
            return self._failed(node, error)
        return as_documents(node, result)
