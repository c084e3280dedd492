"""SmartRAGEndpointPolicy: the policy served by an inference engine (vLLM, SGLang, llama.cpp's server) over the
OpenAI-compatible `/v1/completions` API, behind the same graph, prompts and parser as the in-process policy."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
from langchain_core.documents import Document

from .completions_client import CompletionsClient, EndpointError
from .decision import Decision
from .decoding import Generation, visible_text
from .gate import DecisionGate
from .policy_protocol import TokenCallback
from .prompt_fit import documents_that_fit, fit_question
from .protocol import ANSWER, OBSERVATION_DOCUMENTS, SEARCH, render_prompt

T = TypeVar("T")
SAMPLING = frozenset({"max_new_tokens", "sample", "temperature", "top_k"})
"""The sampling arguments `generate` takes, as the in-process policy's."""
NO_PENALTY = {"repeat_penalty": 1.0, "repetition_penalty": 1.0}
"""Sent with every request: the in-process policy decodes with no repetition penalty, and llama-cpp-python's server
applies 1.1 unless told (`repeat_penalty`: llama.cpp's name; `repetition_penalty`: vLLM's and SGLang's; a server
ignores the name it does not use)."""


def action_logprobs(
    top: dict[str, float], shared: str, words: tuple[str, str] | None = None
) -> tuple[float, float, list[str]]:
    """log P of `[Search]` and of `[Answer]` at the position after `shared` (the text both words start with), from
    that position's top log-probabilities, and the words the top-k left out.

    With `words` (the text of each word's own next token under the model's tokenizer, e.g. ("Search", "Answer")),
    a word's score is that token's log-probability: the token the in-process policy scores. Without a tokenizer, a
    token counts for a word when its text and the rest of that word (after `shared`) agree as far as both go
    ("Search", "Search]" or "S" for `[Search]` after "["), and not for both words; each word gets the log of its
    tokens' summed probability. A word with no such token gets the lowest log-probability returned, an upper bound on
    its own, and is named in the list.
    """
    floor = min(top.values())
    if words is not None:
        agrees = [{words[0]} & top.keys(), {words[1]} & top.keys()]
    else:
        rests = (SEARCH[len(shared) :], ANSWER[len(shared) :])
        agrees = [{t for t in top if t and (rest.startswith(t) or t.startswith(rest))} for rest in rests]
    scores, outside = [], []
    for word, own, other in ((SEARCH, agrees[0], agrees[1]), (ANSWER, agrees[1], agrees[0])):
        tokens = own - other
        if tokens:
            scores.append(math.log(sum(math.exp(top[t]) for t in tokens)))
        else:
            scores.append(floor)
            outside.append(word)
    return scores[0], scores[1], outside


def first_top_logprobs(choice: dict[str, Any]) -> dict[str, float] | None:
    """The top log-probabilities of a completion's first token: the legacy OpenAI shape (vLLM, SGLang,
    llama-cpp-python: `logprobs.top_logprobs[0]`, a token -> logprob map) or llama.cpp server's (`logprobs.content[0]
    .top_logprobs`, a list of {token, logprob}); None when the completion has none."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    legacy = logprobs.get("top_logprobs")
    if isinstance(legacy, list) and legacy and isinstance(legacy[0], dict) and legacy[0]:
        return {str(token): float(lp) for token, lp in legacy[0].items()}
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        top: dict[str, float] = {}
        for entry in content[0].get("top_logprobs") or []:
            token, lp = str(entry["token"]), float(entry["logprob"])
            top[token] = float(math.log(math.exp(top[token]) + math.exp(lp))) if token in top else lp
        return top or None
    return None


class _Sent:
    """One row's text as passed to `on_token`: only what is new, across retries; a retry that would change text
    already streamed is an error, never a second copy."""

    def __init__(self, callback: Callable[[str], None] | None, url: str) -> None:
        self.callback, self.url, self.text = callback, url, ""

    def update(self, visible: str) -> None:
        if self.callback is None or visible == self.text or self.text.startswith(visible):
            return
        if not visible.startswith(self.text):
            raise EndpointError(
                f"the policy server at {self.url} dropped a stream and its retry wrote other text than was already "
                "streamed: use greedy decoding (no sampling) or max_retries=0"
            )
        self.callback(visible[len(self.text) :])
        self.text = visible


class _Completion:
    """A streamed completion read as the in-process policy decodes: until end-of-sequence, the token limit, or a
    newline after text."""

    def __init__(self, sent: _Sent) -> None:
        self.sent, self.raw, self.finish_reason = sent, "", None
        self.usage: dict[str, Any] = {}
        self.chunks = 0

    def start(self) -> None:
        """A new try: the text so far is dropped (what was streamed stays in `sent`)."""
        self.raw, self.finish_reason, self.chunks = "", None, 0

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take one streamed chunk; True once the visible line is complete."""
        self.chunks += 1
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            self.raw += choice.get("text") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.sent.update(visible_text(self.raw))
        return "\n" in self.raw.lstrip()

    @property
    def finished(self) -> bool:
        """Whether it ended on its own (end-of-sequence or a newline), not at the token limit."""
        return "\n" in self.raw.lstrip() or self.finish_reason != "length"


class SmartRAGEndpointPolicy:
    """The SmartRAG policy on a server speaking the OpenAI-compatible completions API (vLLM, SGLang, llama.cpp).

    Prompts are the protocol's (`render_prompt`): a served model applies no chat template to a completion, so give
    `tokenizer` (the model's own, or a hub id or folder to load it from) and the prompt is rendered through its chat
    template and fitted to `max_context`, exactly as in-process; without one the plain-text prompt (ending
    "Response:" and a newline) is sent, which suits a model trained on it alone. `adapter` is a LoRA adapter's
    served name (vLLM's `--lora-modules name=path`), sent as the request's `model`.

    The decision reads the top `top_logprobs` (20: the base model's `[Answer]` token is often outside a top 5)
    log-probabilities of the token after the prompt and the text both action words start with ("["; with a tokenizer,
    each word's own next token, else `action_logprobs`' text rule); P(search) = P(search piece) / (P(search piece) +
    P(answer piece)), the in-process formula with the words' remaining tokens taken as certain.
    There is no decision gate (it reads a hidden state a server does not return): the action token decides.

    Rewrite and answer stream a completion of prompt + forced action word, read until end-of-sequence,
    `max_new_tokens` or a newline after text, and parsed by the graph with `parse_action`. Concurrency is the
    server's: every call is its own request (`graph.abatch` keeps up to `max_batch_size` in flight). Each request is
    tried up to `1 + max_retries` times under `timeout` seconds per wait; a failure is an `EndpointError` (a
    `PolicyError`) naming the server, which the graph records where the episode can go on.
    """

    ls_provider = "openai-compatible"
    """What traces report as `ls_provider`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        adapter: str | None = None,
        tokenizer: Any = None,
        max_new_tokens: int = 32,
        max_context: int = 2048,
        max_question_tokens: int | None = None,
        top_logprobs: int = 20,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_batch_size: int = 64,
        preview: int = 0,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
    ) -> None:
        if top_logprobs < 2:
            raise ValueError("top_logprobs must be >= 2: the decision compares two action words")
        self.model, self.adapter = model, adapter
        self.model_name = f"{model}+{adapter}" if adapter else model
        """What traces report as `ls_model_name`: the base's served name, and the adapter's."""
        self.tokenizer = _tokenizer(tokenizer)
        self.max_new_tokens, self.max_context, self.top_logprobs = max_new_tokens, max_context, top_logprobs
        self.max_question_tokens = max_question_tokens or min(512, max_context // 4)
        self.max_batch_size, self.preview = max_batch_size, preview
        self.gate: DecisionGate | None = None
        """Always None: a server returns no hidden state for a gate to read."""
        self.client = CompletionsClient(
            base_url,
            api_key=api_key if api_key is not None else os.environ.get("SMARTRAG_API_KEY"),
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            http_client=http_client,
            http_async_client=http_async_client,
        )
        self.shared, self.words = self._action_tokens()
        """The text both action words start with, sent after the prompt for the decision; and the text of each
        word's next token under the tokenizer (None without one)."""

    # -- prompts ----------------------------------------------------------------------------------------------
    def prompt(self, question: str, documents: Sequence[Document] = (), preview: Sequence[str] | None = None) -> str:
        """The protocol prompt, as `SmartRAGPolicy.prompt` makes it when there is a tokenizer (question cut from the
        middle past `max_question_tokens`, documents that overrun `max_context` dropped from the end)."""
        documents = documents[:OBSERVATION_DOCUMENTS]
        if self.tokenizer is None:
            return render_prompt(question, documents, None, None if documents else preview)
        question = fit_question(question, self.max_question_tokens, self.encode, self.tokenizer)
        if not documents:
            return render_prompt(question, (), self.tokenizer, preview)
        budget = self.max_context - self.max_new_tokens - len(self.encode(ANSWER))
        kept = documents_that_fit(question, documents, budget, self.encode, self.tokenizer)
        return render_prompt(question, documents[:kept], self.tokenizer)

    def encode(self, text: str) -> list[int]:
        """Token ids of a text without special tokens; empty without a tokenizer (traces then count no tokens)."""
        return [] if self.tokenizer is None else self.tokenizer(text, add_special_tokens=False).input_ids

    def _action_tokens(self) -> tuple[str, tuple[str, str] | None]:
        """What both action words start with (their common leading tokens' text under the tokenizer, none when the
        first tokens differ; else their common leading characters, "["), and each word's first token after it."""
        if self.tokenizer is None:
            return os.path.commonprefix([SEARCH, ANSWER]), None
        search, answer = self.encode(SEARCH), self.encode(ANSWER)
        common = 0
        while search[common] == answer[common]:  # the words differ, so some token does
            common += 1
        shared = self.tokenizer.decode(search[:common]) if common else ""
        return shared, (
            self.tokenizer.decode(search[common : common + 1]),
            self.tokenizer.decode(answer[common : common + 1]),
        )

    # -- the decision -----------------------------------------------------------------------------------------
    def _decide_body(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.adapter or self.model,
            "prompt": prompt + self.shared,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": self.top_logprobs,
            **NO_PENALTY,
        }

    def _decision(self, prompt: str, body: dict[str, Any]) -> Decision:
        """The decision a completion's first-token log-probabilities give."""
        choice = body["choices"][0]
        top = first_top_logprobs(choice) if isinstance(choice, dict) else None
        if not top:
            raise EndpointError(
                f"the policy server at {self.client.url} returned no top logprobs for the decision: it must support "
                f"`logprobs` on /v1/completions (vLLM: --max-logprobs >= {self.top_logprobs})"
            )
        search, answer, outside = action_logprobs(top, self.shared, self.words)
        usage = body.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens") or len(self.encode(prompt))
        p_search = 1.0 / (1.0 + math.exp(answer - search))
        return Decision(p_search, [search], [answer], int(prompt_tokens), None, outside)

    def decide(self, prompts: Sequence[str]) -> list[Decision]:
        """The decision after each prompt, one request each (in threads when there are several)."""
        return self._each(lambda p: self._decision(p, self.client.post(self._decide_body(p))), prompts)

    async def adecide(self, prompts: Sequence[str]) -> list[Decision]:
        """`decide` for asyncio callers, every request in flight at once."""

        async def one(prompt: str) -> Decision:
            return self._decision(prompt, await self.client.apost(self._decide_body(prompt)))

        return await _gather(one, prompts)

    def search_probability(self, prompts: Sequence[str]) -> list[float]:
        """P(search) after each prompt."""
        return [decision.p_search for decision in self.decide(prompts)]

    async def asearch_probability(self, prompts: Sequence[str]) -> list[float]:
        """`search_probability` for asyncio callers."""
        return [decision.p_search for decision in await self.adecide(prompts)]

    # -- rewrite and answer -------------------------------------------------------------------------------------
    def _generate_body(self, prompt: str, prefix: str, seed: int | None, sampling: dict[str, Any]) -> dict[str, Any]:
        unknown = set(sampling) - SAMPLING
        if unknown:
            raise TypeError(f"unknown sampling arguments: {sorted(unknown)}")
        body: dict[str, Any] = {
            "model": self.adapter or self.model,
            "prompt": prompt + prefix,
            "max_tokens": sampling.get("max_new_tokens") or self.max_new_tokens,
            "temperature": 0.0,
            "stream_options": {"include_usage": True},
            **NO_PENALTY,
        }
        if sampling.get("sample"):
            body.update(temperature=sampling.get("temperature", 1.0), top_k=sampling.get("top_k", 50) or -1)
            if seed is not None:
                body["seed"] = seed
        return body

    def _generation(self, prompt: str, prefix: str, completion: _Completion) -> Generation:
        """What a streamed completion gives the graph, as the in-process policy's `Generation`."""
        if completion.chunks == 0:
            raise EndpointError(f"the policy server at {self.client.url} streamed no completion chunks")
        prompt_tokens = completion.usage.get("prompt_tokens") or len(self.encode(prompt + prefix))
        token_ids = self.encode(completion.raw)
        return Generation(visible_text(completion.raw), token_ids, None, completion.finished, int(prompt_tokens))

    def _requests(
        self, prompts: Sequence[str], on_token: TokenCallback | None, seeds: Sequence[int | None] | None
    ) -> list[tuple[int, str, int | None, _Completion]]:
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        return [
            (row, prompt, seed, _Completion(_Sent(_row_callback(on_token, row), self.client.url)))
            for row, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True))
        ]

    def generate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """Completions of `prompt + prefix`, each streamed from the server; `on_token(row, text)` receives each
        row's new visible text once, whatever the retries."""

        def one(request: tuple[int, str, int | None, _Completion]) -> Generation:
            _row, prompt, seed, completion = request
            self.client.stream(self._generate_body(prompt, prefix, seed, sampling), completion.add, completion.start)
            return self._generation(prompt, prefix, completion)

        return self._each(one, self._requests(prompts, on_token, seeds))

    async def agenerate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """`generate` for asyncio callers, every request in flight at once."""

        async def one(request: tuple[int, str, int | None, _Completion]) -> Generation:
            _row, prompt, seed, completion = request
            body = self._generate_body(prompt, prefix, seed, sampling)
            await self.client.astream(body, completion.add, completion.start)
            return self._generation(prompt, prefix, completion)

        return await _gather(one, self._requests(prompts, on_token, seeds))

    # -- helpers ---------------------------------------------------------------------------------------------
    def _each(self, call: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
        """`call` on each item: inline for one, in up to `max_batch_size` threads for more."""
        if len(items) <= 1:
            return [call(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(len(items), self.max_batch_size)) as pool:
            return list(pool.map(call, items))

    def close(self) -> None:
        """Close the sync client's connections."""
        self.client.close()


def _row_callback(on_token: TokenCallback | None, row: int) -> Callable[[str], None] | None:
    """`on_token` bound to a row."""
    if on_token is None:
        return None
    return lambda text: on_token(row, text)


async def _gather(call: Callable[[T], Awaitable[Any]], items: Sequence[T]) -> list[Any]:
    """`call` on every item at once."""
    return list(await asyncio.gather(*(call(item) for item in items)))


def _tokenizer(tokenizer: Any) -> Any:
    """A tokenizer given as one, or loaded from a hub id or folder (offline with HF_HUB_OFFLINE=1)."""
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer))
