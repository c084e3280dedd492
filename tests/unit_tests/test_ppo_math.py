"""PPO's arithmetic on hand-computed cases: GAE, whitening, paired-decision advantages, the decision's KL, the
clipped losses and the adaptive KL coefficient."""

import math

import pytest
import torch

from langchain_smartrag.training.paired_decisions import decision_kls
from langchain_smartrag.training.ppo_math import (
    AdaptiveKL,
    gae,
    paired_decision_advantages,
    policy_loss,
    squared_log_ratio,
    two_action_kl,
    value_loss,
    whiten,
)
from langchain_smartrag.training.segments import Segment


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    advantages, returns = gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.2, 0.4]]), torch.ones(1, 3))
    assert returns[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert advantages[0].tolist() == pytest.approx([0.5, 0.8, 0.6])


def test_gae_stops_at_the_end_of_each_row_and_ignores_padding():
    advantages, returns = gae(
        torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([[1.0, 1.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    )
    assert returns[0].tolist() == pytest.approx([2.0, 2.0, 0.0])
    assert advantages[0].tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_gae_discounts_by_gamma_and_lambda():
    # delta_1 = 1 - 2 = -1; delta_0 = 1 + 0.5 * 2 - 1 = 1; A_0 = 1 + 0.25 * (-1)
    advantages, returns = gae(
        torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 2.0]]), torch.ones(1, 2), gamma=0.5, lam=0.5
    )
    assert advantages[0].tolist() == pytest.approx([0.75, -1.0])
    assert returns[0].tolist() == pytest.approx([1.75, 1.0])


def test_whitening_uses_only_masked_entries():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    white = whiten(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), mask)
    assert white[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (white[0, :3] ** 2).mean().item() == pytest.approx(1.0, abs=1e-4) and white[0, 3] == 0


def test_paired_decision_advantages_are_each_branch_against_the_pairs_mean_and_never_fade():
    a_search, a_answer = paired_decision_advantages(torch.tensor(1.3), torch.tensor(-0.2))
    assert (a_search.item(), a_answer.item()) == (pytest.approx(0.75), pytest.approx(-0.75))
    for start in (-6.0, 0.0, 6.0):  # a decision with logit theta: P(search) = sigmoid(theta)
        theta = torch.tensor(start, requires_grad=True)
        (
            a_search * torch.nn.functional.logsigmoid(theta) + a_answer * torch.nn.functional.logsigmoid(-theta)
        ).backward()
        assert theta.grad.item() == pytest.approx(0.75)  # (Q_s - Q_n) / 2, even for a near-certain decision


def test_the_two_action_kl_is_the_kl_of_the_decision_the_graph_takes():
    log = torch.log
    # P(S), P(A) = 0.3, 0.1 -> P(search) 0.75; reference 0.2, 0.2 -> 0.5. Other tokens' mass does not count.
    kl = two_action_kl(log(torch.tensor(0.3)), log(torch.tensor(0.1)), log(torch.tensor(0.2)), log(torch.tensor(0.2)))
    assert kl.item() == pytest.approx(0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5))
    same = two_action_kl(log(torch.tensor(0.3)), log(torch.tensor(0.1)), log(torch.tensor(0.6)), log(torch.tensor(0.2)))
    assert same.item() == pytest.approx(0.0, abs=1e-7)  # same P(search), though both words' probabilities moved


def test_forced_decisions_are_charged_their_exact_kl_not_their_log_ratios():
    """Each branch's forced action word has a log-ratio of its own (here -0.69 and +0.41: their mean is negative);
    both episodes of the question get the decision's KL, which is never negative."""
    segments = [
        Segment(0, [1], [5, 6, 7], [0.0] * 3, decision_tokens=2),
        Segment(1, [1], [5, 8, 9], [0.0] * 3, decision_tokens=2),
    ]
    p_s, p_a, ref_s, ref_a = 0.2, 0.6, 0.4, 0.4
    logprobs = [torch.log(torch.tensor([1.0, p_s, 0.5])), torch.log(torch.tensor([1.0, p_a, 0.5]))]
    ref_logprobs = [torch.log(torch.tensor([1.0, ref_s, 0.9])), torch.log(torch.tensor([1.0, ref_a, 0.9]))]
    kls = decision_kls([(0, 1, torch.tensor(0.0), torch.tensor(0.0))], segments, [[0], [1]], logprobs, ref_logprobs)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kls == {0: pytest.approx(expected), 1: pytest.approx(expected)}


def test_the_squared_log_ratio_pulls_each_token_back_to_the_reference_and_ignores_the_rest():
    logprobs = torch.tensor([[-0.5, -1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0, -0.1]])
    penalty = squared_log_ratio(logprobs, ref, torch.tensor([[1.0, 1.0, 0.0]]))
    penalty.backward()
    assert penalty.item() == pytest.approx(0.5 * 0.5**2)  # the masked third token counts for nothing
    assert logprobs.grad.tolist() == [
        [pytest.approx(0.5), 0.0, 0.0]
    ]  # descent lowers the first, leaves the agreeing one


def test_the_clipped_policy_loss_takes_the_pessimistic_side():
    old = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.5, 1.5, 0.5]]))
    advantages = torch.tensor([[1.0, -1.0, 1.0]])
    # ratio 1.5, A=+1: clipped to 1.2 -> -1.2; ratio 1.5, A=-1: unclipped 1.5; ratio 0.5, A=+1: unclipped -0.5
    loss, clipped = policy_loss(logprobs, old, advantages, torch.ones(1, 3), clip=0.2)
    assert loss.item() == pytest.approx(-1.2 + 1.5 - 0.5) and clipped.item() == 1


def test_the_clipped_value_loss_takes_the_larger_error():
    values, old, returns = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    # row 0: (2 - 1)^2 = 1 beats (1.2 - 1)^2; row 1: (0.8 - 0)^2 = 0.64 beats 0
    assert value_loss(values, old, returns, torch.ones(1, 2), clip=0.2).item() == pytest.approx(0.5 * 1 + 0.5 * 0.64)


def test_the_kl_coefficient_moves_toward_its_target_by_at_most_20_percent_of_the_step():
    up, down, fixed = AdaptiveKL(0.1, 1.0, 100.0), AdaptiveKL(0.1, 1.0, 100.0), AdaptiveKL(0.1, None)
    up.update(kl=3.0, episodes=10)
    down.update(kl=0.5, episodes=10)
    fixed.update(kl=3.0, episodes=10)
    assert (up.coef, down.coef, fixed.coef) == pytest.approx((0.102, 0.098, 0.1))
