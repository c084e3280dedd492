"""The prefix cache: the key/value cache a decision computed for `prompt + action prefix`, kept so the rewrite or
answer that follows continues from it instead of encoding the same prompt again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

LayerCache = list[tuple[torch.Tensor, torch.Tensor]]
"""One row's keys and values, per layer: each `[1, heads, positions, head_dim]`."""


@dataclass(frozen=True)
class CachedPrefix:
    """One row's key/value cache, unpadded, and the logits that follow its last token."""

    layers: LayerCache
    next_logits: torch.Tensor


def cache_row(cache: Any, row: int, span: slice = slice(None)) -> LayerCache:
    """Row `row` of a batched key/value cache, positions `span` only."""
    return [(layer.keys[row : row + 1, :, span], layer.values[row : row + 1, :, span]) for layer in cache.layers]


def join_rows(rows: Sequence[LayerCache], width: int, config: Any) -> DynamicCache:
    """Single-row caches left-padded to `width` positions and joined into one batched cache."""
    padded = [
        [(F.pad(k, (0, 0, width - k.shape[2], 0)), F.pad(v, (0, 0, width - v.shape[2], 0))) for k, v in row]
        for row in rows
    ]
    layers = [
        (torch.cat([row[i][0] for row in padded]), torch.cat([row[i][1] for row in padded]))
        for i in range(len(padded[0]))
    ]
    return DynamicCache(ddp_cache_data=layers, config=config)


def weights_version(model: Any) -> int:
    """Grows whenever a parameter changes in place (an optimizer step, `load_state_dict`): the prefix cache is
    keyed by it, so a cache computed before a weight update is never served after it."""
    return sum(p._version for p in model.parameters())


class PrefixCache:
    """The most recent prompts' cached action prefixes, keyed by (weights version, prompt).

    A prompt's prefixes are kept together and taken together: the generation after a decision continues one
    branch, and the other is dropped with it. The oldest prompts go first beyond `max_prompts`.
    """

    def __init__(self, max_prompts: int) -> None:
        self.max_prompts = max_prompts
        self._entries: OrderedDict[tuple[int, str], Mapping[str, CachedPrefix]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, version: int, prompt: str, prefixes: Mapping[str, CachedPrefix]) -> None:
        """Keep `prompt`'s cache under each of its action prefixes."""
        with self._lock:
            self._entries[(version, prompt)] = prefixes
            self._entries.move_to_end((version, prompt))
            while len(self._entries) > self.max_prompts:
                self._entries.popitem(last=False)

    def take(self, version: int, prompt: str, prefix: str) -> CachedPrefix | None:
        """The cache of `prompt + prefix` under these weights, if kept; the prompt's other prefixes go with it."""
        with self._lock:
            if prefix not in self._entries.get((version, prompt), {}):
                return None
            return self._entries.pop((version, prompt))[prefix]

    def clear(self) -> None:
        """Free every kept cache."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """How many prompts have caches kept."""
        return len(self._entries)
