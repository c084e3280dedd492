"""The retrieve-or-answer decision: its result, and both action prefixes scored on one prompt pass's cache."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Decision:
    """The retrieve-or-answer decision after one prompt: P(search) and each action prefix's token log-probs."""

    p_search: float
    search_logprobs: list[float]
    answer_logprobs: list[float]
    prompt_tokens: int = 0
    hidden: list[float] | None = None
    """The final hidden state at the decision position (what the LM head read): a decision gate's input."""
    outside_top_k: list[str] = field(default_factory=list)
    """The action words a served model's top log-probabilities left out: each was scored at the lowest returned
    log-probability, an upper bound on its own (`endpoint.action_logprobs`). Empty for a local policy."""

    @property
    def search_logit(self) -> float:
        """log P("[Search]") - log P("[Answer]"): P(search) before the sigmoid."""
        return sum(self.search_logprobs) - sum(self.answer_logprobs)


@contextlib.contextmanager
def head_inputs(model: Any) -> Iterator[list[torch.Tensor]]:
    """Collect, per model call, the last-position hidden state the LM head reads (the final layer, normed)."""
    seen: list[torch.Tensor] = []
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _module, args: seen.append(args[0][:, -1].float().cpu()))
    try:
        yield seen
    finally:
        handle.remove()


def score_actions(
    model: Any,
    branches: Sequence[list[int]],
    pad_id: int,
    last_logits: torch.Tensor,
    cache: Any,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each branch's per-token log-probs ([B, len(branch)]) after each prefilled prompt, and the logits of the pass
    that scored them. Row 2i + b of that pass continues prompt i with branch b (right-padded); `cache` grows to it."""
    first = torch.log_softmax(last_logits.float(), dim=-1)
    width, batch, device = max(len(ids) for ids in branches), last_logits.shape[0], attention_mask.device
    inputs = torch.full((len(branches), width), pad_id, dtype=torch.long)
    for b, ids in enumerate(branches):
        inputs[b, : len(ids)] = torch.tensor(ids)
    inputs = inputs.repeat(batch, 1).to(device)
    cache.batch_repeat_interleave(len(branches))
    logits = model(
        input_ids=inputs,
        cache=cache,
        attention_mask=torch.cat(
            [attention_mask.repeat_interleave(len(branches), dim=0), torch.ones_like(inputs)], dim=1
        ),
        position_ids=positions[:, -1:].repeat_interleave(len(branches), dim=0)
        + torch.arange(1, width + 1, device=device),
    ).logits
    # log P(prefix) = its first token from the prompt pass + the rest from this one (logits at j predict token j + 1)
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    scored = []
    for b, ids in enumerate(branches):
        targets = torch.tensor(ids[1:], device=device).expand(batch, -1)
        rest = logprobs[b :: len(branches), : len(ids) - 1].gather(-1, targets[..., None])[..., 0]
        scored.append(torch.cat([first[:, ids[0], None], rest], dim=1).cpu())
    return scored, logits
