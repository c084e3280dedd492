"""The policy's answer turn as a LangChain chat model, so a trained policy can answer elsewhere in an app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from .protocol import ANSWER, parse_action, validate_question


@runtime_checkable
class AnsweringPolicy(Protocol):
    """What the chat model needs of a policy (`SmartRAGPolicy` is one): its protocol prompt and its generation."""

    model_name: str
    max_new_tokens: int

    def prompt(self, question: str) -> str:
        """The protocol prompt for a question, with no documents."""
        ...

    def generate(self, prompts: Sequence[str], prefix: str = "") -> list[Any]:
        """Completions of `prompt + prefix`, each with `text`, `token_ids` and `prompt_tokens`."""
        ...


class SmartRAGChatModel(BaseChatModel):
    """Answers the last human message as the policy's answer turn: the protocol prompt for that question, the
    forced `[Answer]`, and the parsed answer (no retrieval; the graph decides that). Calls share the policy's
    dynamic batching with the graph's."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    policy: AnsweringPolicy

    @property
    def _llm_type(self) -> str:
        """The kind of chat model tracers report."""
        return "smartrag-policy"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What tells one such chat model from another: the policy's model and its generation length."""
        return {"model_name": self.policy.model_name, "max_new_tokens": self.policy.max_new_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """The answer turn for the last human message, with the policy's token usage."""
        questions = [m for m in messages if isinstance(m, HumanMessage)]
        if not questions:
            raise ValueError("SmartRAGChatModel answers a question: pass at least one human message")
        prompt = self.policy.prompt(validate_question(questions[-1].text))
        generation = self.policy.generate([prompt], ANSWER)[0]
        usage = UsageMetadata(
            input_tokens=generation.prompt_tokens,
            output_tokens=len(generation.token_ids),
            total_tokens=generation.prompt_tokens + len(generation.token_ids),
        )
        message = AIMessage(
            content=parse_action(ANSWER + generation.text).text,
            usage_metadata=usage,
            response_metadata={"model_name": self.policy.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
