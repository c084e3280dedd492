"""The endpoint policy against a real inference server: llama-cpp-python's OpenAI-compatible server on a loopback
port, serving the embedded model's own GGUF as it ships, next to the in-process base policy (the same GGUF,
de-quantised to fp32) on the same questions; and the shipped LoRA adapter converted to a GGUF LoRA (llama.cpp's
`convert_lora_to_gguf.py`) on that server's `--lora_path`, next to the in-process shipped policy.

Runs only where `llama-cpp-python[server]` is installed (`make llama-server` builds it from source and caches the
wheel); skipped elsewhere, CI included (its build takes longer than the whole suite). The server computes with the
quantised weights, so P(search) may differ a little; the tolerance below is what was measured here, with margin.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]: make llama-server")

from langchain_smartrag import ANSWER, BM25Retriever, SmartRAGEndpointPolicy, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.cache import cache_dir
from langchain_smartrag.models import TRAINED_ADAPTER, embedded_gguf, embedded_model_dir
from langchain_smartrag.protocol import parse_action

ALIAS = "smollm2-135m-instruct"
QUESTIONS = [
    "Who wrote Hamlet?",
    "What is the capital of France?",
    "What is John Mayne's occupation?",
    "In what country is Normandy located?",
    "Who was the director of Titanic?",
    "What genre is the band Nirvana?",
    "Which university did the author of The Hobbit teach at?",
    "In which year did the Berlin Wall fall?",
]
MAX_GAP, MEAN_GAP = 0.2, 0.05
"""Largest and mean |P(search) served - P(search) in process| allowed. Measured on 40 PopQA and HotpotQA dev
questions (2026-12-07, x86_64): the base max 0.149, mean 0.024, the same action on all 40; the shipped adapter as a
GGUF LoRA max 0.115, mean 0.032, the same action on 39."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(log: Path, *extra: str) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port with the embedded GGUF (and `extra` flags); its URL."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()), "--model_alias", ALIAS]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--logits_all", "true"]
    command += ["--interrupt_requests", "false", *extra]  # else each new request cuts the running completion short
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)  # a pipe would fill
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def served_gaps(served: SmartRAGEndpointPolicy, local: SmartRAGPolicy) -> list[tuple[float, float]]:
    """(P(search) in process, P(search) served) on each question, after the same prompt."""
    here = local.search_probability([local.prompt(q) for q in QUESTIONS])
    there = served.search_probability([served.prompt(q) for q in QUESTIONS])
    return list(zip(here, there, strict=True))


def assert_same_decisions(pairs: list[tuple[float, float]]) -> None:
    gaps = [abs(a - b) for a, b in pairs]
    assert max(gaps) <= MAX_GAP and sum(gaps) / len(gaps) <= MEAN_GAP, pairs
    clear = [(a, b) for a, b in pairs if abs(a - 0.5) > MAX_GAP]
    assert all((a >= 0.5) == (b >= 0.5) for a, b in clear)  # the same action where the decision is clear


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with llama_server(tmp_path_factory.mktemp("llama-server") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def local():
    return SmartRAGPolicy.embedded(trained=False, autocast=False)


@pytest.fixture(scope="module")
def served(server_url, local):
    policy = SmartRAGEndpointPolicy(server_url, ALIAS, tokenizer=local.tokenizer, timeout=120)
    yield policy
    policy.close()


def test_the_server_sends_the_prompt_the_in_process_policy_builds(served, local):
    for question in QUESTIONS:
        assert served.prompt(question) == local.prompt(question)


def test_the_served_decision_is_the_in_process_decision_within_the_quantisation_tolerance(served, local):
    pairs = served_gaps(served, local)
    assert_same_decisions(pairs)
    assert any(abs(a - 0.5) > MAX_GAP for a, _ in pairs)  # some decisions are clear


def test_the_graph_on_the_server_answers_as_the_graph_in_process(served, local):
    retriever = BM25Retriever.bundled(k=4)
    on_server = create_smartrag_graph(served, retriever).batch([{"question": q} for q in QUESTIONS])
    in_process = create_smartrag_graph(local, retriever).batch([{"question": q} for q in QUESTIONS])
    for there in on_server:
        assert there["errors"] == [] and there["answer"]
        assert parse_action(f"[Answer] {there['answer']}").well_formed
    # greedy paths part where the quantised weights tip a token (measured: 6 of 8 queries, 5 of 8 answers the same);
    # a server that cut completions short (llama-cpp-python's default interrupt) matched none
    pairs = list(zip(on_server, in_process, strict=True))
    assert sum(a["queries"] == b["queries"] for a, b in pairs) >= len(QUESTIONS) // 2
    assert sum(a["answer"] == b["answer"] for a, b in pairs) >= len(QUESTIONS) // 2, [
        (a["answer"], b["answer"]) for a, b in pairs
    ]


CONVERTER = cache_dir() / "wheels" / "llama.cpp" / "convert_lora_to_gguf.py"
"""llama.cpp's LoRA converter, from the source `make llama-server` built the server from."""


@pytest.mark.skipif(not CONVERTER.exists(), reason="needs llama.cpp's converter: make llama-server")
def test_the_shipped_adapter_served_as_a_gguf_lora_decides_as_in_process(tmp_path):
    lora = tmp_path / "smartrag-lora.gguf"
    subprocess.run(
        [
            sys.executable,
            str(CONVERTER),
            "--base",
            str(embedded_model_dir()),
            "--outtype",
            "f16",
            "--outfile",
            str(lora),
        ]
        + [str(TRAINED_ADAPTER)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": f"{CONVERTER.parent / 'gguf-py'}{os.pathsep}{CONVERTER.parent}"},
    )
    shipped = SmartRAGPolicy.embedded(autocast=False)
    with llama_server(tmp_path / "server.log", "--lora_path", str(lora)) as url:
        served = SmartRAGEndpointPolicy(url, ALIAS, tokenizer=shipped.tokenizer, timeout=120)
        assert_same_decisions(served_gaps(served, shipped))
        answers = served.generate([served.prompt(q) for q in QUESTIONS], ANSWER)
        served.close()
    here = shipped.generate_batch([shipped.prompt(q) for q in QUESTIONS], ANSWER)
    assert sum(a.text.strip() == b.text.strip() for a, b in zip(answers, here, strict=True)) >= len(QUESTIONS) // 2
