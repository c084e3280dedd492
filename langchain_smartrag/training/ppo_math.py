"""PPO's arithmetic on tensors: advantages, whitening, the clipped losses and the adaptive KL coefficient.

Pure functions of their inputs (no model, no graph), so each is checked on hand-computed cases. Tensors
are [rows, tokens] with a 0/1 `mask` marking real completion tokens; padding never enters a mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation along each row; returns (advantages, returns = advantages + values).

    A row is one episode's completion tokens, every segment in order, left-aligned: the value after a
    row's last token is 0 (the episode ends), so with gamma = lambda = 1 each token's advantage is the
    rest of the episode's reward minus its value, and the answer's reward reaches the search decision.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    width = rewards.shape[1]
    for t in reversed(range(width)):
        continues = mask[:, t + 1] if t + 1 < width else torch.zeros_like(running)
        next_value = values[:, t + 1] * continues if t + 1 < width else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * continues * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def whiten(
    values: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None
) -> torch.Tensor:
    """(values - mean) / std over the masked entries (mean and var may come from all processes)."""
    mean = masked_mean(values, mask) if mean is None else mean
    var = masked_mean((values - mean) ** 2, mask) if var is None else var
    return (values - mean) * torch.rsqrt(var + 1e-8) * mask


def paired_decision_advantages(
    return_search: torch.Tensor, return_answer: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first decision's advantage on each branch of a question rolled out both ways (search / answer first).

    Each branch's return minus the pair's mean (RLOO / GRPO with a group of two, one per action):
    +-(Q_s - Q_n) / 2. On the decision's logit the surrogate's gradient is then (Q_s - Q_n) / 2 whatever
    P(search) is, where the exact gradient, p (1 - p) (Q_s - Q_n), fades as the decision gets sure of itself.
    """
    gap = (return_search - return_answer) / 2
    return gap, -gap


def two_action_kl(
    search: torch.Tensor, answer: torch.Tensor, ref_search: torch.Tensor, ref_answer: torch.Tensor
) -> torch.Tensor:
    """KL(policy || reference) of the search-or-answer decision, from each model's log-probs of the two action
    words: P(search) = P(S) / (P(S) + P(A)), as the graph decides. What a paired run logs for its forced decisions,
    whose per-token log-ratios are not samples of the policy and so not a KL estimate (their sum can be negative)."""
    log_p = torch.nn.functional.logsigmoid(torch.stack([search - answer, answer - search]))
    log_ref = torch.nn.functional.logsigmoid(torch.stack([ref_search - ref_answer, ref_answer - ref_search]))
    return (log_p.exp() * (log_p - log_ref)).sum(0)


def squared_log_ratio(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """0.5 (log pi - log pi_ref)^2 summed over masked tokens: Schulman's k2 estimate of KL(pi || pi_ref) where the
    tokens were sampled, and for forced ones (a paired decision's action words) a pull of each one's log-prob
    back to the reference's. Zero, with a zero gradient, where the two agree."""
    return (0.5 * (logprobs - ref_logprobs) ** 2 * mask).sum()


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The PPO-clip objective, summed over masked tokens: max(-A r, -A clip(r, 1 - c, 1 + c)).

    Returns (loss sum, number of clipped tokens). Sums, not means: the caller divides by the tokens of
    the whole minibatch, so micro-batches and processes add up to one batch.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    return (torch.maximum(unclipped, clipped) * mask).sum(), ((clipped > unclipped).float() * mask).sum()


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> torch.Tensor:
    """The clipped value loss, summed over masked tokens: 0.5 max((v - R)^2, (clip(v, v_old +- c) - R)^2)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return (0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2) * mask).sum()


@dataclass
class AdaptiveKL:
    """Ziegler et al.'s controller: nudges the KL coefficient so the per-episode KL tracks `target`.

    coef *= 1 + clip(KL / target - 1, -0.2, 0.2) * episodes / horizon
    """

    coef: float
    target: float | None
    horizon: float = 1000.0

    def update(self, kl: float, episodes: int) -> None:
        if self.target is None:  # fixed coefficient
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * episodes / self.horizon
