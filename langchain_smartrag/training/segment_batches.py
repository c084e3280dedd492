"""Segments (`segments.py`) as tensors: left-padded forward passes grouped by length, per-segment token vectors
right-aligned into [rows, width] and back, and GAE run across each episode's segments.

A segment's completion tokens are the last columns of its row, so a [rows, width] tensor of per-token values
(log-probs, values, advantages) lines up with the logits `ActorCritic` returns for the last `width` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from langchain_smartrag.tensors import left_pad, length_chunks

from .ppo_math import gae
from .segments import Segment


def episode_rows(segments: Sequence[Segment], episodes: int) -> list[list[int]]:
    """Each episode's segment indices, in order (none for an episode that failed)."""
    by_episode: list[list[int]] = [[] for _ in range(episodes)]
    for i, segment in enumerate(segments):
        by_episode[segment.episode].append(i)
    return by_episode


def micro_batches(segments: Sequence[Segment], indices: Sequence[int], budget: int) -> list[list[int]]:
    """`indices` grouped by length into passes of about `budget` tokens (less padding, bounded memory)."""
    return length_chunks([len(s.prompt_ids) + len(s.completion_ids) for s in segments], indices, budget)


def right_align(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Per-segment token vectors as [rows, width], each ending at the last column (where its tokens are)."""
    out = torch.zeros((len(rows), width), device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, width - len(row) :] = row
    return out


def split_rows(values: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The inverse of `right_align`: each row's real tokens."""
    return [row[-int(m.sum()) :] for row, m in zip(values, mask, strict=True)]


def batch_inputs(segments: Sequence[Segment], rows: Sequence[int], pad_id: int, device: torch.device):
    """Input ids, attention mask, completion width, target token ids [B, width] and the completion mask."""
    chosen = [segments[i] for i in rows]
    input_ids, attention_mask = left_pad([s.prompt_ids + s.completion_ids for s in chosen], pad_id, device)
    width = max(len(s.completion_ids) for s in chosen)
    mask = right_align([torch.ones(len(s.completion_ids), device=device) for s in chosen], width)
    return input_ids, attention_mask, width, input_ids[:, -width:], mask


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]


def episode_advantages(
    by_episode: Sequence[Sequence[int]],
    rewards: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
    gamma: float,
    lam: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """GAE over each episode's completion tokens, its segments (indices in `by_episode`) in order; per segment."""
    if not rewards:
        return [], []
    episode_rows = [rows for rows in by_episode if rows]
    lengths = [[len(rewards[i]) for i in rows] for rows in episode_rows]
    width = max(sum(row) for row in lengths)
    device = rewards[0].device

    def left_aligned(per_segment: Sequence[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros((len(episode_rows), width), device=device)
        for e, rows in enumerate(episode_rows):
            flat = torch.cat([per_segment[i] for i in rows])
            out[e, : len(flat)] = flat
        return out

    mask = left_aligned([torch.ones_like(r) for r in rewards])
    advantages, returns = gae(left_aligned(rewards), left_aligned(values), mask, gamma, lam)
    out_advantages: list[torch.Tensor] = [torch.empty(0)] * len(rewards)
    out_returns = list(out_advantages)
    for e, rows in enumerate(episode_rows):
        offset = 0
        for i, n in zip(rows, lengths[e], strict=True):
            out_advantages[i], out_returns[i] = advantages[e, offset : offset + n], returns[e, offset : offset + n]
            offset += n
    return out_advantages, out_returns
