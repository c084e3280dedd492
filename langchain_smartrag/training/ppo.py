"""PPO from environment feedback: reward = answer correctness - alpha per retrieval (SmartRAG's stage 2).

One config dataclass (`ppo_config.PPOConfig`), one visible loop, CleanRL style. Each iteration:
  1. rollout   episodes through the SAME graph that serves (`trajectories.collect`: sampled, recorded); with
               `paired_decisions`, every question both ways (search first, answer first)
  2. score     segments (`segments.py`), old log-probs and values, the reference's log-probs, per-token
               rewards (environment reward - KL coefficient * KL), GAE across each episode's segments; paired
               questions give their first decision each branch's return against the pair's mean
  3. update    several epochs of clipped policy + clipped value loss over minibatches of episodes
  4. log, adapt the KL coefficient, checkpoint, and now and then evaluate on a held-apart sample

What is not the loop lives beside it: the actor-critic and the KL reference (`actor_critic.py`), which questions
train and evaluate (`questions.py`), segments as tensors (`segment_batches.py`), paired decisions
(`paired_decisions.py`), the logs (`run_log.py`) and the arithmetic (`ppo_math.py`). Under `accelerate launch`
each process collects its own share of the episodes and the gradients are averaged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from langchain_core.retrievers import BaseRetriever
from tqdm import tqdm

from langchain_smartrag import create_smartrag_graph
from langchain_smartrag.hardware import bf16_is_fast
from langchain_smartrag.retrievers import build_retriever
from langchain_smartrag.state import Decider

from .actor_critic import ActorCritic, new_value_head, reference_logits, save_policy, trainable_policy
from .checkpoints import LoopState, load_state, prepare_output_dir, save_state
from .evaluate import evaluate
from .paired_decisions import (
    branch_contexts,
    charge_decision_kls,
    expected_rewards,
    pair_decisions,
    pair_returns,
)
from .ppo_config import PPOConfig
from .ppo_math import AdaptiveKL, policy_loss, squared_log_ratio, value_loss, whiten
from .questions import iteration_examples, run_questions
from .run_log import RunLog, rollout_records, summarize_rollout
from .segment_batches import (
    batch_inputs,
    episode_advantages,
    episode_rows,
    micro_batches,
    right_align,
    split_rows,
    token_logprobs,
)
from .segments import Segment, rollout_segments
from .trajectories import RolloutContext, collect

__all__ = ["STATS", "minibatch_loss", "train"]  # the loop; import the rest from the module that defines it
STATS = ("policy_loss", "value_loss", "clip_fraction", "entropy", "approx_kl")
"""What each optimizer step logs, per completion token of its minibatch."""


def train(config: PPOConfig, retriever: BaseRetriever | None = None) -> Path:
    """Run PPO; returns the directory of the final adapter (+ value head), loadable by `SmartRAGPolicy`."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import gather_object

    trackers = [t for t in config.report_to if t != "none"]
    accelerator = Accelerator(
        cpu=not torch.accelerator.is_available(),  # two CPU processes under torchrun: gloo
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        log_with=trackers or None,
        project_dir=config.output_dir,
    )
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if config.episodes_per_iteration % (world * config.episodes_per_question):
        raise ValueError(
            f"episodes_per_iteration={config.episodes_per_iteration} must divide among {world} processes"
            + (" in pairs" if config.paired_decisions else "")
        )
    output_dir = Path(config.output_dir)
    checkpoint = prepare_output_dir(output_dir, config.resume)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = accelerator.device
    use_bf16 = config.bf16 and device.type == "cuda" and bf16_is_fast(device)

    # the environment: the questions, and the serving graph over the retriever
    train_sets, eval_examples, eval_set = run_questions(config)
    policy = trainable_policy(config)
    policy.preview = config.preview  # the protocol this policy is trained on, saved with it
    pad_id = policy.tokenizer.pad_token_id
    retriever = retriever or build_retriever(config.retriever, config.corpus, config.k)
    # a gate that reads the reader drafts greedily and rollouts sample: the action token decides in them (refit the
    # gate on the new weights after the run)
    decision: Decider | None = "token" if policy.gate is not None and policy.gate.reads_reader else None
    graph = create_smartrag_graph(
        policy,
        retriever,
        max_retrievals=config.max_retrievals,
        threshold=config.threshold,
        preview=config.preview,
        decision=decision,
    )
    rollout_context = RolloutContext(max_retrievals=config.max_retrievals, temperature=config.temperature)
    contexts = branch_contexts(rollout_context) if config.paired_decisions else [rollout_context]

    # the learner: LoRA weights + value head, one optimizer with a param group each
    value_head = new_value_head(policy, device)
    actor_critic = ActorCritic(policy.model, value_head, config.temperature)
    rates = (config.learning_rate, config.value_learning_rate)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in policy.model.parameters() if p.requires_grad], "lr": rates[0]},
            {"params": list(value_head.parameters()), "lr": rates[1]},
        ],
        weight_decay=0.0,
    )
    learner, optimizer = accelerator.prepare(actor_critic, optimizer)
    kl_control = AdaptiveKL(config.init_kl_coef, config.target_kl, config.kl_horizon)
    loop = LoopState(step=0, kl_coef=kl_control.coef, best_reward=float("-inf"))
    if checkpoint is not None:
        load_state(accelerator, checkpoint, loop)
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
            group["lr"] = rate  # the config's, not the checkpoint's: a resumed run may change them
    start, kl_control.coef, best_reward = int(loop.values["step"]), loop.values["kl_coef"], loop.values["best_reward"]
    if trackers:
        accelerator.init_trackers(
            "ppo",
            config={k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, int | float | str | bool)},
        )
    log = RunLog(
        output_dir,
        main,
        resumed_at=start if checkpoint is not None else None,
        tracker=accelerator if trackers else None,
    )

    def evaluate_and_keep_best(iteration: int) -> None:
        nonlocal best_reward
        if main and eval_examples:
            results = evaluate(
                graph,
                eval_examples,
                mode="smartrag",
                threshold=config.threshold,
                batch_size=config.rollout_batch_size,
                progress=False,
                alpha=config.alpha,
            )
            log.write(
                {
                    "iteration": iteration,
                    "eval_set": eval_set,
                    "dev": {
                        k: results[k]
                        for k in ("n", "em", "f1", "reward", "retrieval_rate", "format_error_rate", "seconds")
                    },
                }
            )
            if results["reward"] > best_reward:
                best_reward = results["reward"]
                save_policy(policy, value_head, output_dir / "best", {"iteration": iteration, "reward": best_reward})
        accelerator.wait_for_everyone()

    if start == 0:
        evaluate_and_keep_best(0)
    bar = tqdm(
        total=config.iterations, initial=start, desc="ppo", dynamic_ncols=True, disable=not (main and config.progress)
    )
    for iteration in range(start, config.iterations):
        # 1. rollout: this process's share of the iteration's questions through the graph --------------
        t0 = time.perf_counter()
        # question g of the iteration lives on process g % world, seeded by g: the same run for any world size
        questions = config.episodes_per_iteration // config.episodes_per_question
        mine = range(rank, questions, world)
        examples = iteration_examples(train_sets, iteration, questions, config.seed)
        episodes = [
            episode
            for context in contexts
            for episode in collect(  # paired: [0, n) searched first, [n, 2n) not
                graph,
                [examples[g] for g in mine],
                batch_size=config.rollout_batch_size,
                seed=[(config.seed * 100_003 + iteration) * 1_000_003 + g for g in mine],
                context=context,
                alpha=config.alpha,
                progress=False,
            )
        ]
        segments = rollout_segments(episodes, policy.encode, config.alpha)
        by_episode = episode_rows(segments, len(episodes))  # each episode's segments, in order
        t1 = time.perf_counter()

        # 2. score: old log-probs and values, reference log-probs, rewards, advantages ------------------
        old_logprobs: list[torch.Tensor] = [torch.empty(0)] * len(segments)
        old_values, ref_logprobs = list(old_logprobs), list(old_logprobs)
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
            for rows in micro_batches(segments, range(len(segments)), config.micro_batch_tokens):
                input_ids, attention_mask, width, targets, mask = batch_inputs(segments, rows, pad_id, device)
                logits, values = actor_critic(input_ids, attention_mask, width)
                reference = reference_logits(policy.model, input_ids, attention_mask, width) / config.temperature
                for i, lp, v, ref in zip(
                    rows,
                    split_rows(token_logprobs(logits, targets), mask),
                    split_rows(values, mask),
                    split_rows(token_logprobs(reference, targets), mask),
                    strict=True,
                ):
                    old_logprobs[i], old_values[i], ref_logprobs[i] = lp, v, ref
        kl_tokens = [old - ref for old, ref in zip(old_logprobs, ref_logprobs, strict=True)]
        rewards = [
            torch.tensor(s.scores, device=device) - kl_control.coef * kl
            for s, kl in zip(segments, kl_tokens, strict=True)
        ]
        advantages, returns = episode_advantages(by_episode, rewards, old_values, config.gamma, config.lam)
        scale = torch.tensor(1.0, device=device)
        if config.whiten_advantages:  # over every process's tokens (each joins the reduce, even with none)
            flat = torch.cat(advantages) if advantages else torch.zeros(0, device=device)
            total = accelerator.reduce(
                torch.stack([flat.sum(), (flat**2).sum(), torch.tensor(float(len(flat)), device=device)])
            )
            mean = total[0] / total[2]
            var = total[1] / total[2] - mean**2
            advantages = [whiten(a, torch.ones_like(a), mean, var) for a in advantages]
            scale = torch.rsqrt(var + 1e-8)
        if config.paired_decisions:  # each first decision: its branch's return against the pair's, scaled like the rest
            pairs = pair_returns(episodes, by_episode, rewards)
            pair_decisions(pairs, segments, by_episode, advantages, scale)
        t2 = time.perf_counter()

        # 3. update: epochs x minibatches of episodes; each minibatch is one optimizer step -------------
        warmup = iteration < config.value_warmup_iterations  # the value head alone learns
        stats: dict[str, list[float]] = {k: [] for k in STATS}
        update_tokens = 0
        for epoch in range(config.ppo_epochs):
            order = torch.randperm(
                config.episodes_per_iteration,
                generator=torch.Generator().manual_seed((config.seed * 100_003 + iteration) * 101 + epoch),
            ).tolist()
            for first in range(0, len(order), config.minibatch_episodes):
                # a minibatch is a slice of the global episode order; each process trains its own episodes of it
                step_episodes = [
                    g // world for g in order[first : first + config.minibatch_episodes] if g % world == rank
                ]
                rows_in_step = [i for e in step_episodes for i in by_episode[e]]
                step_tokens = accelerator.reduce(
                    torch.tensor(float(sum(len(segments[i].completion_ids) for i in rows_in_step)), device=device)
                ).clamp(min=1)
                passes = list(micro_batches(segments, rows_in_step, config.micro_batch_tokens))
                sums = torch.zeros(len(stats), device=device)
                if not passes:  # none of this minibatch's episodes are here: still join the gradient all-reduce
                    logits, values = learner(
                        torch.full((1, 2), pad_id, device=device), torch.ones((1, 2), device=device), 1
                    )
                    accelerator.backward(0.0 * (logits.sum() + values.sum()))
                for n, rows in enumerate(passes):
                    sync = accelerator.no_sync(learner) if n < len(passes) - 1 else contextlib.nullcontext()
                    with sync:
                        loss, pass_sums, tokens = minibatch_loss(
                            learner,
                            segments,
                            rows,
                            pad_id,
                            device,
                            use_bf16,
                            old_logprobs,
                            old_values,
                            advantages,
                            returns,
                            config,
                            warmup,
                        )
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

        # 4. log, adapt the KL coefficient, checkpoint, evaluate ----------------------------------------
        episode_kl = [float(sum(kl_tokens[i].sum() for i in rows)) for rows in by_episode]
        if config.paired_decisions:  # forced decision tokens are not policy samples: log their exact KL instead
            charge_decision_kls(episode_kl, pairs, segments, by_episode, old_logprobs, ref_logprobs, kl_tokens)
        played = gather_object(rollout_records(episodes, iteration + 1, episode_kl))
        rollout = summarize_rollout(played)
        if config.paired_decisions:
            expected = gather_object(expected_rewards(episodes, pairs))
            rollout["expected_reward"] = sum(expected) / max(len(expected), 1)
        log.rollouts(played)
        log.write(
            {
                "iteration": iteration + 1,
                **rollout,
                "kl_coef": kl_control.coef,
                "value_warmup": warmup,
                "learning_rate": optimizer.param_groups[0]["lr"],
                **{k: sum(v) / len(v) if v else None for k, v in stats.items()},
                "update_tokens_per_second": sum(gather_object([update_tokens])) / max(t3 - t2, 1e-9),
                "seconds": {"rollout": t1 - t0, "score": t2 - t1, "update": t3 - t2},
            }
        )
        kl_control.update(rollout["kl"], rollout["episodes"])
        bar.update(1)
        bar.set_postfix(
            reward=f"{rollout['reward']:.3f}", retrieval=f"{rollout['retrieval_rate']:.2f}", kl=f"{rollout['kl']:.3f}"
        )
        if (iteration + 1) % config.eval_every == 0 or iteration + 1 == config.iterations:
            evaluate_and_keep_best(iteration + 1)
        if (iteration + 1) % config.save_every == 0 or iteration + 1 == config.iterations:
            loop.values.update(step=iteration + 1, kl_coef=kl_control.coef, best_reward=best_reward)
            save_state(accelerator, output_dir, iteration + 1, config.keep_checkpoints, loop)
    bar.close()
    final = output_dir / "final"
    if main:
        log.close()
        save_policy(policy, value_head, final, {"iteration": config.iterations})
    accelerator.wait_for_everyone()
    if trackers:
        accelerator.end_training()  # closes the trackers (and, under torchrun, the process group): last
    return final


def minibatch_loss(
    learner: torch.nn.Module,
    segments: Sequence[Segment],
    rows: Sequence[int],
    pad_id: int,
    device: torch.device,
    use_bf16: bool,
    old_logprobs: Sequence[torch.Tensor],
    old_values: Sequence[torch.Tensor],
    advantages: Sequence[torch.Tensor],
    returns: Sequence[torch.Tensor],
    config: PPOConfig,
    warmup: bool,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One pass's summed loss (the value loss alone in the value warm-up, which trains the head only), its summed
    `STATS` and its tokens."""
    input_ids, attention_mask, width, targets, mask = batch_inputs(segments, rows, pad_id, device)
    with torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
        logits, values = learner(input_ids, attention_mask, width, train_body=not warmup)
    logprobs = token_logprobs(logits, targets)
    old = right_align([old_logprobs[i] for i in rows], width)
    pg_sum, clipped = policy_loss(
        logprobs, old, right_align([advantages[i] for i in rows], width), mask, config.clip_range
    )
    vf_sum = value_loss(
        values,
        right_align([old_values[i] for i in rows], width),
        right_align([returns[i] for i in rows], width),
        mask,
        config.value_clip_range,
    )
    loss = config.vf_coef * vf_sum if warmup else pg_sum + config.vf_coef * vf_sum
    with torch.no_grad():
        probs = torch.softmax(logits, dim=-1)
        entropy = ((torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)) * mask).sum()
        approx_kl = squared_log_ratio(logprobs, old, mask)
    sums = torch.stack([pg_sum.detach(), vf_sum.detach(), clipped, entropy, approx_kl])
    return loss, sums, int(attention_mask.sum())
