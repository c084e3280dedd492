"""Token batches as tensors: left padding, positions, and length-sorted chunks (shared by serving and training)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch


def left_pad(sequences: Sequence[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as one left-padded batch (every row ends at the last column) and its attention mask."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, width - len(seq) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def length_chunks(lengths: Sequence[int], rows: Iterable[int], budget: int | None) -> list[list[int]]:
    """`rows` sorted by length and grouped so each group, padded to its longest row, holds about `budget`
    tokens (None: one group). Less padding and bounded memory for the passes of the policy and of PPO."""
    chunks: list[list[int]] = []
    for row in sorted(rows, key=lambda i: lengths[i]):
        if not chunks or (len(chunks[-1]) + 1) * lengths[row] > (budget or float("inf")):
            chunks.append([])
        chunks[-1].append(row)
    return chunks


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of a left-padded batch: each row counts from 0 at its first real token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)
