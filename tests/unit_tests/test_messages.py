"""Messages in, messages out: the graph takes a conversation beside a question, answers its last human message and
appends the answer as an AIMessage, so it is a node of a `MessagesState` graph and a sub-agent of an agent."""

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent

from langchain_smartrag import create_smartrag_graph
from tests.unit_tests.scripted_model import ScriptedModel, tool_call


def kinds(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


def test_the_last_human_message_is_the_question_and_the_answer_is_appended(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    asked = graph.invoke({"question": "Who wrote Hamlet?"})
    conversation = [
        SystemMessage("Be brief."),
        HumanMessage("Hello"),
        AIMessage("Hi!"),
        HumanMessage("Who wrote Hamlet?"),
    ]
    out = graph.invoke({"messages": conversation})
    assert out["question"] == "Who wrote Hamlet?" and out["queries"] == ["Who wrote Hamlet?"]
    assert out["answer"] == asked["answer"] and out["documents"] == asked["documents"]
    assert kinds(out["messages"]) == [*kinds(conversation), ("ai", asked["answer"])]


def test_messages_may_be_dicts_or_role_and_text_pairs(answering_policy, retriever):
    graph = create_smartrag_graph(answering_policy, retriever)
    as_dicts = graph.invoke({"messages": [{"role": "user", "content": "Who wrote Hamlet?"}]})
    as_pairs = graph.invoke({"messages": [("user", "Who wrote Hamlet?")]})
    assert as_dicts["question"] == as_pairs["question"] == "Who wrote Hamlet?"
    assert (
        kinds(as_dicts["messages"])
        == kinds(as_pairs["messages"])
        == [
            ("human", "Who wrote Hamlet?"),
            ("ai", as_dicts["answer"]),
        ]
    )


def test_a_question_beside_messages_is_the_question_and_joins_the_conversation(answering_policy, retriever):
    graph = create_smartrag_graph(answering_policy, retriever)
    out = graph.invoke({"question": "Who wrote Hamlet?", "messages": [HumanMessage("Hello"), AIMessage("Hi!")]})
    assert kinds(out["messages"])[2:] == [("human", "Who wrote Hamlet?"), ("ai", out["answer"])]


def test_a_question_on_its_own_keeps_its_output(answering_policy, retriever):
    out = create_smartrag_graph(answering_policy, retriever).invoke({"question": "Who wrote Hamlet?"})
    assert out["messages"] == [] and isinstance(out["answer"], str)


@pytest.mark.parametrize(
    "messages",
    [[], [SystemMessage("Be brief.")], [AIMessage("Hi!")], [HumanMessage("   ")]],
    ids=["none", "system only", "ai only", "blank question"],
)
def test_a_conversation_without_a_question_is_refused_before_it_runs(answering_policy, retriever, messages):
    with pytest.raises(ValueError, match="human message|empty"):
        create_smartrag_graph(answering_policy, retriever).invoke({"messages": messages})


def test_a_thread_holds_the_conversation_across_episodes(answering_policy, retriever):
    graph = create_smartrag_graph(answering_policy, retriever, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "chat"}}
    first = graph.invoke({"messages": [HumanMessage("Who wrote Hamlet?")]}, thread)
    second = graph.invoke({"messages": [HumanMessage("What is the capital of France?")]}, thread)
    third = graph.invoke({"question": "When did Apollo 11 land?"}, thread)  # a question alone joins it too
    assert third["question"] == "When did Apollo 11 land?"
    assert kinds(third["messages"]) == [
        ("human", "Who wrote Hamlet?"),
        ("ai", first["answer"]),
        ("human", "What is the capital of France?"),
        ("ai", second["answer"]),
        ("human", "When did Apollo 11 land?"),
        ("ai", third["answer"]),
    ]


async def test_ainvoke_takes_messages_too(answering_policy, retriever):
    graph = create_smartrag_graph(answering_policy, retriever)
    out = await graph.ainvoke({"messages": [HumanMessage("Who wrote Hamlet?")]})
    assert kinds(out["messages"]) == [("human", "Who wrote Hamlet?"), ("ai", out["answer"])]


def test_stream_mode_messages_shows_the_answer_once(answering_policy, retriever):
    graph = create_smartrag_graph(answering_policy, retriever)
    events = list(graph.stream({"messages": [HumanMessage("Who wrote Hamlet?")]}, stream_mode="messages"))
    answer = graph.invoke({"question": "Who wrote Hamlet?"})["answer"]
    answered = [chunk for chunk, meta in events if meta["langgraph_node"] == "answer"]
    assert "".join(chunk.content for chunk in answered) == answer  # the tokens, not the tokens and the message again
    assert len({chunk.id for chunk in answered}) == 1


def test_a_node_of_a_messages_state_graph(searching_policy, retriever):
    parent = StateGraph(MessagesState)
    parent.add_node("smartrag", create_smartrag_graph(searching_policy, retriever, rewrite_query=False))
    parent.add_edge(START, "smartrag")
    out = parent.compile(checkpointer=InMemorySaver()).invoke(
        {"messages": [HumanMessage("Who wrote Hamlet?")]}, {"configurable": {"thread_id": "parent"}}
    )
    answer = create_smartrag_graph(searching_policy, retriever, rewrite_query=False).invoke(
        {"question": "Who wrote Hamlet?"}
    )["answer"]
    assert kinds(out["messages"]) == [("human", "Who wrote Hamlet?"), ("ai", answer)]  # appended once, no copies


def test_a_sub_agent_called_by_an_agent_with_messages(answering_policy, retriever):
    """LangChain's sub-agent pattern: a tool hands the sub-agent a conversation and returns its last message."""
    smartrag = create_smartrag_graph(answering_policy, retriever)

    @tool
    def research(query: str) -> str:
        """Ask the research sub-agent a factual question."""
        return smartrag.invoke({"messages": [{"role": "user", "content": query}]})["messages"][-1].content

    call = tool_call("research", query="Who wrote Hamlet?")
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=[call]), AIMessage("Shakespeare, it says.")]))
    out = create_react_agent(model, [research]).invoke({"messages": [HumanMessage("Who wrote Hamlet?")]})
    (reply,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert reply.content == smartrag.invoke({"question": "Who wrote Hamlet?"})["answer"]
    assert out["messages"][-1].content == "Shakespeare, it says."
