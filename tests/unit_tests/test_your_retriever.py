"""Your retriever in evaluation: a vector store (here LangChain's InMemoryVectorStore with a deterministic fake
embedding) plugs into the CLI as `--retriever module:factory`. Into PPO from Python:
`tests/integration_tests/test_your_retriever_training.py`."""

import json
import textwrap

import pytest

from langchain_smartrag.cli import main
from langchain_smartrag.retrievers import build_retriever

FACTORY = """
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

def vector_store():
    texts = ["Paris is the capital of France.", "Hamlet was written by William Shakespeare."]
    store = InMemoryVectorStore.from_texts(texts, DeterministicFakeEmbedding(size=16))
    return store.as_retriever(search_kwargs={"k": 1})

def not_a_retriever():
    return "nope"
"""


def test_the_cli_takes_a_retriever_factory(tmp_path, tiny_model_dir, monkeypatch, capsys):
    (tmp_path / "my_factories.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(build_retriever("my_factories:vector_store")).__name__ == "VectorStoreRetriever"
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"id": 1, "question": "Who wrote Hamlet?", "answers": ["William Shakespeare"]}) + "\n")
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--data",
                str(data),
                "--policy",
                str(tiny_model_dir),
                "--retriever",
                "my_factories:vector_store",
                "--mode",
                "always-retrieve-question",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["records"][0]["retrievals"] == 1
    with pytest.raises(ValueError, match="not a LangChain BaseRetriever"):
        build_retriever("my_factories:not_a_retriever")
    with pytest.raises(SystemExit):
        main(["eval", "--data", str(data), "--retriever", "no_such_module:f", "--output", str(out)])
    assert "cannot import" in capsys.readouterr().err
