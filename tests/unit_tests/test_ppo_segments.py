"""PPO's inputs, from rollouts of tiny policies: segments and their token rewards, the masks and log-probs the update
recomputes, the value loss's gradient; and the question schedule and config checks that need no training run."""

import pytest
import torch

from langchain_smartrag import ANSWER, SEARCH, DecisionGate, create_smartrag_graph
from langchain_smartrag.scoring import answer_reward
from langchain_smartrag.training import QAExample, sample
from langchain_smartrag.training.actor_critic import ActorCritic, trainable_policy
from langchain_smartrag.training.ppo import minibatch_loss
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.questions import covered, hold_out, iteration_examples, load_questions, validation_seed
from langchain_smartrag.training.segment_batches import batch_inputs, token_logprobs
from langchain_smartrag.training.segments import episode_segments, rollout_segments
from langchain_smartrag.training.trajectories import RolloutContext, collect

# -- segments and masks -------------------------------------------------------------------------------

EXAMPLES = [
    QAExample("h", "Who wrote Hamlet?", ["William Shakespeare"]),
    QAExample("p", "Capital of France?", ["Paris"]),
]


def test_a_search_episode_is_two_segments_whose_rewards_add_up_to_the_episode_reward(searching_policy, retriever):
    (episode, _) = collect(create_smartrag_graph(searching_policy, retriever), EXAMPLES, progress=False)
    decide, rewrite, answer = episode["trace"]
    first, second = episode_segments(episode, 0, searching_policy.encode, alpha=0.3)
    assert first.prompt_ids == searching_policy.encode(decide["prompt"])
    assert first.completion_ids == searching_policy.encode(SEARCH) + rewrite["token_ids"]  # the choice, then the query
    assert first.scores == [0.0] * (len(first.completion_ids) - 1) + [-0.3]
    assert first.decision_tokens == len(searching_policy.encode(SEARCH)) and second.decision_tokens == 0
    # the quota forced "[Answer]": it is prompt, not a choice
    assert second.prompt_ids == searching_policy.encode(answer["prompt"]) + searching_policy.encode(ANSWER)
    assert second.completion_ids == answer["token_ids"]
    total = sum(first.scores) + sum(second.scores)
    assert total == pytest.approx(
        answer_reward(episode["answer"], episode["golds"], well_formed=episode["well_formed"]) - 0.3
    )


def test_with_a_quota_of_two_each_search_is_a_segment_that_pays_its_cost(searching_policy, retriever):
    graph = create_smartrag_graph(searching_policy, retriever, max_retrievals=2)
    (episode, _) = collect(graph, EXAMPLES, progress=False)
    segments = episode_segments(episode, 0, searching_policy.encode, alpha=0.2)
    assert [s["node"] for s in episode["trace"]] == ["decide", "rewrite", "decide", "rewrite", "answer"]
    assert [s.scores[-1] for s in segments[:2]] == pytest.approx([-0.2, -0.2]) and len(segments) == 3
    assert sum(sum(s.scores) for s in segments) == pytest.approx(episode["reward"])


def test_an_answer_episode_is_one_segment_that_carries_its_reward(answering_policy, retriever):
    episodes = collect(create_smartrag_graph(answering_policy, retriever), EXAMPLES, progress=False)
    segments = rollout_segments(episodes, answering_policy.encode)
    assert [s.episode for s in segments] == [0, 1]
    for segment, episode in zip(segments, episodes, strict=True):
        assert segment.completion_ids == answering_policy.encode(ANSWER) + episode["trace"][1]["token_ids"]
        assert sum(segment.scores) == pytest.approx(episode["reward"]) and segment.scores[-1] == episode["reward"]


def test_an_action_word_a_gate_chose_is_prompt_not_a_choice(answering_policy, retriever, monkeypatch):
    always = DecisionGate(["top_score"], [0.0], [1.0], [0.0], bias=50.0)  # a gate that always searches
    monkeypatch.setattr(answering_policy, "gate", always)
    (episode, _) = collect(create_smartrag_graph(answering_policy, retriever), EXAMPLES, progress=False)
    decide, rewrite, _answer = episode["trace"]
    assert decide["decider"] == "gate" and decide["text"] == SEARCH  # the policy itself would have answered
    first = episode_segments(episode, 0, answering_policy.encode, alpha=0.3)[0]
    assert first.prompt_ids == answering_policy.encode(decide["prompt"]) + answering_policy.encode(SEARCH)
    assert first.completion_ids == rewrite["token_ids"] and first.decision_tokens == 0


def test_a_failed_episode_has_no_segments():
    assert episode_segments({"answer": "", "golds": ["x"], "well_formed": False}, 0, lambda text: [1]) == []


def test_the_training_forward_reproduces_the_rollouts_logprobs_on_the_completion_only(tiny_model_dir, retriever):
    policy = trainable_policy(PPOConfig(base_model=str(tiny_model_dir), bf16=False, lora_r=4))
    episodes = collect(create_smartrag_graph(policy, retriever), EXAMPLES * 3, progress=False)
    segments = rollout_segments(episodes, policy.encode)
    recorded = []
    for episode in episodes:
        trace = episode["trace"]
        if trace[0]["text"] == SEARCH:
            recorded += [trace[0]["logprobs"] + trace[1]["logprobs"], trace[2]["logprobs"]]
        else:
            recorded += [trace[0]["logprobs"] + trace[1]["logprobs"]]
    value_head = torch.nn.Linear(policy.model.config.hidden_size, 1)
    input_ids, attention_mask, width, targets, mask = batch_inputs(
        segments, range(len(segments)), 0, torch.device("cpu")
    )
    with torch.no_grad():
        logits, values = ActorCritic(policy.model, value_head)(input_ids, attention_mask, width)
    logprobs = token_logprobs(logits, targets)
    for row, (segment, expected) in enumerate(zip(segments, recorded, strict=True)):
        n = len(segment.completion_ids)
        assert mask[row].tolist() == [0.0] * (width - n) + [1.0] * n
        assert logprobs[row, width - n :].tolist() == pytest.approx(expected, abs=1e-4)
    assert values.shape == mask.shape


def test_at_a_temperature_the_update_scores_text_as_it_was_sampled(tiny_model_dir, retriever):
    policy = trainable_policy(PPOConfig(base_model=str(tiny_model_dir), bf16=False, lora_r=4))
    graph = create_smartrag_graph(policy, retriever, threshold=0.0)
    episodes = collect(graph, EXAMPLES, progress=False, context=RolloutContext(temperature=0.5))
    answers = [
        s
        for s in rollout_segments(episodes, policy.encode)
        if s.prompt_ids[-len(policy.encode(ANSWER)) :] == policy.encode(ANSWER)
    ]  # the forced answers after a search: every token sampled at 0.5
    assert answers
    input_ids, attention_mask, width, targets, _ = batch_inputs(answers, range(len(answers)), 0, torch.device("cpu"))
    with torch.no_grad():
        logits, _ = ActorCritic(policy.model, torch.nn.Linear(policy.model.config.hidden_size, 1), 0.5)(
            input_ids, attention_mask, width
        )
    logprobs = token_logprobs(logits, targets)
    for row, (segment, episode) in enumerate(zip(answers, [e for e in episodes if e["retrievals"]], strict=True)):
        n = len(segment.completion_ids)
        assert logprobs[row, width - n :].tolist() == pytest.approx(episode["trace"][-1]["logprobs"], abs=1e-4)


@pytest.mark.parametrize("warmup", [False, True])
def test_the_value_loss_trains_the_shared_body_except_in_the_value_warm_up(warmup, tiny_model_dir, retriever):
    config = PPOConfig(base_model=str(tiny_model_dir), bf16=False, lora_r=4)
    policy = trainable_policy(config)
    segments = rollout_segments(
        collect(create_smartrag_graph(policy, retriever), EXAMPLES, progress=False), policy.encode
    )
    learner = ActorCritic(policy.model, torch.nn.Linear(policy.model.config.hidden_size, 1))
    rows = range(len(segments))
    zeros, ones = ([torch.full((len(s.completion_ids),), v) for s in segments] for v in (0.0, 1.0))
    # zero advantages: only the value loss (values 0, returns 1) has a gradient
    loss, _, _ = minibatch_loss(
        learner, segments, rows, 0, torch.device("cpu"), False, zeros, zeros, zeros, ones, config, warmup=warmup
    )
    loss.backward()
    lora_grads = [p.grad for name, p in policy.model.named_parameters() if "lora_B" in name and p.requires_grad]
    moved = any(g is not None and g.abs().sum() > 0 for g in lora_grads)
    assert moved == (not warmup) and learner.value_head.weight.grad.abs().sum() > 0


# -- the question schedule and the config ------------------------------------------------------------


def test_data_sets_take_equal_turns_and_only_covered_questions_train():
    sets = load_questions(None, ["popqa", "hotpotqa"], "train", covered_only=True)
    assert all(covered(e) for s in sets for e in s) and len(sets[0]) < 5000 and len(sets[1]) < 5000
    popqa, hotpotqa = load_questions(None, ["popqa", "hotpotqa"], "train", covered_only=["hotpotqa"])
    assert len(popqa) == 5000 and hotpotqa == sets[1]  # all of PopQA, covered HotpotQA
    first, again = (iteration_examples(sets, 3, 10, seed=0) for _ in range(2))
    assert first == again and [e.id.split("-")[0] for e in first] == ["popqa", "hotpotqa"] * 5
    assert not {e.id for e in first} & {e.id for e in iteration_examples(sets, 4, 10, seed=0)}


def test_a_validation_seed_holds_out_questions_apart_from_a_warm_up_drawn_with_the_run_seed():
    questions = [QAExample(f"q{i}", f"Question {i}?", ["a"]) for i in range(200)]
    warmup = {e.id for e in sample(questions, 50, seed=0)}  # what `smartrag train warmup --seed 0` draws from
    same = hold_out([questions], 10, validation_seed(PPOConfig(seed=0)))[1]
    apart = hold_out([questions], 10, validation_seed(PPOConfig(seed=0, validation_seed=1)))[1]
    assert all(e.id in warmup for e in same)  # the same shuffle: the warm-up's questions are the validation's
    assert sum(e.id in warmup for e in apart) <= 5


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"paired_decisions": True, "episodes_per_iteration": 5}, ValueError, "must be even with paired_decisions"),
        ({"paired_decisions": True, "max_retrievals": 0}, ValueError, "paired_decisions needs max_retrievals >= 1"),
        ({"covered_only": "hotpotqa"}, TypeError, "covered_only must be true/false or a list of data sets"),
    ],
)
def test_the_config_refuses_settings_that_cannot_run_when_it_is_made(values, error, message):
    with pytest.raises(error, match=message):
        PPOConfig(**values)
