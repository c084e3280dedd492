"""PPO from environment feedback: reward = answer correctness - alpha per retrieval (SmartRAG's stage 2).

One config dataclass, one visible loop, CleanRL style. Each iteration:
  1. rollout   episodes through the SAME graph that serves (`trajectories.collect`: sampled, recorded); with
               `paired_decisions`, every question both ways (search first, answer first)
  2. score     segments (`segments.py`), old log-probs and values, the reference's log-probs, per-token
               rewards (environment reward - KL coefficient * KL), GAE across each episode's segments; paired
               questions give their first decision each branch's return against the pair's mean
  3. update    several epochs of clipped policy + clipped value loss over minibatches of episodes
  4. log, adapt the KL coefficient, checkpoint, and now and then evaluate on a held-apart dev sample

The policy is a LoRA adapter (the SFT adapter with `init`, else a fresh one); the reference for the KL
penalty is the frozen starting adapter (or the bare base model), so it costs no second model. The value
head is `Linear(hidden, 1)` on the policy's last hidden state. Under `accelerate launch` each process
collects its own share of the episodes and the gradients are averaged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from langchain_smartrag import SmartRAGContext, SmartRAGPolicy, create_smartrag_graph
from langchain_smartrag.policy import bf16_is_fast, left_pad, length_chunks, position_ids
from langchain_smartrag.retrievers import build_retriever
from langchain_smartrag.scoring import ALPHA

from .checkpoints import checkpoint_all, prepare_output_dir, replace_directory, restore, truncate_log
from .config import require_counts
from .data import QAExample, dataset_path, load_qa, sample
from .evaluate import evaluate
from .ppo_math import (
    AdaptiveKL,
    gae,
    paired_decision_advantages,
    policy_loss,
    squared_log_ratio,
    two_action_kl,
    value_loss,
    whiten,
)
from .segments import Segment, rollout_segments
from .trajectories import collect

VALUE_HEAD_FILE = "value_head.pt"
ROLLOUT_FIELDS = ("id", "question", "golds", "queries", "answer", "well_formed", "retrievals", "search_probabilities",
                  "em", "f1", "reward")
REFERENCE = "reference"
NEVER = 1.01
"""A threshold above any P(search): the decision always answers."""


@dataclass
class PPOConfig:
    output_dir: str = "runs/ppo"
    init: str | None = None
    """The SFT adapter to start from (and to stay near: it is the KL reference). None: a fresh LoRA."""
    base_model: str = "embedded-base"
    """The model under a fresh LoRA when `init` is None (`embedded-base`, a directory or a hub id)."""
    lora_r: int = 16
    lora_alpha: int = 32
    # data and environment
    datasets: list[str] = field(default_factory=lambda: ["popqa", "ambignq", "hotpotqa"])
    """Train splits of the repository's data sets; each gets the same share of every iteration's episodes,
    unless `dataset_weights` says otherwise."""
    dataset_weights: list[int] | None = None
    """Questions each data set contributes per turn instead (e.g. [4, 1, 1]: four of every six are the first
    set's), where one set holds more to learn: PopQA's templates tell when its corpus pays, and a share of a
    third met the two templates that pay most 8 times in 12 iterations."""
    split: str = "train"
    covered_only: bool | list[str] = True
    """Only questions whose evidence the bundled corpus holds (a list: only in those data sets). All of PopQA
    teaches when its corpus pays (it covers 14% of questions, by template from 1% to 95%); covered HotpotQA
    is what its dev set holds."""
    data: str | None = None
    """A QA JSONL(.gz) to train on instead of `datasets`."""
    dev_dataset: str | None = "hotpotqa"
    dev_data: str | None = None
    dev_limit: int = 100
    validation_per_dataset: int = 0
    """If > 0: this many questions of each training set (a seeded sample) are never trained on and replace the dev
    sample as the in-run evaluation, so choosing `best/` by them never looks at dev."""
    validation_seed: int | None = None
    """The held-out sample's seed (None: `seed`). `smartrag train warmup --seed S` samples the same shuffles, so a
    warm-up drawn with this seed holds the validation questions: give the SFT's warm-up another one."""
    eval_every: int = 5
    """Evaluate (greedy, smartrag mode at `threshold`) before training and every this many iterations; the
    adapter with the highest reward so far is kept in `best/` (the starting one included)."""
    threshold: float = 0.5
    corpus: str | None = None
    """Corpus JSONL(.gz) or saved BM25 index; None: the bundled corpus."""
    k: int = 4
    alpha: float = ALPHA
    """Cost per retrieval (reward = EM + F1 - alpha * retrievals; -1 for a malformed answer)."""
    max_retrievals: int = 1
    """Retrieval quota per episode (the paper: 1)."""
    # rollouts
    paired_decisions: bool = False
    """Roll every question out both ways, its first decision forced to search and to answer (the text sampled as
    usual), and train that decision on each branch's return against the pair's mean
    (`ppo_math.paired_decision_advantages`) instead of one sampled branch and a critic's guess: an iteration's
    episodes are half as many questions, and no decision's signal depends on which action happened to be drawn."""
    decision_centering: float = 0.0
    """With `paired_decisions`: the part of the iteration's mean search-minus-answer gap taken out of every
    decision's gap. 0 is the plain paired gradient; towards 1 the decisions learn from how questions differ,
    while the share of searches they all have in common (the bias every update moves) moves more slowly. Where a
    search pays for few questions, the plain gradient drives P(search) to ~0 for all of them (tiny world: at 0 and
    0.5; learned at 0.9 and 1.0, `benchmarks/tiny_decisions.py`)."""
    trained_tokens: str = "all"
    """With `paired_decisions`: "all", or only the first decisions' tokens ("decisions": every other advantage is 0),
    or all but them ("text"). Tells which part of an update moves the decision (`benchmarks/first_update.sh`); not
    for whole runs: with no advantage of their own the answers drift (tiny world, 12 iterations: reward 1.0 -> 0-0.4)."""
    decision_kl_coef: float = 0.0
    """Weight of `squared_log_ratio` to the reference on every decision's action-word tokens, added to the policy
    loss: holds the decision near the starting adapter's while the rest of each episode trains. The reward's KL
    penalty holds it only through the advantages, and on the embedded model a drift that all decisions share
    outran that in every run. At 10, four updates from the shipped adapter took P(search) 0.32 -> 0.35 where 0 took
    it to 0.25; under Adam a far larger weight overshoots (1000 moved one update's decisions the most), see
    docs/experiments.md, "A KL term on the decision tokens alone"."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts' text; the update scores tokens at the same temperature. A small
    model may need < 1 to ever answer right (SmolLM2-135M after SFT, 32 train questions: EM 0.16 greedy,
    0.09 at 0.5, 0.03 at 0.7, 0.00 at 1.0)."""
    iterations: int = 20
    episodes_per_iteration: int = 64
    rollout_batch_size: int = 32
    # optimisation
    ppo_epochs: int = 2
    minibatch_episodes: int = 16
    micro_batch_tokens: int = 4096
    """Segments per forward pass are grouped by length up to about this many tokens (memory, speed)."""
    learning_rate: float = 2e-5
    warmup_steps: int = 0
    """Policy optimizer steps, from the first policy update, over which its learning rate ramps linearly up to
    `learning_rate` (the value head's stays put). Adam's first steps are about `learning_rate` per weight whatever
    the gradient's size: on the embedded model the first update at 5e-5 took P(search) 0.31 -> 0.05 (approx. KL
    0.078), while the same rate after 5 updates at 1e-5 moved it 0.219 -> 0.222 (KL 0.003), each question with its
    own gap (docs/experiments.md, "Adam's cold start")."""
    value_learning_rate: float = 1e-3
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    vf_coef: float = 0.1
    critic: str = "shared"
    """"shared": the value loss also trains the policy's LoRA weights (one body); "head": only the value head
    learns, on the policy's hidden states, so the critic never moves the policy."""
    max_grad_norm: float = 1.0
    gamma: float = 1.0
    lam: float = 1.0
    whiten_advantages: bool = True
    value_warmup_iterations: int = 1
    """Iterations at the start where only the value head learns (the policy is left alone)."""
    init_kl_coef: float = 0.05
    target_kl: float | None = 1.0
    """Per-episode KL to the reference that the adaptive coefficient aims at; None keeps it fixed."""
    kl_horizon: float = 1000.0
    bf16: bool = True
    """bf16 autocast where the hardware makes it faster (`bf16_is_fast`: AVX-512 or AMX CPUs, recent GPUs)."""
    # bookkeeping
    save_every: int = 1
    keep_checkpoints: int = 2
    seed: int = 0
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        require_counts(self, ("lora_r", "dev_limit", "eval_every", "k", "iterations", "episodes_per_iteration",
                              "rollout_batch_size", "ppo_epochs", "minibatch_episodes", "micro_batch_tokens",
                              "save_every", "keep_checkpoints"))


class ActorCritic(torch.nn.Module):
    """The policy LM and its value head as one module (so data-parallel training syncs both).

    `forward` returns, for the last `width` tokens of each left-padded row, the logits that predicted
    them (divided by the sampling temperature) and the value of the state before each one.
    """

    def __init__(self, model: Any, value_head: torch.nn.Linear, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.value_head, self.temperature = model, value_head, temperature

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int,
                train_body: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        causal = self.model.get_base_model()
        hidden = causal.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
        ).last_hidden_state[:, -width - 1 : -1]
        logits = causal.get_output_embeddings()(hidden).float() / self.temperature
        values = self.value_head(hidden if train_body else hidden.detach()).squeeze(-1).float()
        return logits, values


def trainable_policy(config: PPOConfig) -> SmartRAGPolicy:
    """The policy to train: the `init` adapter, trainable, plus a frozen copy of it as the reference."""
    from peft import LoraConfig, PeftModel, get_peft_model

    autocast = None if config.bf16 else False  # None: where the hardware makes bf16 faster
    if config.init is None:
        base = SmartRAGPolicy.load(config.base_model, autocast=autocast)
        model = get_peft_model(base.model, LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
            task_type="CAUSAL_LM",
        ))
    else:
        adapter = Path(config.init)
        if not (adapter / "adapter_config.json").exists():
            raise ValueError(f"init={config.init}: not a peft adapter directory (no adapter_config.json)")
        base_path = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        base = SmartRAGPolicy.from_pretrained(base_path, autocast=autocast)  # "embedded": the bare model
        model = PeftModel.from_pretrained(base.model, adapter, is_trainable=True)
        model.load_adapter(adapter, adapter_name=REFERENCE)
    return SmartRAGPolicy(model.eval(), base.tokenizer, autocast=autocast)


def right_align(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    """Per-segment token vectors as [rows, width], each ending at the last column (where its tokens are)."""
    out = torch.zeros((len(rows), width), device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, width - len(row) :] = row
    return out


def micro_batches(segments: Sequence[Segment], indices: Sequence[int], budget: int) -> list[list[int]]:
    """`indices` grouped by length into passes of about `budget` tokens (less padding, bounded memory)."""
    return length_chunks([len(s.prompt_ids) + len(s.completion_ids) for s in segments], indices, budget)


def batch_inputs(segments: Sequence[Segment], rows: Sequence[int], pad_id: int, device: torch.device):
    """Input ids, attention mask, completion width, target token ids [B, width] and the completion mask."""
    chosen = [segments[i] for i in rows]
    input_ids, attention_mask = left_pad([s.prompt_ids + s.completion_ids for s in chosen], pad_id, device)
    width = max(len(s.completion_ids) for s in chosen)
    mask = right_align([torch.ones(len(s.completion_ids), device=device) for s in chosen], width)
    return input_ids, attention_mask, width, input_ids[:, -width:], mask


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]


def split_rows(values: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The inverse of `right_align`: each row's real tokens."""
    return [row[-int(m.sum()) :] for row, m in zip(values, mask, strict=True)]


def train(config: PPOConfig) -> Path:
    """Run PPO; returns the directory of the final adapter (+ value head), loadable by `SmartRAGPolicy`."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import gather_object

    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if config.critic not in ("shared", "head"):
        raise ValueError(f"critic must be 'shared' or 'head', not {config.critic!r}")
    per_question = 2 if config.paired_decisions else 1
    steps_per_epoch = -(-config.episodes_per_iteration // config.minibatch_episodes)
    if config.episodes_per_iteration % (world * per_question):
        raise ValueError(f"episodes_per_iteration={config.episodes_per_iteration} must divide among {world} processes"
                         + (" in pairs" if config.paired_decisions else ""))
    if config.trained_tokens not in ("all", "decisions", "text"):
        raise ValueError(f"trained_tokens must be 'all', 'decisions' or 'text', not {config.trained_tokens!r}")
    if config.trained_tokens != "all" and not config.paired_decisions:
        raise ValueError(f"trained_tokens={config.trained_tokens!r} needs paired_decisions (its decisions are the paired ones)")
    if config.decision_kl_coef < 0:
        raise ValueError(f"decision_kl_coef must be >= 0, not {config.decision_kl_coef}")
    if config.paired_decisions and config.max_retrievals < 1:
        raise ValueError("paired_decisions needs max_retrievals >= 1 (a decision to pair)")
    output_dir = Path(config.output_dir)
    checkpoint = prepare_output_dir(output_dir, config.resume)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = accelerator.device
    use_bf16 = config.bf16 and bf16_is_fast(device)

    # the environment: the questions, and the serving graph over the retriever
    train_sets = load_questions(config.data, config.datasets, config.split, config.covered_only)
    if config.dataset_weights is not None and (len(config.dataset_weights) != len(train_sets)
                                               or min(config.dataset_weights) < 1):
        raise ValueError(f"dataset_weights={config.dataset_weights}: give each of the {len(train_sets)} training "
                         "sets a whole number of questions per turn, at least 1")
    policy = trainable_policy(config)
    pad_id = policy.tokenizer.pad_token_id
    retriever = build_retriever("local", config.corpus, config.k)
    graph = create_smartrag_graph(policy, retriever, max_retrievals=config.max_retrievals, threshold=config.threshold)
    rollout_context = SmartRAGContext(max_retrievals=config.max_retrievals, temperature=config.temperature)
    train_sets, validation = hold_out(train_sets, config.validation_per_dataset, validation_seed(config))
    dev_examples = validation or dev_questions(config)
    eval_set = "validation (held-out train)" if validation else "dev"

    # the learner: LoRA weights + value head, one optimizer with a param group each
    value_head = torch.nn.Linear(policy.model.config.hidden_size, 1).to(device)
    torch.nn.init.zeros_(value_head.weight)
    torch.nn.init.zeros_(value_head.bias)
    actor_critic = ActorCritic(policy.model, value_head, config.temperature)
    optimizer = torch.optim.AdamW([
        {"params": [p for p in policy.model.parameters() if p.requires_grad], "lr": config.learning_rate},
        {"params": list(value_head.parameters()), "lr": config.value_learning_rate},
    ], weight_decay=0.0)
    learner, optimizer = accelerator.prepare(actor_critic, optimizer)
    kl_control = AdaptiveKL(config.init_kl_coef, config.target_kl, config.kl_horizon)
    start, best_reward = 0, float("-inf")
    if checkpoint is not None:
        state = restore(checkpoint, actor_critic, optimizer, rank)
        start, kl_control.coef, best_reward = int(state["step"]), state["kl_coef"], state.get("best_reward", best_reward)
        for group, rate in zip(optimizer.param_groups, (config.learning_rate, config.value_learning_rate), strict=True):
            group["lr"] = rate  # the config's, not the checkpoint's: a resumed run may change them
        if main:
            for name in ("metrics.jsonl", "rollouts.jsonl"):
                truncate_log(output_dir / name, "iteration", start)
    log = (output_dir / "metrics.jsonl").open("a") if main else None

    def write(record: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(record) + "\n")
            log.flush()

    def evaluate_dev(iteration: int) -> None:
        nonlocal best_reward
        if main and dev_examples:
            results = evaluate(graph, dev_examples, mode="smartrag", threshold=config.threshold,
                               batch_size=config.rollout_batch_size, progress=False, alpha=config.alpha)
            write({"iteration": iteration, "eval_set": eval_set, "dev": {k: results[k] for k in ("n", "em", "f1", "reward", "retrieval_rate",
                                                                         "format_error_rate", "seconds")}})
            if results["reward"] > best_reward:
                best_reward = results["reward"]
                save_policy(policy, value_head, output_dir / "best", {"iteration": iteration, "reward": best_reward})
        accelerator.wait_for_everyone()

    if start == 0:
        evaluate_dev(0)
    bar = tqdm(total=config.iterations, initial=start, desc="ppo", dynamic_ncols=True, disable=not (main and config.progress))
    for iteration in range(start, config.iterations):
        # 1. rollout: this process's share of the iteration's questions through the graph --------------
        t0 = time.perf_counter()
        # question g of the iteration lives on process g % world, seeded by g: the same run for any world size
        questions = config.episodes_per_iteration // per_question
        mine = range(rank, questions, world)
        examples = iteration_examples(train_sets, iteration, questions, config.seed, config.dataset_weights)
        contexts = [replace(rollout_context, sample_decision=False, threshold=t) for t in (0.0, NEVER)] \
            if config.paired_decisions else [rollout_context]  # paired: episodes [0, n) searched first, [n, 2n) not
        episodes = [episode for context in contexts for episode in collect(
            graph, [examples[g] for g in mine], batch_size=config.rollout_batch_size,
            seed=[(config.seed * 100_003 + iteration) * 1_000_003 + g for g in mine],
            context=context, alpha=config.alpha, progress=False)]
        segments = rollout_segments(episodes, policy.encode, config.alpha)
        by_episode: list[list[int]] = [[] for _ in episodes]  # each episode's segments, in order
        for i, segment in enumerate(segments):
            by_episode[segment.episode].append(i)
        t1 = time.perf_counter()

        # 2. score: old log-probs and values, reference log-probs, rewards, advantages ------------------
        old_logprobs: list[torch.Tensor] = [torch.empty(0)] * len(segments)
        old_values, ref_logprobs = list(old_logprobs), list(old_logprobs)
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
            for rows in micro_batches(segments, range(len(segments)), config.micro_batch_tokens):
                input_ids, attention_mask, width, targets, mask = batch_inputs(segments, rows, pad_id, device)
                logits, values = actor_critic(input_ids, attention_mask, width)
                reference = reference_logits(policy.model, input_ids, attention_mask, width) / config.temperature
                for i, lp, v, ref in zip(rows, split_rows(token_logprobs(logits, targets), mask), split_rows(values, mask),
                                         split_rows(token_logprobs(reference, targets), mask), strict=True):
                    old_logprobs[i], old_values[i], ref_logprobs[i] = lp, v, ref
        kl_tokens = [old - ref for old, ref in zip(old_logprobs, ref_logprobs, strict=True)]
        rewards = [torch.tensor(s.scores, device=device) - kl_control.coef * kl
                   for s, kl in zip(segments, kl_tokens, strict=True)]
        advantages, returns = episode_advantages(by_episode, rewards, old_values, config.gamma, config.lam)
        scale = torch.tensor(1.0, device=device)
        if config.whiten_advantages:  # over every process's tokens (each joins the reduce, even with none)
            flat = torch.cat(advantages) if advantages else torch.zeros(0, device=device)
            total = accelerator.reduce(torch.stack([flat.sum(), (flat**2).sum(), torch.tensor(float(len(flat)), device=device)]))
            mean = total[0] / total[2]
            var = total[1] / total[2] - mean**2
            advantages = [whiten(a, torch.ones_like(a), mean, var) for a in advantages]
            scale = torch.rsqrt(var + 1e-8)
        if config.paired_decisions:  # scaled like the rest; shifted only by the chosen part of the mean gap
            pairs = pair_returns(episodes, by_episode, rewards)
            gap_sum = sum((qs - qn for _, _, qs, qn in pairs), torch.tensor(0.0, device=device))
            gap_sum, pair_count = accelerator.reduce(torch.stack([gap_sum, torch.tensor(float(len(pairs)), device=device)]))
            baseline = config.decision_centering * gap_sum / pair_count.clamp(min=1)
            pair_decisions(pairs, segments, by_episode, advantages, scale, baseline)
            if config.trained_tokens != "all":
                keep_tokens(config.trained_tokens, pairs, segments, by_episode, advantages)
        t2 = time.perf_counter()

        # 3. update: epochs x minibatches of episodes; each minibatch is one optimizer step -------------
        warmup = iteration < config.value_warmup_iterations
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "clip_fraction", "entropy", "approx_kl",
                                                          "decision_anchor")}
        update_tokens = 0
        step = (iteration - config.value_warmup_iterations) * config.ppo_epochs * steps_per_epoch  # policy steps so far
        for epoch in range(config.ppo_epochs):
            order = torch.randperm(config.episodes_per_iteration, generator=torch.Generator().manual_seed(
                (config.seed * 100_003 + iteration) * 101 + epoch)).tolist()
            for first in range(0, len(order), config.minibatch_episodes):
                if not warmup:
                    optimizer.param_groups[0]["lr"] = policy_learning_rate(config, step)
                    step += 1
                # a minibatch is a slice of the global episode order; each process trains its own episodes of it
                step_episodes = [g // world for g in order[first : first + config.minibatch_episodes] if g % world == rank]
                rows_in_step = [i for e in step_episodes for i in by_episode[e]]
                step_tokens = accelerator.reduce(torch.tensor(
                    float(sum(len(segments[i].completion_ids) for i in rows_in_step)), device=device)).clamp(min=1)
                passes = list(micro_batches(segments, rows_in_step, config.micro_batch_tokens))
                sums = torch.zeros(len(stats), device=device)
                if not passes:  # none of this minibatch's episodes are here: still join the gradient all-reduce
                    logits, values = learner(torch.full((1, 2), pad_id, device=device), torch.ones((1, 2), device=device), 1)
                    accelerator.backward(0.0 * (logits.sum() + values.sum()))
                for n, rows in enumerate(passes):
                    sync = accelerator.no_sync(learner) if n < len(passes) - 1 else contextlib.nullcontext()
                    with sync:
                        loss, pass_sums, tokens = minibatch_loss(
                            learner, segments, rows, pad_id, device, use_bf16, old_logprobs, ref_logprobs, old_values,
                            advantages, returns, config, warmup)
                        accelerator.backward(loss / step_tokens * world)  # DDP averages over processes
                    sums += pass_sums
                    update_tokens += tokens
                accelerator.clip_grad_norm_(actor_critic.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sums = accelerator.reduce(sums)
                for key, value in zip(stats, (sums / step_tokens).tolist(), strict=True):
                    stats[key].append(value)
        t3 = time.perf_counter()
        p_after = search_after(policy, episodes)

        # 4. log, adapt the KL coefficient, checkpoint, evaluate ----------------------------------------
        episode_kl = [float(sum(kl_tokens[i].sum() for i in rows)) for rows in by_episode]
        if config.paired_decisions:  # forced decision tokens are not policy samples: log their exact KL instead
            for e, kl in decision_kls(pairs, segments, by_episode, old_logprobs, ref_logprobs).items():
                first = by_episode[e][0]
                episode_kl[e] += kl - float(kl_tokens[first][: segments[first].decision_tokens].sum())
        played = gather_object([{**{k: e[k] for k in ROLLOUT_FIELDS}, "iteration": iteration + 1, "kl": kl, "p_search_after": p}
                                for e, kl, p in zip(episodes, episode_kl, p_after, strict=True)])
        rollout = summarize_rollout(played)
        if config.paired_decisions:
            expected = gather_object(expected_rewards(episodes, pairs))
            rollout["expected_reward"] = sum(expected) / max(len(expected), 1)
        if main:  # what the policy did, question by question (for reading, not for resuming)
            with (output_dir / "rollouts.jsonl").open("a") as file:
                file.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in played)
        record = {
            "iteration": iteration + 1, **rollout, "kl_coef": kl_control.coef, "value_warmup": warmup,
            "learning_rate": optimizer.param_groups[0]["lr"],
            **{k: sum(v) / len(v) if v else None for k, v in stats.items()},
            "update_tokens_per_second": sum(gather_object([update_tokens])) / max(t3 - t2, 1e-9),
            "seconds": {"rollout": t1 - t0, "score": t2 - t1, "update": t3 - t2},
        }
        write(record)
        kl_control.update(rollout["kl"], rollout["episodes"])
        bar.update(1)
        bar.set_postfix(reward=f"{rollout['reward']:.3f}", retrieval=f"{rollout['retrieval_rate']:.2f}", kl=f"{rollout['kl']:.3f}")
        if (iteration + 1) % config.eval_every == 0 or iteration + 1 == config.iterations:
            evaluate_dev(iteration + 1)
        if (iteration + 1) % config.save_every == 0 or iteration + 1 == config.iterations:
            checkpoint_all(accelerator, output_dir, iteration + 1, actor_critic, optimizer,
                           {"kl_coef": kl_control.coef, "best_reward": best_reward, "config": dataclasses.asdict(config)},
                           config.keep_checkpoints)
    bar.close()
    final = output_dir / "final"
    if main:
        log.close()
        save_policy(policy, value_head, final, {"iteration": config.iterations})
    accelerator.wait_for_everyone()
    return final


def policy_learning_rate(config: PPOConfig, step: int) -> float:
    """The policy's rate at its optimizer step `step` (0 is the first policy update's first): `learning_rate` after
    a linear ramp over `warmup_steps`."""
    return config.learning_rate * min(1.0, (step + 1) / max(config.warmup_steps, 1))


def save_policy(policy: SmartRAGPolicy, value_head: torch.nn.Module, directory: Path, info: dict[str, Any]) -> None:
    """The policy adapter alone (not the reference), its tokenizer, the value head and `info` (`selected.json`),
    replacing `directory`; written aside and swapped into place, so neither a reader nor a kill sees half of it."""

    def write(tmp: Path) -> None:
        policy.model.save_pretrained(tmp, selected_adapters=["default"])
        policy.tokenizer.save_pretrained(tmp)
        torch.save(value_head.state_dict(), tmp / VALUE_HEAD_FILE)
        (tmp / "selected.json").write_text(json.dumps(info))

    replace_directory(directory, write)


def reference_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int) -> torch.Tensor:
    """The KL reference's logits for the last `width` tokens: the frozen starting adapter, else the bare base.

    The reference adapter is switched in for the pass (peft's per-row `adapter_names` measured 4x slower here)."""
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids(attention_mask),
              "logits_to_keep": width + 1}
    if REFERENCE not in model.peft_config:
        with model.disable_adapter():
            return model(**kwargs).logits[:, :-1].float()
    model.base_model.set_adapter(REFERENCE)
    try:
        return model(**kwargs).logits[:, :-1].float()
    finally:  # switching back also makes "default" the trainable adapter again, and the reference frozen
        model.base_model.set_adapter("default")


def episode_advantages(
    by_episode: Sequence[Sequence[int]], rewards: Sequence[torch.Tensor], values: Sequence[torch.Tensor],
    gamma: float, lam: float,
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


def minibatch_loss(
    learner: torch.nn.Module, segments: Sequence[Segment], rows: Sequence[int], pad_id: int, device: torch.device,
    use_bf16: bool, old_logprobs: Sequence[torch.Tensor], ref_logprobs: Sequence[torch.Tensor],
    old_values: Sequence[torch.Tensor], advantages: Sequence[torch.Tensor], returns: Sequence[torch.Tensor],
    config: PPOConfig, warmup: bool,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One pass's summed loss, its summed stats (policy loss, value loss, clipped, entropy, approx KL, the decision
    tokens' squared log-ratio to the reference), its tokens."""
    input_ids, attention_mask, width, targets, mask = batch_inputs(segments, rows, pad_id, device)
    with torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
        logits, values = learner(input_ids, attention_mask, width, train_body=not warmup and config.critic == "shared")
    logprobs = token_logprobs(logits, targets)
    old = right_align([old_logprobs[i] for i in rows], width)
    pg_sum, clipped = policy_loss(logprobs, old, right_align([advantages[i] for i in rows], width), mask,
                                  config.clip_range)
    vf_sum = value_loss(values, right_align([old_values[i] for i in rows], width),
                        right_align([returns[i] for i in rows], width), mask, config.value_clip_range)
    decisions = right_align([(torch.arange(len(segments[i].completion_ids), device=device)
                              < segments[i].decision_tokens).float() for i in rows], width)
    anchor_sum = squared_log_ratio(logprobs, right_align([ref_logprobs[i] for i in rows], width), decisions)
    loss = config.vf_coef * vf_sum if warmup else pg_sum + config.vf_coef * vf_sum + config.decision_kl_coef * anchor_sum
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        entropy = ((torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)) * mask).sum()
        approx_kl = squared_log_ratio(logprobs, old, mask)
    sums = torch.stack([pg_sum.detach(), vf_sum.detach(), clipped, entropy, approx_kl, anchor_sum.detach()])
    return loss, sums, int(attention_mask.sum())


def expected_rewards(episodes: Sequence[dict[str, Any]], pairs: Sequence[tuple[int, int, Any, Any]]) -> list[float]:
    """The reward each paired question's policy expects when it decides itself: its two branches (`pair_returns`)
    weighted by its P(search)."""
    return [episodes[s]["search_probabilities"][0] * episodes[s]["reward"]
            + (1 - episodes[s]["search_probabilities"][0]) * episodes[a]["reward"] for s, a, _, _ in pairs]


def search_after(policy: SmartRAGPolicy, episodes: Sequence[dict[str, Any]]) -> list[float | None]:
    """Each episode's first-decision P(search) under the current weights, on the prompt it decided on (None without
    one): what an update did to each decision, question by question. One pass over the distinct prompts."""
    prompts = [e["trace"][0]["prompt"] if e.get("trace") else None for e in episodes]
    distinct = list(dict.fromkeys(p for p in prompts if p is not None))
    after = dict(zip(distinct, policy.search_probability_batch(distinct), strict=True))
    return [after.get(p) for p in prompts]


def summarize_rollout(episodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Iteration means over every process's episodes (`p_search`: the first decision's P(search); `p_search_after`:
    the same decisions' after the iteration's update)."""
    n = max(len(episodes), 1)
    first = [e["search_probabilities"][0] for e in episodes if e["search_probabilities"]]
    after = [e["p_search_after"] for e in episodes if e.get("p_search_after") is not None]
    return {
        "episodes": len(episodes),
        "reward": sum(e["reward"] for e in episodes) / n,
        "em": sum(e["em"] for e in episodes) / n,
        "f1": sum(e["f1"] for e in episodes) / n,
        "retrieval_rate": sum(e["retrievals"] for e in episodes) / n,
        "format_error_rate": sum(not e["well_formed"] for e in episodes) / n,
        "kl": sum(e["kl"] for e in episodes) / n,
        "p_search": sum(first) / max(len(first), 1),
        "p_search_after": sum(after) / len(after) if after else None,
    }


def pair_returns(episodes: Sequence[dict[str, Any]], by_episode: Sequence[Sequence[int]],
                 rewards: Sequence[torch.Tensor]) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """Paired episodes (searched first: [0, n), answered first: [n, 2n)) as (searched, answered, Q_s, Q_n): the
    returns of both branches of each question (all shaped rewards, KL included); pairs with a failed episode left out."""
    n = len(episodes) // 2
    return [(s, a, *(sum(rewards[i].sum() for i in by_episode[e]) for e in (s, a)))
            for s, a in zip(range(n), range(n, 2 * n), strict=True) if by_episode[s] and by_episode[a]]


def decision_kls(
    pairs: Sequence[tuple[int, int, torch.Tensor, torch.Tensor]], segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]], logprobs: Sequence[torch.Tensor], ref_logprobs: Sequence[torch.Tensor],
) -> dict[int, float]:
    """Each paired episode's first decision's KL to the reference (`two_action_kl`), from the action words' log-probs
    in its two branches; both episodes of a question get the same value."""
    out = {}
    for searched, answered, _, _ in pairs:
        firsts = [by_episode[e][0] for e in (searched, answered)]
        search, answer = ([lp[i][: segments[i].decision_tokens].sum() for lp in (logprobs, ref_logprobs)] for i in firsts)
        kl = float(two_action_kl(search[0], answer[0], search[1], answer[1]))
        out[searched] = out[answered] = kl
    return out


def pair_decisions(
    pairs: Sequence[tuple[int, int, torch.Tensor, torch.Tensor]], segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]], advantages: list[torch.Tensor], scale: torch.Tensor,
    baseline: torch.Tensor | float = 0.0,
) -> None:
    """Give each question's first decision, in both its episodes, the paired advantage of their returns (`pair_returns`;
    the gap less `baseline`) times `scale`. A pair with a failed episode keeps its ordinary advantages."""
    for searched, answered, return_search, return_answer in pairs:
        for e, advantage in zip((searched, answered),
                                paired_decision_advantages(return_search, return_answer, baseline), strict=True):
            first = by_episode[e][0]
            advantages[first][: segments[first].decision_tokens] = advantage * scale


def keep_tokens(
    which: str, pairs: Sequence[tuple[int, int, Any, Any]], segments: Sequence[Segment],
    by_episode: Sequence[Sequence[int]], advantages: list[torch.Tensor],
) -> None:
    """Keep only the paired first decisions' advantages (`which` = "decisions") or only every other token's ("text");
    the others become 0, so those tokens do not train the policy."""
    decisions = {by_episode[e][0] for searched, answered, _, _ in pairs for e in (searched, answered)}
    for i, advantage in enumerate(advantages):
        cut = segments[i].decision_tokens if i in decisions else 0
        if which == "decisions":
            advantage[cut:] = 0.0
        else:
            advantage[:cut] = 0.0


def covered(example: QAExample) -> bool:
    """Whether the bundled corpus holds the evidence (PopQA: `subject_in_local_corpus`, HotpotQA: `has_context`)."""
    return bool(example.extra.get("subject_in_local_corpus", example.extra.get("has_context", True)))


def load_questions(data: str | None, datasets: Sequence[str], split: str, covered_only: bool | Sequence[str]
                   ) -> list[list[QAExample]]:
    """Training questions, one list per data set (or one for a QA file); `covered_only`: True for every data set,
    or the names of those that keep only covered questions."""
    if data is not None:
        return [load_qa(data)]
    if isinstance(covered_only, str):
        raise TypeError(f"covered_only must be true/false or a list of data sets, not {covered_only!r}")
    only = set(datasets) if covered_only is True else set(covered_only or ())
    sets = [[e for e in load_qa(dataset_path(name, split)) if covered(e) or name not in only] for name in datasets]
    if not sets or not all(sets):
        raise ValueError(f"no training questions in some of {list(datasets)} (covered_only={covered_only})")
    return sets


def validation_seed(config: PPOConfig) -> int:
    """The seed `hold_out` draws the validation questions with."""
    return config.seed if config.validation_seed is None else config.validation_seed


def hold_out(sets: Sequence[list[QAExample]], per_set: int, seed: int) -> tuple[list[list[QAExample]], list[QAExample]]:
    """Take a seeded sample of `per_set` questions out of each training set: (what is left, the held-out ones)."""
    if per_set <= 0:
        return list(sets), []
    left, held = [], []
    for examples in sets:
        if len(examples) <= per_set:
            raise ValueError(f"validation_per_dataset={per_set} would leave nothing to train on ({len(examples)} questions)")
        chosen = {e.id for e in sample(examples, per_set, seed=seed)}
        left.append([e for e in examples if e.id not in chosen])
        held.extend(e for e in examples if e.id in chosen)
    return left, held


def dev_questions(config: PPOConfig) -> list[QAExample]:
    if config.dev_data is None and config.dev_dataset is None:
        return []
    examples = load_qa(config.dev_data or dataset_path(config.dev_dataset, "dev"))
    return sample(examples, config.dev_limit, seed=config.seed)


def iteration_examples(sets: Sequence[Sequence[QAExample]], iteration: int, count: int, seed: int,
                       weights: Sequence[int] | None = None) -> list[QAExample]:
    """One iteration's questions: the data sets take turns, set i giving `weights[i]` questions a turn (default 1,
    whatever its size), and each is read as consecutive slices of a permutation reshuffled every pass over it."""
    weights = weights or [1] * len(sets)
    turn = [which for which, weight in enumerate(weights) for _ in range(weight)]
    orders: dict[tuple[int, int], list[int]] = {}
    chosen = []
    for position in range(iteration * count, (iteration + 1) * count):
        cycle, slot = divmod(position, len(turn))
        which = turn[slot]
        index = cycle * weights[which] + turn[:slot].count(which)
        epoch, offset = divmod(index, len(sets[which]))
        if (which, epoch) not in orders:
            generator = torch.Generator().manual_seed(seed * 31 + epoch * 7919 + which)
            orders[which, epoch] = torch.randperm(len(sets[which]), generator=generator).tolist()
        chosen.append(sets[which][orders[which, epoch][offset]])
    return chosen


def read_metrics(output_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-iteration rollout records, dev evaluations) from a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "dev" not in r], [r for r in rows if "dev" in r]


def plot_curves(output_dir: str | Path, path: str | Path | None = None) -> Path:
    """Reward and retrieval rate per iteration (rollouts, and the in-run evaluations) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_rows, dev_rows = read_metrics(output_dir)
    path = Path(path or Path(output_dir) / "curves.png")
    fig, (ax_reward, ax_retrieval) = plt.subplots(1, 2, figsize=(10, 3.8))
    label_set = dev_rows[0].get("eval_set", "dev") if dev_rows else "dev"
    paired = bool(train_rows) and "expected_reward" in train_rows[0]  # its rollouts search half the time by design
    rollout_lines = {"reward": ("expected_reward", "rollouts, P(search)-weighted pair"),
                     "retrieval_rate": ("p_search", "rollouts, mean P(search)")} if paired else \
        {key: (key, "rollouts (sampled)") for key in ("reward", "retrieval_rate")}
    for ax, key, label in ((ax_reward, "reward", "reward"), (ax_retrieval, "retrieval_rate", "retrieval rate")):
        rollout_key, rollout_label = rollout_lines[key]
        ax.plot([r["iteration"] for r in train_rows], [r[rollout_key] for r in train_rows], ".-", label=rollout_label)
        ax.plot([r["iteration"] for r in dev_rows], [r["dev"][key] for r in dev_rows], "o-", label=f"{label_set}, greedy")
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_reward.legend()
    ax_retrieval.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
