"""`SmartRAGChatModel`: the policy's answer turn as a LangChain chat model. What it reads of a conversation, how it
streams, and the generation settings it honours (or refuses), never dropping one silently."""

import asyncio

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import ValidationError

from langchain_smartrag import SmartRAGChatModel, parse_action
from langchain_smartrag.chat_model import AnswerStream, answer_text, conversation_question

QUESTION = "Who wrote Hamlet?"


def answer_to(policy, question: str, **sampling) -> str:
    """What the policy answers to a protocol prompt holding `question`, asked directly."""
    generation = policy.generate([policy.prompt(question)], "[Answer]", **sampling)[0]
    return parse_action("[Answer]" + generation.text).text


def test_a_question_alone_is_the_protocol_prompt(policy):
    assert policy.as_chat_model().invoke(QUESTION).content == answer_to(policy, QUESTION)


def test_a_conversation_reaches_the_policy_as_context_after_its_question(policy):
    conversation = [SystemMessage("Be brief."), HumanMessage("Hello"), AIMessage("Hi!"), HumanMessage(QUESTION)]
    question = f"{QUESTION}\nConversation so far:\nSystem: Be brief.\nUser: Hello\nAssistant: Hi!"
    assert conversation_question(conversation) == question
    assert policy.as_chat_model().invoke(conversation).content == answer_to(policy, question)


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([SystemMessage("Be brief.")], "at least one human message"),
        ([HumanMessage(QUESTION), ToolMessage("42", tool_call_id="1")], "calls no tools"),
        ([AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]), HumanMessage(QUESTION)], "calls no tools"),
        ([HumanMessage([{"type": "image", "url": "https://example.org/a.png"}, QUESTION])], "text only"),
    ],
    ids=["no question", "tool message", "tool call", "image"],
)
def test_what_the_protocol_cannot_hold_is_refused(policy, messages, error):
    with pytest.raises(ValueError, match=error):
        policy.as_chat_model().invoke(messages)


def test_streamed_tokens_add_up_to_the_answer_and_the_last_chunk_carries_usage(policy):
    chat = SmartRAGChatModel(policy=policy, max_tokens=16)
    reply = chat.invoke(QUESTION)
    chunks = list(chat.stream(QUESTION))
    assert len(chunks) > 2  # token by token, not one piece at the end
    assert "".join(chunk.content for chunk in chunks) == reply.content
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata == reply.usage_metadata
    assert all(chunk.usage_metadata is None for chunk in chunks[:-1])


def test_astream_streams_what_stream_does(policy):
    chat = SmartRAGChatModel(policy=policy, max_tokens=16)

    async def pieces() -> list[str]:
        return [chunk.content async for chunk in chat.astream(QUESTION)]

    assert asyncio.run(pieces()) == [chunk.content for chunk in chat.stream(QUESTION)]


def test_streaming_true_sends_callbacks_each_token(policy):
    from langchain_core.callbacks import BaseCallbackHandler

    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs) -> None:
            self.tokens.append(token)

    tokens = Tokens()
    reply = SmartRAGChatModel(policy=policy, streaming=True).invoke(QUESTION, {"callbacks": [tokens]})
    assert len(tokens.tokens) > 2 and "".join(tokens.tokens) == reply.content


def test_the_answer_is_cut_before_the_first_stop_string(policy):
    whole = SmartRAGChatModel(policy=policy, max_tokens=16).invoke(QUESTION).content
    assert len(whole) >= 6
    stop = [whole[4:6], whole[2:4]]
    cut = whole[: whole.find(whole[2:4])].rstrip()
    chat = SmartRAGChatModel(policy=policy, max_tokens=16, stop=stop)
    assert chat.invoke(QUESTION).content == cut
    assert "".join(chunk.content for chunk in chat.stream(QUESTION)) == cut
    assert chat.invoke(QUESTION, stop=[]).content == whole  # a call's own stop replaces the model's


def test_max_tokens_bounds_the_answer(policy):
    chat = SmartRAGChatModel(policy=policy, max_tokens=3)
    assert chat.invoke(QUESTION).usage_metadata["output_tokens"] <= 3
    assert chat.invoke(QUESTION, max_tokens=16).usage_metadata["output_tokens"] > 3
    assert chat.invoke(QUESTION, max_tokens=16).content == answer_to(policy, QUESTION, max_new_tokens=16)


def test_temperature_samples_and_zero_is_greedy(policy):
    greedy = answer_to(policy, QUESTION)
    assert SmartRAGChatModel(policy=policy, temperature=0).invoke(QUESTION).content == greedy
    chat = SmartRAGChatModel(policy=policy, temperature=1.0)
    sampled = []
    for seed in range(4):
        torch.manual_seed(seed)
        sampled.append(chat.invoke(QUESTION).content)
    torch.manual_seed(0)
    assert chat.invoke(QUESTION).content == sampled[0]  # seeded draws repeat
    assert len(set(sampled)) > 1 and chat.invoke(QUESTION, temperature=0).content == greedy


@pytest.mark.parametrize(
    ("settings", "error"),
    [({"temperature": -1}, "temperature"), ({"max_tokens": 0}, "max_tokens"), ({"top_p": 0.9}, "top_p")],
)
def test_a_setting_it_cannot_honour_is_refused_when_built(policy, settings, error):
    with pytest.raises(ValidationError, match=error):
        SmartRAGChatModel(policy=policy, **settings)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"top_p": 0.9}, TypeError),
        ({"model": "another"}, TypeError),
        ({"temperature": -1}, ValueError),
        ({"max_tokens": 0}, ValueError),
    ],
)
def test_a_setting_it_cannot_honour_is_refused_per_call(policy, settings, error):
    with pytest.raises(error):
        policy.as_chat_model().invoke(QUESTION, **settings)


def test_built_from_a_model_folder(tiny_model_dir):
    chat = SmartRAGChatModel(model=str(tiny_model_dir), temperature=0.5, max_tokens=4, stop=["x"])
    assert isinstance(chat.invoke(QUESTION).content, str)
    assert chat._get_ls_params() == {
        "ls_provider": "huggingface",
        "ls_model_name": tiny_model_dir.name,
        "ls_model_type": "chat",
        "ls_temperature": 0.5,
        "ls_max_tokens": 4,
        "ls_stop": ["x"],
    }
    with pytest.raises(ValidationError, match="not both"):
        SmartRAGChatModel(model=str(tiny_model_dir), policy=chat.policy)
    with pytest.raises(ValidationError, match="needs policy"):
        SmartRAGChatModel()


PIECE = st.text(alphabet=" \t:[]aAnswerSEARCHch\nxy", max_size=5)


@given(pieces=st.lists(PIECE, max_size=12), stop=st.lists(st.text(alphabet=" :[]answerxy", min_size=1), max_size=3))
def test_streamed_pieces_add_up_to_the_whole_answer(pieces, stop):
    stream = AnswerStream(stop)
    sent = [stream.add(piece) for piece in pieces]
    sent.append(stream.finish("".join(pieces)))
    assert "".join(sent) == answer_text("".join(pieces), stop)
