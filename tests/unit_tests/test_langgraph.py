"""The graph behaves like any LangGraph graph: threads, parent graphs, human in the loop, schemas, tools,
tracing metadata, default batching. LangGraph's own server is `tests/integration_tests/test_langgraph_dev.py`."""

import re
from operator import add
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Overwrite
from typing_extensions import TypedDict

from langchain_smartrag import SmartRAGContext, SmartRAGPolicy, create_smartrag_graph, parse_action
from langchain_smartrag.training.tiny import tiny_model


def titles(state: dict) -> list[str]:
    return [d.metadata["title"] for d in state["documents"]]


def test_each_question_on_a_thread_is_its_own_episode(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, rewrite_query=False, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "one"}}
    first = graph.invoke({"question": "What is the capital of France?"}, thread)
    second = graph.invoke({"question": "Who wrote Hamlet?"}, thread)
    assert first["queries"] == ["What is the capital of France?"] and "Paris" in titles(first)
    assert second["queries"] == ["Who wrote Hamlet?"] and second["retrievals"] == 1
    assert "Hamlet" in titles(second) and "Paris" not in titles(second)
    assert len(second["search_probabilities"]) == 1


def test_a_parent_graphs_channels_do_not_leak_into_the_episode(searching_policy, retriever, monkeypatch):
    class Parent(TypedDict):
        question: str
        answer: str
        retrievals: Annotated[int, add]
        documents: Annotated[list[Document], add]

    prompts = []
    generate = searching_policy.generate
    monkeypatch.setattr(
        searching_policy, "generate", lambda p, prefix, **kw: prompts.append(p[0]) or generate(p, prefix, **kw)
    )
    child = create_smartrag_graph(searching_policy, retriever, rewrite_query=False)
    parent = StateGraph(Parent)
    parent.add_node("smartrag", child)
    parent.add_edge(START, "smartrag")
    stale = Document(page_content="The answer is always 42.", metadata={"title": "Stale"})
    out = parent.compile().invoke({"question": "Who wrote Hamlet?", "retrievals": 5, "documents": [stale]})
    assert "always 42" not in prompts[-1] and "Hamlet" in prompts[-1]  # the answer read this episode's documents
    assert out["retrievals"] == 5 + 1  # the child retrieved once (its quota was not spent) and the parent adds


def test_human_in_the_loop_edits_the_query_before_retrieval(searching_policy, retriever):
    graph = create_smartrag_graph(
        searching_policy, retriever, checkpointer=InMemorySaver(), interrupt_before=["retrieve"]
    )
    thread = {"configurable": {"thread_id": "hitl"}}
    graph.invoke({"question": "Who wrote Hamlet?"}, thread)
    paused = graph.get_state(thread)
    assert paused.next == ("retrieve",) and len(paused.values["queries"]) == 1  # the policy's (gibberish) query
    graph.update_state(thread, {"queries": Overwrite(["Hamlet tragedy author"])})
    out = graph.invoke(None, thread)  # approve: resume from the interrupt
    assert out["queries"] == ["Hamlet tragedy author"] and titles(out)[0] == "Hamlet" and out["answer"] is not None
    graph.invoke({"question": "Capital of France?"}, thread)  # the next question starts clean, pauses again
    assert graph.get_state(thread).values["retrievals"] == 0


def test_schemas_show_callers_what_they_pass_and_read(policy, retriever):
    graph = create_smartrag_graph(policy, retriever)
    assert graph.get_input_jsonschema()["properties"].keys() == {"question"}
    assert graph.get_input_jsonschema()["required"] == ["question"]
    assert {"answer", "retrievals", "queries", "documents", "errors"} <= graph.get_output_jsonschema()[
        "properties"
    ].keys()
    context = graph.get_context_jsonschema()["properties"]
    assert {"threshold", "max_retrievals"} <= context.keys() and not {"policy", "retriever"} & context.keys()


def test_the_context_schema_shows_each_setting_described_with_the_graphs_own_default(policy, retriever):
    """What Studio's form shows: every field with what it does and the value a call gets, never null."""
    graph = create_smartrag_graph(policy, retriever, max_retrievals=2, rewrite_query=False)
    context = graph.get_context_jsonschema()["properties"]
    assert {name: field["default"] for name, field in context.items()} == {
        "threshold": 0.5,  # the action token's own, although the graph was given None
        "max_retrievals": 2,
        "rewrite_query": False,
        "preview": 0,
        "decision": "token",
    }
    assert all(field["description"] and field.get("type") != "null" for field in context.values())
    assert (
        create_smartrag_graph(policy, retriever, threshold=0.3).get_context_jsonschema()["properties"]["threshold"][
            "default"
        ]
        == 0.3
    )


def test_training_only_settings_are_not_public(policy, retriever):
    """Sampling and recording belong to training rollouts (`training.trajectories.RolloutContext`): a server, a form
    or a caller of the public context cannot set them."""
    context = create_smartrag_graph(policy, retriever).get_context_jsonschema()["properties"]
    assert not {"sample", "sample_decision", "record", "temperature"} & context.keys()
    with pytest.raises(TypeError, match="sample"):
        SmartRAGContext(sample=True)  # type: ignore[call-arg]


def test_as_tool_shows_the_model_only_the_question(policy, retriever):
    tool = create_smartrag_graph(policy, retriever).as_tool(name="smartrag", description="Answer a factual question.")
    assert tool.args.keys() == {"question"}
    assert isinstance(tool.invoke({"question": "Who wrote Hamlet?"})["answer"], str)


def test_an_input_without_a_question_names_the_key(policy, retriever):
    with pytest.raises(ValueError, match="no 'question'"):
        create_smartrag_graph(policy, retriever).invoke({"query": "Who wrote Hamlet?"})


def test_policy_runs_report_model_parameters_and_token_usage(searching_policy, retriever):
    class Recorder(BaseCallbackHandler):
        starts: ClassVar[list] = []
        ends: ClassVar[list] = []

        def on_chat_model_start(self, serialized, messages, *, metadata=None, invocation_params=None, **kwargs):
            self.starts.append((metadata, invocation_params))

        def on_llm_end(self, response, **kwargs):
            self.ends.append(response)

    create_smartrag_graph(searching_policy, retriever).invoke(
        {"question": "Who wrote Hamlet?"}, {"callbacks": [Recorder()]}
    )
    assert len(Recorder.starts) == 3  # decide, rewrite, answer
    for metadata, params in Recorder.starts:
        assert metadata["ls_model_name"] == searching_policy.model_name and metadata["ls_provider"] == "huggingface"
        assert params["model"] == searching_policy.model_name
    assert Recorder.starts[0][1]["threshold"] == 0.5 and Recorder.starts[1][1]["max_new_tokens"] == 6
    for response in Recorder.ends:
        usage = response.generations[0][0].message.usage_metadata
        assert usage["input_tokens"] > 10 and usage["output_tokens"] >= 1
        assert response.llm_output["token_usage"]["prompt_tokens"] == usage["input_tokens"]


@pytest.mark.parametrize(("config", "largest"), [(None, 12), ({"max_concurrency": 4}, 4)])
def test_batch_coalesces_up_to_the_policys_batch_size_by_default(tiny_tokenizer, retriever, config, largest):
    """LangChain's default runs min(32, cores + 4) threads; the graph defaults to the policy's max_batch_size."""
    policy = SmartRAGPolicy(
        tiny_model(tiny_tokenizer),
        tiny_tokenizer,
        max_new_tokens=2,
        autocast=False,
        max_batch_size=12,
        max_wait_ms=1000,
    )  # the batcher waits for the 12th caller
    sizes = []
    decide_batch = policy.decide_batch
    policy.decide_batch = lambda prompts: sizes.append(len(prompts)) or decide_batch(prompts)
    graph = create_smartrag_graph(policy, retriever, threshold=2.0)
    graph.batch([{"question": f"Question {i}?"} for i in range(12)], config)
    assert max(sizes) == largest


def test_the_policy_answers_as_a_chat_model_elsewhere_in_an_app(policy):
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.prompts import ChatPromptTemplate

    chat = policy.as_chat_model()
    reply = chat.invoke([HumanMessage("Who wrote Hamlet?")])
    expected = policy.generate([policy.prompt("Who wrote Hamlet?")], "[Answer]")[0]
    assert reply.content == parse_action("[Answer]" + expected.text).text
    assert reply.usage_metadata["input_tokens"] == expected.prompt_tokens
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | chat
    assert [m.content for m in chain.batch([{"question": "Who wrote Hamlet?"}] * 2)] == [reply.content] * 2
    with pytest.raises(ValueError, match="human message"):
        chat.invoke([SystemMessage("No question here.")])


def readme_block(heading: str) -> str:
    """The first Python code block under a README heading, as written there."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_human_in_the_loop_recipe_pauses_and_resumes_with_the_edited_query(policy, retriever):
    """The README's own code, run as written with a tiny policy in place of the embedded one: it pauses before the
    search, and the resumed run searches with the query the human wrote."""
    namespace = {"policy": policy, "retriever": retriever, "create_smartrag_graph": create_smartrag_graph}
    exec(readme_block("## Threads, messages, tools, human in the loop, server"), namespace)  # noqa: S102 -- the point
    assert namespace["paused"] == ("retrieve",)
    assert namespace["approved"]["queries"] == ["Hamlet author"] and namespace["approved"]["retrievals"] == 1
    assert namespace["hitl"].get_state(namespace["thread"]).next == ()
