"""Tiny models and tokenizers built locally (no hub), a small real corpus, and policies with a forced decision."""

from __future__ import annotations

import os
from typing import ClassVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from langchain_smartrag import ANSWER, SEARCH, BM25Retriever, SmartRAGPolicy
from langchain_smartrag.training.tiny import tiny_model
from langchain_smartrag.training.tiny import tiny_tokenizer as build_tiny_tokenizer
from tests.toy_data import QA, WARMUP, write_jsonl

CORPUS = [
    {"id": "d1", "title": "Paris", "text": "Paris is the capital and largest city of France."},
    {"id": "d2", "title": "Hamlet", "text": "Hamlet is a tragedy written by William Shakespeare around 1600."},
    {"id": "d3", "title": "Vitamin C", "text": "Vitamin C, also known as ascorbic acid, is found in citrus fruit."},
    {"id": "d4", "title": "Apollo 11", "text": "Apollo 11 landed on the Moon in 1969; Neil Armstrong walked first."},
    {"id": "d5", "title": "Ada Lovelace", "text": "Ada Lovelace wrote the first published computer program in 1843."},
]


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in milliseconds on the protocol's own text and the toy corpus."""
    return build_tiny_tokenizer([f"{row['title']}: {row['text']}" for row in CORPUS])


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer, tmp_path_factory):
    """A saved tiny model + tokenizer: what `SmartRAGPolicy.from_pretrained` and `--policy` load."""
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_model(tiny_tokenizer).save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def qa_file(tmp_path):
    """Three toy questions as a QA JSONL file."""
    return write_jsonl(tmp_path / "qa.jsonl", QA)


@pytest.fixture
def sft_data(tmp_path):
    """Two toy warm-up rows, one per action, as a warm-up JSONL file."""
    return write_jsonl(tmp_path / "warmup.jsonl", WARMUP)


@pytest.fixture
def policy(tiny_tokenizer) -> SmartRAGPolicy:
    """A randomly initialised tiny policy: real forward passes, arbitrary outputs."""
    return SmartRAGPolicy(tiny_model(tiny_tokenizer), tiny_tokenizer, max_new_tokens=8, autocast=False)


def forced_policy(tokenizer: PreTrainedTokenizerFast, action: str) -> SmartRAGPolicy:
    """A tiny policy whose next-token distribution is the same everywhere and favours one action.

    The output layer's weights are zeroed and a bias boosts the tokens of `action` that the other
    action lacks, so P(search) is ~1 for SEARCH and ~0 for ANSWER whatever the prompt.
    """
    model = tiny_model(tokenizer)
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    model.lm_head = torch.nn.Linear(hidden, vocab, bias=True)
    torch.nn.init.zeros_(model.lm_head.weight)
    torch.nn.init.zeros_(model.lm_head.bias)
    favoured = tokenizer(action, add_special_tokens=False).input_ids
    other = tokenizer(ANSWER if action == SEARCH else SEARCH, add_special_tokens=False).input_ids
    with torch.no_grad():
        for token in set(favoured) - set(other):
            model.lm_head.bias[token] = 10.0
    return SmartRAGPolicy(model, tokenizer, max_new_tokens=6, autocast=False)


@pytest.fixture
def searching_policy(tiny_tokenizer) -> SmartRAGPolicy:
    return forced_policy(tiny_tokenizer, SEARCH)


@pytest.fixture
def answering_policy(tiny_tokenizer) -> SmartRAGPolicy:
    return forced_policy(tiny_tokenizer, ANSWER)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CORPUS))
    return path


@pytest.fixture
def retriever(corpus_file) -> BM25Retriever:
    return BM25Retriever.from_jsonl(corpus_file, k=2)


DUCKDUCKGO_HTML = """<html><body>
<div class="result results_links web-result"><div class="links_main links_deep result__body">
  <h2 class="result__title"><a class="result__a" href="https://en.wikipedia.org/wiki/Paris">Paris - Wikipedia</a></h2>
  <a class="result__snippet" href="https://en.wikipedia.org/wiki/Paris">Paris is the capital of France.</a>
</div></div>
<div class="result results_links web-result"><div class="links_main links_deep result__body">
  <h2 class="result__title"><a class="result__a" href="https://example.org/france">France facts</a></h2>
  <a class="result__snippet" href="https://example.org/france">France has 13 regions.</a>
</div></div>
<div class="result results_links web-result"><div class="links_main links_deep result__body">
  <h2 class="result__title"><a class="result__a" href="https://example.org/seine">The Seine</a></h2>
  <a class="result__snippet" href="https://example.org/seine">The Seine flows through Paris.</a>
</div></div>
<div class="result results_links web-result"><div class="links_main links_deep result__body">
  <h2 class="result__title"><a class="result__a" href="https://example.org/louvre">The Louvre</a></h2>
  <a class="result__snippet" href="https://example.org/louvre">The Louvre is a museum in Paris.</a>
</div></div>
</body></html>"""


class FakeResponse:
    def __init__(self, text, status_code=200):
        self.text, self.status_code, self.content = text, status_code, text.encode()


@pytest.fixture
def transport(monkeypatch):
    """Replace ddgs' HTTP client so the real ddgs engine parses a canned DuckDuckGo page."""
    from ddgs.exceptions import DDGSException
    from ddgs.http_client import HttpClient

    class FakeTransport:
        calls: ClassVar[list] = []
        fail = False
        page = DUCKDUCKGO_HTML
        """The page every search gets (an empty one: a search that finds nothing)."""

    def fake_request(self, method, url, **kwargs):
        FakeTransport.calls.append((method, url, kwargs))
        if FakeTransport.fail:
            raise DDGSException("network unreachable")
        return FakeResponse(FakeTransport.page)

    monkeypatch.setattr(HttpClient, "request", fake_request)
    return FakeTransport


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Closed-book facts and facts only the corpus holds, a tiny model that answers right but decides by a coin
    flip (`training.tiny_world`); PPO tests share it."""
    from langchain_smartrag.training.tiny_world import build_world

    return build_world(tmp_path_factory.mktemp("world"))
