"""A scripted tool-calling chat model for agent tests: it stands in for the hosted LLM that drives an agent."""

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage
from pydantic import Field


class ScriptedModel(GenericFakeChatModel):
    """Replies from its script (`messages=iter([...])`, tool calls included) and records what it was shown."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self  # the script already says which tools it calls

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def tool_call(name: str, id: str = "call-1", **args: Any) -> dict[str, Any]:
    """A tool call as a model writes it."""
    return {"name": name, "args": args, "id": id, "type": "tool_call"}
