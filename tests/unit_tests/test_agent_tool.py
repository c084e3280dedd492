"""`create_smartrag_tool(graph)`: a tool an agent reads. The model passes a question and reads the answer; the
documents travel beside it as the tool message's artifact, for the app (citations), never for the model."""

from typing import Any

import pytest
from langchain.agents import create_agent  # the `langchain` package: the dev extra installs it
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent

from langchain_smartrag import create_smartrag_graph, create_smartrag_tool
from tests.unit_tests import scripted_model as scripted
from tests.unit_tests.scripted_model import ScriptedModel

QUESTION = "Who wrote Hamlet?"


def tool_call(question: str = QUESTION, id: str = "call-1") -> dict[str, Any]:
    return scripted.tool_call("smartrag", id, question=question)


def test_the_model_reads_the_answer_and_the_app_gets_the_documents(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    expected = graph.invoke({"question": QUESTION})
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=[tool_call()]), AIMessage("Shakespeare.")]))
    agent = create_react_agent(model, [create_smartrag_tool(graph)])
    out = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    (shown,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]  # what the model read on its second turn
    assert shown.content == expected["answer"] and shown.name == "smartrag"
    assert shown.artifact == expected["documents"] and all(isinstance(d, Document) for d in shown.artifact)
    assert "Hamlet" in [d.metadata["title"] for d in shown.artifact]
    assert out["messages"][-1].content == "Shakespeare."


def test_langchains_create_agent_drives_it_and_its_model_reads_the_answer(searching_policy, retriever):
    """LangChain v1's agent (`langchain.agents.create_agent`), as an app builds one, with a scripted tool-calling
    model: the model reads the answer alone; the documents stay the ToolMessage's artifact, for the app."""
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    expected = graph.invoke({"question": QUESTION})
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=[tool_call()]), AIMessage("Shakespeare.")]))
    agent = create_agent(model, tools=[create_smartrag_tool(graph)], system_prompt="Answer with the tool.")
    out = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    (shown,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert shown.content == expected["answer"] and shown.artifact == expected["documents"]
    assert [type(m).__name__ for m in out["messages"]] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert out["messages"][-1].content == "Shakespeare."


def test_a_model_is_asked_for_the_question_alone(policy, retriever):
    tool = create_smartrag_tool(create_smartrag_graph(policy, retriever))
    assert tool.name == "smartrag" and tool.args.keys() == {"question"}
    assert tool.response_format == "content_and_artifact"


def test_called_with_a_tool_call_it_returns_a_tool_message(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    tool = create_smartrag_tool(graph, name="lookup")
    message = tool.invoke({**tool_call(), "name": "lookup"})
    assert isinstance(message, ToolMessage) and isinstance(message.content, str) and message.tool_call_id == "call-1"
    assert message.artifact and all(isinstance(d, Document) for d in message.artifact)


async def test_async_calls_answer_the_same(searching_policy, retriever):
    tool = create_smartrag_tool(create_smartrag_graph(searching_policy, retriever, rewrite_query=False))
    sync, not_sync = tool.invoke(tool_call()), await tool.ainvoke(tool_call())
    assert (sync.content, sync.artifact) == (not_sync.content, not_sync.artifact)


@pytest.mark.parametrize("run", ["sync", "async"])
async def test_a_graph_with_a_checkpointer_needs_no_thread_and_keeps_none(searching_policy, retriever, run):
    saver = InMemorySaver()
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False, checkpointer=saver)
    tool = create_smartrag_tool(graph)
    for i in range(2):
        message = tool.invoke(tool_call(id=f"{i}")) if run == "sync" else await tool.ainvoke(tool_call(id=f"{i}"))
        assert message.artifact
    assert list(saver.list(None)) == []  # each call ran on its own thread, deleted after it


def test_in_an_agent_with_its_own_thread_the_tool_answers_each_call(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False, checkpointer=InMemorySaver())
    calls = [AIMessage("", tool_calls=[tool_call("Who wrote Hamlet?", "a")]), AIMessage("Shakespeare.")]
    calls += [AIMessage("", tool_calls=[tool_call("When did Apollo 11 land?", "b")]), AIMessage("1969.")]
    model = ScriptedModel(messages=iter(calls))
    agent = create_react_agent(model, [create_smartrag_tool(graph)], checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "user-1"}}
    read = []
    for question in ("Who wrote Hamlet?", "When did Apollo 11 land?"):
        agent.invoke({"messages": [HumanMessage(question)]}, thread)
        read.append([m for m in model.seen[-1] if isinstance(m, ToolMessage)][-1].artifact[0].metadata["title"])
    assert read == ["Hamlet", "Apollo 11"]  # each call its own episode, on the agent's thread


def test_a_graph_that_pauses_inside_a_tool_call_is_an_error(searching_policy, retriever):
    graph = create_smartrag_graph(
        searching_policy, retriever, checkpointer=InMemorySaver(), interrupt_before=["retrieve"]
    )
    with pytest.raises(RuntimeError, match="paused before answering"):
        create_smartrag_tool(graph).invoke(tool_call())


def test_in_an_agent_without_a_thread_a_graph_with_a_checkpointer_keeps_none(searching_policy, retriever):
    saver = InMemorySaver()
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False, checkpointer=saver)
    model = ScriptedModel(messages=iter([AIMessage("", tool_calls=[tool_call()]), AIMessage("Shakespeare.")]))
    create_react_agent(model, [create_smartrag_tool(graph)]).invoke({"messages": [HumanMessage(QUESTION)]})
    (shown,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert shown.artifact[0].metadata["title"] == "Hamlet" and list(saver.list(None)) == []
