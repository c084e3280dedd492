"""Your retriever in training: PPO trains against a vector store (LangChain's InMemoryVectorStore with a
deterministic fake embedding). In evaluation and the CLI: `tests/unit_tests/test_your_retriever.py`."""

import json

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_smartrag.training.ppo import train
from langchain_smartrag.training.tiny_world import world_config


def test_ppo_trains_against_a_vector_store_retriever(world, tmp_path):
    store = InMemoryVectorStore.from_texts(["Paris is the capital of France."], DeterministicFakeEmbedding(size=16))
    final = train(
        world_config(world, tmp_path / "run", iterations=1, episodes_per_iteration=4, rollout_batch_size=4),
        retriever=store.as_retriever(search_kwargs={"k": 1}),
    )
    rollouts = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert (final / "adapter_model.safetensors").exists() and rollouts
