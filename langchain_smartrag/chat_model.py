"""The policy's answer turn as a LangChain chat model, so a trained policy can answer elsewhere in an app."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SecretStr, model_validator

from .policy_protocol import AnsweringPolicy
from .protocol import ANSWER, SEARCH, parse_action, validate_question

ROLES = {"system": "System", "human": "User", "ai": "Assistant"}
"""The messages the chat model reads, and how a conversation names each one's speaker in the question."""

CALL_ARGUMENTS = frozenset({"temperature", "max_tokens", "stream"})
"""What a call may set besides `stop` (`stream` is LangChain's own switch)."""


def conversation_question(messages: Sequence[BaseMessage]) -> str:
    """The text the protocol's one slot, the question, holds: the last human message, then the conversation it ends
    (system text and earlier turns) when there is one.

    The protocol prompt is the policy's trained single turn, instructions and question, and the policy is trained on
    that alone; so the rest of a conversation reaches it as context after the question, never as turns of its own.
    """
    for message in messages:
        if message.type not in ROLES:
            raise ValueError(
                f"SmartRAGChatModel reads system, human and AI messages, not {message.type!r} ones: it calls no tools"
            )
        if getattr(message, "tool_calls", None):
            raise ValueError(
                "SmartRAGChatModel calls no tools: an AI message with tool calls has no place in its prompt"
            )
        if isinstance(message.content, list) and any(
            not isinstance(block, str) and block.get("type") != "text" for block in message.content
        ):
            raise ValueError("SmartRAGChatModel reads text only: a message holds an image, audio or file block")
    asked = [i for i, message in enumerate(messages) if message.type == "human"]
    if not asked:
        raise ValueError("SmartRAGChatModel answers a question: pass at least one human message")
    question = validate_question(messages[asked[-1]].text)
    context = [f"{ROLES[m.type]}: {m.text}" for i, m in enumerate(messages) if i != asked[-1] and m.text.strip()]
    return "\n".join([question, "Conversation so far:", *context]) if context else question


def answer_text(completion: str, stop: Sequence[str] = ()) -> str:
    """The answer in a completion after `[Answer]`, parsed as the graph parses it, cut before the first stop string."""
    answer = parse_action(ANSWER + completion).text
    return answer[: _first_stop(answer, stop)].rstrip()


def _first_stop(answer: str, stop: Sequence[str]) -> int:
    """Where the first stop string in `answer` starts (its length when there is none)."""
    return min([at for word in stop if (at := answer.find(word)) >= 0], default=len(answer))


class AnswerStream:
    """The answer as its completion streams. Each piece sends what the text so far settles of `answer_text`: the
    answer up to where more text could still complete a stop string or an action word, so the pieces add up to
    exactly what the whole completion gives."""

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self.stop, self.completion, self.sent = tuple(stop), "", ""

    def add(self, text: str) -> str:
        """The answer's newly settled text once `text` is added to the completion."""
        self.completion += text
        answer = parse_action(ANSWER + self.completion).text
        return self._send(answer[: min(_first_stop(answer, self.stop), self._open_tail(answer))].rstrip())

    def finish(self, completion: str) -> str:
        """The rest of the answer, given the whole completion."""
        return self._send(answer_text(completion, self.stop))

    def _open_tail(self, answer: str) -> int:
        """Where the earliest tail of `answer` starts that may grow into a stop string or an action word (the blanks
        before it are held back too: the answer is trimmed where it is cut)."""
        actions = (SEARCH.lower(), ANSWER.lower())
        for start in range(len(answer) + 1):
            tail = answer[start:]
            if any(word.startswith(tail) for word in self.stop) or any(
                word.startswith(tail.lower()) for word in actions
            ):
                return start
        return len(answer)  # not reached: the empty tail starts every word

    def _send(self, answer: str) -> str:
        """What `answer` adds to the text sent so far (it always extends it), now sent."""
        delta, self.sent = answer[len(self.sent) :], answer
        return delta


@dataclass(frozen=True)
class _Call:
    """One call, resolved: the prompt, the policy's sampling arguments and the stop strings."""

    prompt: str
    sampling: dict[str, Any]
    stop: tuple[str, ...]


class SmartRAGChatModel(BaseChatModel):
    """Answers the last human message as the policy's answer turn: the protocol prompt for that question, the
    forced `[Answer]`, and the parsed answer (no retrieval; the graph decides that). Calls share the policy's
    dynamic batching with the graph's.

    Build it from a policy (`policy.as_chat_model()`, or `policy=`) or from what `SmartRAGPolicy.load` loads
    (`model="embedded"`, a model folder, a hub id). `temperature`, `max_tokens` and `stop` may also be set per call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    policy: AnsweringPolicy
    model: str | None = None
    """What the policy was loaded from, when built with `model=` ("embedded", a folder or a hub id)."""
    temperature: float | None = Field(default=None, ge=0)
    """None or 0: greedy, as the policy was trained to answer; above 0: sampled from the top 50 tokens."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Most tokens an answer takes (it ends sooner at a newline); None: the policy's `max_new_tokens`."""
    stop: list[str] | None = None
    """The answer is cut before the first of these strings; a call's own `stop` replaces them."""
    streaming: bool = False
    """Whether `invoke` streams, so callbacks see each token as it is generated."""
    timeout: float | None = None
    """Accepted so code written for hosted chat models builds this one; a local model has no request to time out."""
    max_retries: int | None = None
    """Accepted as `timeout` is; a local model has no request to retry."""
    api_key: SecretStr | None = None
    """Accepted as `timeout` is; a local model needs no key."""

    @model_validator(mode="before")
    @classmethod
    def _load_policy(cls, values: Any) -> Any:
        """A policy loaded from `model` when none is passed; both, or neither, is an error."""
        if not isinstance(values, dict):
            return values
        if values.get("policy") is not None and values.get("model") is not None:
            raise ValueError("pass SmartRAGChatModel a policy or a model to load, not both")
        if values.get("policy") is None:
            if values.get("model") is None:
                raise ValueError('SmartRAGChatModel needs policy=SmartRAGPolicy(...) or model="embedded" (or a folder)')
            from .policy import SmartRAGPolicy  # the policy module imports this one

            values = {**values, "policy": SmartRAGPolicy.load(values["model"])}
        return values

    @property
    def _llm_type(self) -> str:
        """The kind of chat model tracers report."""
        return "smartrag-policy"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What tells one such chat model from another: the policy's model and the generation settings."""
        return {
            "model_name": self.policy.model_name,
            "temperature": self.temperature or 0.0,
            "max_tokens": self.max_tokens or self.policy.max_new_tokens,
            "stop": self.stop or [],
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """The standard parameters LangSmith reads, with a call's own overrides."""
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="huggingface",
            ls_model_name=model if isinstance(model, str) else self.policy.model_name,
            ls_model_type="chat",
            ls_temperature=float(kwargs.get("temperature", self.temperature) or 0.0),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens) or self.policy.max_new_tokens,
        )
        stops = self.stop if stop is None else stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    def _call(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        """The prompt, sampling and stop strings of one call: the model's settings with the call's over them."""
        unknown = set(kwargs) - CALL_ARGUMENTS
        if unknown:
            raise TypeError(
                f"SmartRAGChatModel takes temperature, max_tokens and stop per call, not {', '.join(sorted(unknown))}"
            )
        temperature = kwargs.get("temperature", self.temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if temperature is not None and (isinstance(temperature, bool) or not temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}")
        sampling: dict[str, Any] = {}  # the policy's defaults (greedy, its own length) batch with the graph's calls
        if temperature:
            sampling.update(sample=True, temperature=float(temperature))
        if max_tokens is not None:
            sampling["max_new_tokens"] = max_tokens
        stops = tuple(word for word in (self.stop if stop is None else stop) or [] if word)  # "" would cut everything
        return _Call(self.policy.prompt(conversation_question(messages)), sampling, stops)

    def _message(self, generation: Any, content: str) -> AIMessage:
        """The reply, with the policy's token usage and model name."""
        return AIMessage(content=content, usage_metadata=_usage(generation), response_metadata=self._metadata)

    @property
    def _metadata(self) -> dict[str, Any]:
        """The response metadata every reply carries (a stream's on its last chunk only)."""
        return {"model_name": self.policy.model_name}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """The answer turn for the conversation's question, with the policy's token usage."""
        call = self._call(messages, stop, kwargs)
        generation = self.policy.generate([call.prompt], ANSWER, **call.sampling)[0]
        message = self._message(generation, answer_text(generation.text, call.stop))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """`_generate` on the policy's async call: no thread held while the batch runs."""
        call = self._call(messages, stop, kwargs)
        generation = (await self.policy.agenerate([call.prompt], ANSWER, **call.sampling))[0]
        message = self._message(generation, answer_text(generation.text, call.stop))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The answer token by token, as the policy generates it (its generation runs in a thread of its own); the
        last chunk carries the token usage."""
        call = self._call(messages, stop, kwargs)
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def generate() -> None:
            try:
                events.put(
                    self.policy.generate([call.prompt], ANSWER, on_token=lambda _, t: events.put(t), **call.sampling)[0]
                )
            except BaseException as error:  # noqa: BLE001 -- raised to the caller, in its own thread
                events.put(error)

        threading.Thread(target=generate, name="smartrag-chat-stream", daemon=True).start()
        answer = AnswerStream(call.stop)
        while True:
            event = events.get()
            if (chunk := self._chunk(event, answer)) is not None:
                yield chunk
            if not isinstance(event, str):  # the finished generation
                return

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """`_stream` on the policy's async call; a consumer that stops early cancels a request not yet run."""
        call = self._call(messages, stop, kwargs)
        loop, events = asyncio.get_running_loop(), asyncio.Queue[Any]()

        def on_token(_row: int, text: str) -> None:  # called in the policy's batching thread
            loop.call_soon_threadsafe(events.put_nowait, text)

        async def generate() -> None:
            try:
                events.put_nowait(
                    (await self.policy.agenerate([call.prompt], ANSWER, on_token=on_token, **call.sampling))[0]
                )
            except Exception as error:  # noqa: BLE001 -- raised to the consumer
                events.put_nowait(error)

        task, answer = asyncio.create_task(generate()), AnswerStream(call.stop)
        try:
            while True:
                event = await events.get()
                if (chunk := self._chunk(event, answer)) is not None:
                    yield chunk
                if not isinstance(event, str):  # the finished generation
                    return
        finally:
            task.cancel()

    def _chunk(self, event: Any, answer: AnswerStream) -> ChatGenerationChunk | None:
        """A stream's next chunk from the policy's next event: new text, the finished generation, or an error."""
        if isinstance(event, BaseException):
            raise event
        if isinstance(event, str):
            text = answer.add(event)
            return ChatGenerationChunk(message=AIMessageChunk(content=text)) if text else None
        last = AIMessageChunk(
            content=answer.finish(event.text),
            usage_metadata=_usage(event),
            response_metadata=self._metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=last)


def _usage(generation: Any) -> UsageMetadata:
    """A generation's token usage, as LangChain's chat models report it."""
    output_tokens = len(generation.token_ids)
    return UsageMetadata(
        input_tokens=generation.prompt_tokens,
        output_tokens=output_tokens,
        total_tokens=generation.prompt_tokens + output_tokens,
    )
