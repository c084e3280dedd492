"""The policy on a served model: `SmartRAGEndpointPolicy` behind the real graph and a real BM25 index.

No inference server runs here, so the HTTP transport is fake (`httpx.MockTransport`): it answers `/v1/completions`
as vLLM (the legacy OpenAI shape) or llama.cpp's server (its `logprobs.content` shape) do, streams completions as
server-sent events, and fails on demand (down, 500, malformed JSON, no logprobs, timeouts, dropped streams).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import LLMResult

from langchain_smartrag import (
    ANSWER,
    SEARCH,
    PolicyError,
    PolicyLike,
    SmartRAGEndpointPolicy,
    SmartRAGPolicy,
    create_smartrag_graph,
    render_prompt,
)
from langchain_smartrag.endpoint_policy import action_logprobs, first_top_logprobs

URL = "http://policy.test:8000"
SEARCHING = {"Search": -0.1, "Answer": -2.4, "S": -6.0, "\n": -7.0, " ": -7.5}
"""A first-token top-5 after "[" that favours searching."""
ANSWERING = {"Answer": -0.05, "Search": -3.1, "A": -6.0, "\n": -7.0, " ": -7.5}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


P_SEARCHING = sigmoid(math.log(math.exp(-0.1) + math.exp(-6.0)) + 2.4)
"""P(search) under SEARCHING: "Search" and "S" both begin the rest of "[Search]"."""
P_ANSWERING = sigmoid(-3.1 - math.log(math.exp(-0.05) + math.exp(-6.0)))


def sse(*texts: str) -> bytes:
    """A streamed completion: one event per text piece, then [DONE]."""
    events = [{"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": t}]} for t in texts]
    events.append({"id": "cmpl-1", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": len(texts)}})
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


class FakeServer:
    """An OpenAI-compatible completions server: decisions from `top`, queries and answers from `completions`."""

    def __init__(self, top: dict[str, float] = SEARCHING, shape: str = "vllm") -> None:
        self.top, self.shape = top, shape
        self.completions = {SEARCH: [" Hamlet author\n"], ANSWER: [" William", " Shakespeare", "\n", "Question:"]}
        self.failures: list[Any] = []
        """What the next requests get instead of an answer: an exception class, a status, or a Response."""
        self.requests: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        assert request.url.path == "/v1/completions"
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, type):
                raise failure("simulated", request=request)
            return failure if isinstance(failure, httpx.Response) else httpx.Response(failure, json={"error": "busy"})
        if body.get("stream"):
            prefix = SEARCH if body["prompt"].endswith(SEARCH) else ANSWER
            return httpx.Response(200, content=sse(*self.completions[prefix]))
        return httpx.Response(200, json=self.decision())

    def decision(self) -> dict[str, Any]:
        """A one-token completion with the first token's top log-probabilities, in the server's shape."""
        best = max(self.top, key=self.top.__getitem__)
        if self.shape == "vllm":
            logprobs: Any = {"tokens": [best], "token_logprobs": [self.top[best]], "top_logprobs": [self.top]}
        else:  # llama.cpp server
            top = [
                {"id": i, "token": t, "bytes": list(t.encode()), "logprob": lp}
                for i, (t, lp) in enumerate(self.top.items())
            ]
            logprobs = {"content": [{"id": 0, "token": best, "logprob": self.top[best], "top_logprobs": top}]}
        choice = {"index": 0, "text": best, "logprobs": logprobs, "finish_reason": "length"}
        return {"id": "cmpl-1", "object": "text_completion", "model": "smartrag", "choices": [choice],
                "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}}  # fmt: skip


def endpoint(server: FakeServer, **kwargs: Any) -> SmartRAGEndpointPolicy:
    """The policy on the fake server, retrying at once (no backoff) unless told otherwise."""
    transport = httpx.MockTransport(server.handle)
    return SmartRAGEndpointPolicy(
        URL,
        "smartrag",
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **{"backoff": 0.0, **kwargs},
    )


# the graph on a served policy --------------------------------------------------------------------------------


def test_invoke_searches_rewrites_retrieves_and_answers_through_the_server(retriever):
    server = FakeServer(SEARCHING)
    out = create_smartrag_graph(endpoint(server), retriever).invoke({"question": "Who wrote Hamlet?"})
    assert out["search_probabilities"] == [pytest.approx(P_SEARCHING)]
    assert out["queries"] == ["Hamlet author"] and out["documents"][0].metadata["title"] == "Hamlet"
    assert out["answer"] == "William Shakespeare" and out["well_formed"] and out["errors"] == []
    decide, rewrite, answer = server.requests
    assert decide["prompt"] == render_prompt("Who wrote Hamlet?") + "[" and decide["max_tokens"] == 1
    assert decide["logprobs"] == 20 and decide["model"] == "smartrag"
    assert rewrite["prompt"] == render_prompt("Who wrote Hamlet?") + SEARCH and rewrite["stream"] is True
    assert answer["prompt"] == render_prompt("Who wrote Hamlet?", out["documents"]) + ANSWER
    assert answer["temperature"] == 0.0 and answer["max_tokens"] == 32


def test_an_answering_policy_never_searches(retriever):
    server = FakeServer(ANSWERING, shape="llama.cpp")
    out = create_smartrag_graph(endpoint(server), retriever).invoke({"question": "What is the capital of France?"})
    assert out["retrievals"] == 0 and out["search_probabilities"][0] == pytest.approx(P_ANSWERING)
    assert out["answer"] == "William Shakespeare" and len(server.requests) == 2


def test_batch_ainvoke_and_stream_run_on_the_server(retriever):
    graph = create_smartrag_graph(endpoint(FakeServer()), retriever)
    questions = [{"question": q} for q in ("Who wrote Hamlet?", "Where is Paris?", "When did Apollo 11 land?")]
    assert [out["answer"] for out in graph.batch(questions)] == ["William Shakespeare"] * 3
    assert graph.config["max_concurrency"] == 64  # requests in flight, the server batches them

    async def both() -> list[dict[str, Any]]:
        return [await graph.ainvoke(questions[0]), *(await graph.abatch(questions))]

    assert [out["answer"] for out in asyncio.run(both())] == ["William Shakespeare"] * 4

    chunks = [
        (chunk.content, meta["langgraph_node"])
        for chunk, meta in graph.stream(questions[0], stream_mode="messages")
        if isinstance(chunk, AIMessageChunk) and chunk.content
    ]
    assert [text for text, node in chunks if node == "rewrite"] == ["Hamlet author"]  # one event, one chunk
    assert [text for text, node in chunks if node == "answer"] == ["William", " Shakespeare"]


def test_an_adapter_is_the_request_model_and_the_traced_name(retriever):
    server = FakeServer()
    policy = endpoint(server, adapter="smartrag-lora")
    create_smartrag_graph(policy, retriever).invoke({"question": "Who wrote Hamlet?"})
    assert {request["model"] for request in server.requests} == {"smartrag-lora"}
    assert policy.model_name == "smartrag+smartrag-lora" and policy.gate is None


def test_with_a_tokenizer_the_prompt_goes_through_its_chat_template(tiny_tokenizer):
    server = FakeServer()
    policy = endpoint(server, tokenizer=tiny_tokenizer)
    prompt = policy.prompt("Who wrote Hamlet?")
    assert prompt == render_prompt("Who wrote Hamlet?", (), tiny_tokenizer) != render_prompt("Who wrote Hamlet?")
    assert policy.shared == "["  # "[Search]" and "[Answer]" share their first token, "["
    (decision,) = policy.decide([prompt])
    assert server.requests[-1]["prompt"] == prompt + "[" and decision.p_search == pytest.approx(sigmoid(-0.1 + 2.4))
    (generation,) = policy.generate([prompt], ANSWER)
    assert generation.token_ids == policy.encode(" William Shakespeare\n")  # what the server wrote, up to the newline
    assert generation.prompt_tokens == len(policy.encode(prompt + ANSWER))  # read before the usage event came


# the decision from top log-probabilities ---------------------------------------------------------------------


def test_both_action_words_in_the_top_k_give_the_local_formula():
    search, answer, outside = action_logprobs(SEARCHING, "[")
    assert search == pytest.approx(math.log(math.exp(-0.1) + math.exp(-6.0)))  # "Search" and "S" both begin it
    assert answer == -2.4 and outside == []


def test_with_the_tokenizer_each_word_scores_its_own_next_token_as_in_process():
    search, answer, outside = action_logprobs(SEARCHING, "[", ("Search", "Answer"))
    assert (search, answer, outside) == (pytest.approx(-0.1), -2.4, [])  # "S" is not the token "[Search]" is made of


def test_the_policy_reads_each_words_next_token_off_its_tokenizer(tiny_tokenizer):
    policy = endpoint(FakeServer(SEARCHING), tokenizer=tiny_tokenizer)
    ids = tiny_tokenizer(policy.shared + policy.words[0], add_special_tokens=False).input_ids
    assert SEARCH.startswith(policy.shared + policy.words[0]) and ANSWER.startswith(policy.shared + policy.words[1])
    assert ids == tiny_tokenizer(SEARCH, add_special_tokens=False).input_ids[: len(ids)]


def test_a_word_outside_the_top_k_takes_the_lowest_returned_logprob_and_is_named():
    top = {"Search": -0.01, "Se": -5.0, "\n": -8.0}
    search, answer, outside = action_logprobs(top, "[")
    assert answer == -8.0 and outside == [ANSWER]
    assert sigmoid(search - answer) > 0.999


def test_a_token_both_words_begin_with_counts_for_neither():
    """With no shared leading token (a tokenizer whose "[Search" is one token), "[" says nothing of the choice."""
    search, answer, outside = action_logprobs({"[": -0.01, "[Search": -5.0, "[Answer": -6.0}, "")
    assert (search, answer, outside) == (-5.0, -6.0, [])


def test_a_word_outside_the_top_k_is_named_in_the_traced_decision(retriever):
    class Ends(BaseCallbackHandler):
        metadata: ClassVar[list[dict[str, Any]]] = []

        def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
            self.metadata.append(response.generations[0][0].message.response_metadata)

    server = FakeServer({"Search": -0.01, "Se": -5.0, "\n": -8.0})
    create_smartrag_graph(endpoint(server), retriever).invoke({"question": "Hamlet?"}, {"callbacks": [Ends()]})
    decide = Ends.metadata[0]
    assert decide["outside_top_k"] == [ANSWER] and decide["model_name"] == "smartrag"


def test_both_words_outside_the_top_k_are_recorded_as_an_error(retriever):
    server = FakeServer({"The": -0.5, "It": -1.0})
    out = create_smartrag_graph(endpoint(server), retriever).invoke({"question": "Who wrote Hamlet?"})
    assert out["search_probabilities"] == [0.5]
    assert any("neither [Search] nor [Answer]" in error for error in out["errors"])


def test_the_top_logprobs_of_both_server_shapes_are_read_alike():
    vllm, llama = FakeServer(SEARCHING).decision(), FakeServer(SEARCHING, shape="llama.cpp").decision()
    assert first_top_logprobs(vllm["choices"][0]) == first_top_logprobs(llama["choices"][0]) == SEARCHING
    assert first_top_logprobs({"text": "[", "logprobs": None}) is None


# a server that fails -----------------------------------------------------------------------------------------


def test_a_server_that_is_down_is_one_line_naming_it():
    server = FakeServer()
    server.failures = [httpx.ConnectError] * 3
    with pytest.raises(PolicyError, match=r"^the policy server at http://policy.test:8000/v1/completions is unreach"):
        endpoint(server).decide(["Q"])
    assert len(server.requests) == 3  # 1 + max_retries


def test_a_server_down_through_the_episode_records_decide_and_rewrite_and_raises_at_the_answer(retriever):
    server = FakeServer()
    server.failures = [httpx.ConnectError] * 100
    graph = create_smartrag_graph(endpoint(server, max_retries=0), retriever)
    with pytest.raises(PolicyError, match="unreachable") as raised:
        graph.invoke({"question": "Who wrote Hamlet?"})
    assert "\n" not in str(raised.value)
    assert len(server.requests) == 3  # decide, rewrite, answer: one try each


def test_a_server_without_logprobs_is_recorded_and_the_episode_searches_and_answers(retriever):
    server = FakeServer()
    no_logprobs = {"choices": [{"index": 0, "text": "[", "logprobs": None, "finish_reason": "length"}]}
    server.failures = [httpx.Response(200, json=no_logprobs)]
    out = create_smartrag_graph(endpoint(server), retriever).invoke({"question": "Who wrote Hamlet?"})
    (error,) = out["errors"]
    assert error.startswith("decide: the policy server at") and "no top logprobs" in error
    assert error.endswith("searched without a decision")
    assert out["retrievals"] == 1 and out["search_probabilities"] == []
    assert out["answer"] == "William Shakespeare"


def test_a_500_is_retried_and_the_second_try_answers():
    server = FakeServer()
    server.failures = [500]
    (decision,) = endpoint(server).decide(["Q"])
    assert decision.p_search == pytest.approx(P_SEARCHING) and len(server.requests) == 2


def test_malformed_json_and_an_unknown_model_are_errors_that_say_so():
    server = FakeServer()
    server.failures = [httpx.Response(200, text="<html>not an API</html>")]
    with pytest.raises(PolicyError, match="returned malformed JSON"):
        endpoint(server).decide(["Q"])
    server.failures = [httpx.Response(404, json={"error": {"message": "The model `nope` does not exist."}})]
    with pytest.raises(PolicyError, match=r"answered 404 \(The model `nope` does not exist.\).*--lora-modules"):
        endpoint(server, adapter="nope").decide(["Q"])
    assert len(server.requests) == 2  # neither is retried


def test_a_timeout_is_retried_then_an_error_naming_the_wait():
    server = FakeServer()
    server.failures = [httpx.ReadTimeout] * 2
    with pytest.raises(PolicyError, match=r"gave no answer within 0.5 s \(2 tries\)"):
        endpoint(server, timeout=0.5, max_retries=1).decide(["Q"])


def test_a_prompt_over_the_context_is_refused_with_what_to_do():
    server = FakeServer()
    message = "This model's maximum context length is 2048 tokens. However, you requested 5000 tokens."
    server.failures = [httpx.Response(400, json={"error": {"message": message}})]
    with pytest.raises(PolicyError, match=r"refused the request \(400: .*shorten the prompt or serve a longer context"):
        endpoint(server).decide(["Q"])


def test_a_dropped_stream_is_retried_without_repeating_streamed_text():
    server = FakeServer()

    def dropped() -> Iterator[bytes]:
        yield sse(" William")[: sse(" William").index(b'data: {"id": "cmpl-1", "choices": []')]
        raise httpx.ReadError("connection reset")

    server.failures = [httpx.Response(200, content=dropped())]
    seen: list[str] = []
    (generation,) = endpoint(server).generate(["Q"], ANSWER, on_token=lambda row, text: seen.append(text))
    assert generation.text == "William Shakespeare" and generation.finished
    assert seen == ["William", " Shakespeare"] and len(server.requests) == 2


async def test_async_generation_retries_and_reads_until_the_newline():
    server = FakeServer()
    server.failures = [503]
    seen: list[str] = []
    (generation,) = await endpoint(server).agenerate(["Q"], ANSWER, on_token=lambda row, text: seen.append(text))
    assert generation.text == "William Shakespeare" and seen == ["William", " Shakespeare"]
    assert len(server.requests) == 2


# the policy protocol -------------------------------------------------------------------------------------------


def test_both_policies_satisfy_the_protocol(policy):
    assert isinstance(policy, SmartRAGPolicy) and isinstance(policy, PolicyLike)
    assert isinstance(endpoint(FakeServer()), PolicyLike)


def test_a_graph_refuses_an_object_that_is_not_a_policy_naming_what_it_lacks(retriever):
    class HalfAPolicy:
        model_name, max_new_tokens = "half", 8

        def prompt(self, question: str) -> str:
            return question

    with pytest.raises(TypeError, match=r"policy \(HalfAPolicy\) lacks max_batch_size, preview, gate, encode, decide"):
        create_smartrag_graph(HalfAPolicy(), retriever)
