"""The decode loop behind `SmartRAGPolicy.generate_batch`: greedy or top-k sampling from a prefilled cache, stopping
each row at end-of-sequence or at a newline after text, and streaming each row's visible text as it grows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Generation:
    """One completion: its text (cut at the first newline), its tokens, and their log-probabilities."""

    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    finished: bool = True
    """False when the completion ran into `max_new_tokens` before a newline or end-of-sequence."""
    prompt_tokens: int = 0
    """Tokens of the prompt and forced prefix the completion continued (token usage for tracers)."""


def visible_text(text: str) -> str:
    """What a completion shows: its first non-blank line, trimmed (the rest is rambling past the action)."""
    return text.strip().split("\n", 1)[0].strip()


class TextStream:
    """Turns a row's growing token list into the new visible text since the last call.

    It outlives one model pass: a pass retried after a failure resends nothing already sent. A callback that
    raises (anything, `SystemExit` included) is not called again and its error is kept in `error` for its
    own caller to raise, so it never breaks the pass the other rows share.
    """

    def __init__(self, tokenizer: Any, callback: Callable[[str], None]) -> None:
        self.tokenizer, self.callback, self.sent = tokenizer, callback, ""
        self.error: BaseException | None = None

    def update(self, token_ids: list[int], final: bool) -> None:
        """Send the new text; hold back a trailing partial character unless this is the row's last token."""
        if self.error is not None:
            return
        text = visible_text(self.tokenizer.decode(token_ids, skip_special_tokens=True))
        if text.startswith(self.sent) and len(text) > len(self.sent) and (final or not text.endswith("\ufffd")):
            try:
                self.callback(text[len(self.sent) :])
            except BaseException as error:  # noqa: BLE001 -- the caller's own callback; raised in its thread later
                self.error = error
            self.sent = text

    @staticmethod
    def raise_first(streams: Iterable[TextStream | None]) -> None:
        """Raise the first error a stream's callback raised, if any."""
        for stream in streams:
            if stream is not None and stream.error is not None:
                raise stream.error


@dataclass(frozen=True)
class StopTokens:
    """Id sets that steer stopping: end-of-sequence ids, ids whose text holds a newline, blank ids."""

    eos: torch.Tensor
    newline: torch.Tensor
    blank: torch.Tensor

    @classmethod
    def of(cls, tokenizer: Any, model: Any) -> StopTokens:
        """The sets for this tokenizer's vocabulary (decoded once, token by token), on the model's device."""
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        eos: set[int] = set()
        for ids in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
            eos.update([ids] if isinstance(ids, int) else ids or [])
        newline = [i for i, piece in enumerate(pieces) if "\n" in piece]
        blank = [i for i, piece in enumerate(pieces) if not piece.strip()]
        return cls(*(torch.tensor(sorted(ids), device=model.device) for ids in (eos, newline, blank)))


@dataclass
class Decoded:
    """A batch's new tokens (`[batch, max_new_tokens]`, valid up to `lengths`), their log-probs, and which rows
    stopped by themselves rather than at `max_new_tokens`."""

    tokens: torch.Tensor
    logprobs: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor


def sample_top_k(logprobs: torch.Tensor, top_k: int, generators: list[torch.Generator | None]) -> torch.Tensor:
    """One token per row from its top-k (`top_k=0`: all); seeded rows draw from their own generator."""
    top = logprobs.topk(min(top_k or logprobs.shape[-1], logprobs.shape[-1]), dim=-1)
    probs = top.values.exp()
    if all(g is None for g in generators):
        choice = torch.multinomial(probs, 1)
    else:
        choice = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, generators, strict=True)])
    return top.indices.gather(-1, choice)[:, 0]


def decode(
    model: Any,
    next_logits: torch.Tensor,
    cache: Any,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    stop: StopTokens,
    *,
    max_new_tokens: int,
    sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 50,
    seeds: Sequence[int | None] | None = None,
    streams: Mapping[int, TextStream] | None = None,
) -> Decoded:
    """Decode from a prefill's last logits and cache (left-padded) until every row stops or `max_new_tokens`.

    Each token's log-probability under the full softmax at `temperature` is recorded; rows that finish early are
    dropped from the cache once a quarter of the rows are done, so they stop costing a step each.
    """
    batch, device, streams = next_logits.shape[0], next_logits.device, streams or {}
    tokens = torch.zeros((batch, max_new_tokens), dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, max_new_tokens), device=device)
    lengths = torch.full((batch,), max_new_tokens, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    has_text = torch.zeros_like(done)
    generators = [torch.Generator(device).manual_seed(s) if s is not None else None for s in seeds or [None] * batch]
    active = torch.arange(batch, device=device)  # the batch row of each cache row
    for step in range(max_new_tokens):
        last_step = step == max_new_tokens - 1
        step_logprobs = torch.log_softmax(next_logits.float() / temperature, dim=-1)
        if sample:
            next_ids = sample_top_k(step_logprobs, top_k, [generators[row] for row in active.tolist()])
        else:
            next_ids = step_logprobs.argmax(-1)
        live = ~done[active]
        rows, ids = active[live], next_ids[live]
        tokens[rows, step] = ids
        logprobs[rows, step] = step_logprobs[live].gather(-1, ids[:, None])[:, 0]
        has_text[rows] |= ~torch.isin(ids, stop.blank)
        stopped = torch.isin(ids, stop.eos) | (has_text[rows] & torch.isin(ids, stop.newline))
        lengths[rows[stopped]] = step + 1
        done[rows[stopped]] = True
        for row in set(rows.tolist()) & streams.keys():
            streams[row].update(tokens[row, : step + 1].tolist(), final=bool(done[row]) or last_step)
        if bool(done.all()) or last_step:
            break
        live = ~done[active]
        if live.sum() <= 0.75 * len(active):  # drop finished rows: they would cost a full step each
            keep = live.nonzero()[:, 0]
            cache.batch_select_indices(keep)
            active, next_ids = active[keep], next_ids[keep]
            attention_mask, positions = attention_mask[keep], positions[keep]
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        next_logits = model(
            input_ids=next_ids[:, None],
            attention_mask=attention_mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        ).logits[:, -1]
    return Decoded(tokens.cpu(), logprobs.cpu(), lengths.cpu(), done.cpu())
