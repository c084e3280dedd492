"""Trajectories come from the same graph in sampling mode, record every policy call, and round-trip as JSONL."""

import pytest

from langchain_smartrag import ANSWER, SEARCH, SmartRAGContext, create_smartrag_graph
from langchain_smartrag.training import QAExample
from langchain_smartrag.training.trajectories import (
    RolloutContext,
    collect,
    load_episodes,
    rollout_context,
    save_episodes,
)

EXAMPLES = [
    QAExample("h", "Who wrote Hamlet?", ["William Shakespeare"]),
    QAExample("p", "Capital of France?", ["Paris"]),
]


def test_a_searching_episode_records_decide_rewrite_and_answer(searching_policy, retriever):
    (episode, _) = collect(create_smartrag_graph(searching_policy, retriever), EXAMPLES, progress=False)
    assert [s["node"] for s in episode["trace"]] == ["decide", "rewrite", "answer"]
    decide, rewrite, answer = episode["trace"]
    assert decide["text"] == SEARCH and decide["token_ids"] == searching_policy.encode(SEARCH)
    assert decide["logprobs"] == pytest.approx(
        searching_policy.decide_batch([decide["prompt"]])[0].search_logprobs, abs=1e-4
    )
    assert (rewrite["prefix"], answer["prefix"]) == (SEARCH, ANSWER) and "Observation:" not in rewrite["prompt"]
    for segment in (rewrite, answer):
        assert len(segment["logprobs"]) == len(segment["token_ids"]) > 0
    assert episode["retrievals"] == 1 and episode["reward"] == pytest.approx(
        episode["em"] + episode["f1"] - 0.2 if episode["well_formed"] else -1.2
    )


def test_sampled_decisions_follow_p_search(answering_policy, retriever):
    episodes = collect(create_smartrag_graph(answering_policy, retriever), EXAMPLES * 5, progress=False)
    assert all(e["retrievals"] == 0 and [s["node"] for s in e["trace"]] == ["decide", "answer"] for e in episodes)


@pytest.mark.parametrize(("field", "value"), [("temperature", 0), ("temperature", -1), ("sample", "yes")])
def test_a_bad_rollout_setting_is_a_value_error_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        RolloutContext(**{field: value})


def test_a_rollout_context_keeps_the_public_settings_it_is_built_from():
    context = rollout_context(SmartRAGContext(threshold=0.3, max_retrievals=2), sample=True, record=True)
    assert (context.threshold, context.max_retrievals, context.sample, context.record) == (0.3, 2, True, True)


@pytest.mark.parametrize(("threshold", "searched"), [(0.0, True), (1.01, False)])
def test_a_decision_taken_at_the_threshold_still_samples_the_text(policy, retriever, threshold, searched):
    """Paired PPO rollouts: the first decision forced either way, everything the policy writes sampled."""
    graph = create_smartrag_graph(policy, retriever)
    context = RolloutContext(sample_decision=False, threshold=threshold)
    runs = [collect(graph, EXAMPLES * 3, seed=s, context=context, progress=False) for s in (0, 1)]
    assert all((e["retrievals"] > 0) == searched for run in runs for e in run)
    assert [e["trace"][-1]["token_ids"] for e in runs[0]] != [e["trace"][-1]["token_ids"] for e in runs[1]]


def test_sampling_varies_the_text_and_a_seed_repeats_it(policy, retriever):
    graph = create_smartrag_graph(policy, retriever)
    runs = [collect(graph, EXAMPLES, seed=s, progress=False, batch_size=1) for s in (0, 0, 1)]
    answers = [[e["trace"][-1]["token_ids"] for e in run] for run in runs]
    assert answers[0] == answers[1] and answers[0] != answers[2]


def test_a_seeded_rollout_repeats_whatever_the_batching(policy, retriever):
    graph = create_smartrag_graph(policy, retriever)
    one_by_one, together = (collect(graph, EXAMPLES * 3, seed=5, batch_size=b, progress=False) for b in (1, 6))

    def choices(episodes):  # every sampled decision and token (log-probs differ in the last float bits)
        return [[(step["node"], step["text"], step["token_ids"]) for step in e["trace"]] for e in episodes]

    assert choices(one_by_one) == choices(together)


def test_episodes_round_trip_as_jsonl(searching_policy, retriever, tmp_path):
    episodes = collect(create_smartrag_graph(searching_policy, retriever), EXAMPLES, progress=False)
    save_episodes(episodes, tmp_path / "episodes.jsonl")
    assert load_episodes(tmp_path / "episodes.jsonl") == episodes
