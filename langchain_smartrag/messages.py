"""Conversations in and out of the graph: the question a conversation asks, and the question added to one that does
not end by asking it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages

from .protocol import validate_question


def conversation_question(messages: Any) -> str:
    """The question a conversation asks: its last human message (LangChain messages, dicts or (role, text) tuples)."""
    humans = [
        m for m in convert_to_messages(messages if isinstance(messages, list) else [messages]) if m.type == "human"
    ]
    if not humans:
        raise ValueError("the messages hold no human message: the last human message is the question")
    return validate_question(humans[-1].text)


def joined_question(messages: Sequence[BaseMessage], question: str) -> dict[str, Any]:
    """The question as a human message, for a conversation that does not end by asking it (a question passed on its
    own to a thread that holds a conversation); nothing for no conversation."""
    humans = [m for m in messages if m.type == "human"]
    if not messages or (humans and humans[-1].text == question):
        return {}
    return {"messages": [HumanMessage(question)]}
