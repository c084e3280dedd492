"""PPO training speed on the embedded model: where an iteration's time goes, and how fast its update runs.

    python benchmarks/train_speed.py [--init runs/sft-embedded/final] [--episodes 32] [--repeats 3]

1. Two PPO iterations (`training.ppo.train`, the real loop) on HotpotQA train questions: seconds spent in
   rollout (the graph, sampling), scoring (old/reference log-probs, values, advantages) and update.
2. The update's tokens/s against a raw forward+backward of the SAME sequences: one rollout's segments,
   grouped into the same length-sorted passes; PPO = `minibatch_loss` (policy + value + entropy) +
   backward + optimizer steps, raw = the causal LM's own forward (logits on the completion positions
   only, as HF computes them with `logits_to_keep`) + cross-entropy + backward. Best of `--repeats`.
Writes benchmarks/results/train_speed.json. Target: the update at >= 70% of raw.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch

from langchain_smartrag import create_smartrag_graph
from langchain_smartrag.retrievers import build_retriever
from langchain_smartrag.training.actor_critic import ActorCritic, trainable_policy
from langchain_smartrag.training.data import dataset_path, load_qa, sample
from langchain_smartrag.training.ppo import minibatch_loss, train
from langchain_smartrag.training.ppo_config import PPOConfig
from langchain_smartrag.training.run_log import read_metrics
from langchain_smartrag.training.segment_batches import batch_inputs, micro_batches
from langchain_smartrag.training.segments import rollout_segments
from langchain_smartrag.training.trajectories import collect

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"


def update_speed(config: PPOConfig, episodes: int, repeats: int) -> dict[str, float]:
    """Tokens/s of one PPO epoch over a rollout's segments, and of a raw forward+backward over the same passes."""
    policy = trainable_policy(config)
    graph = create_smartrag_graph(policy, build_retriever("local", None, config.k))
    examples = sample(load_qa(dataset_path("hotpotqa", "train")), episodes, seed=1)
    segments = rollout_segments(collect(graph, examples, batch_size=episodes, progress=False), policy.encode)
    pad_id, device = policy.tokenizer.pad_token_id, policy.model.device
    value_head = torch.nn.Linear(policy.model.config.hidden_size, 1)
    learner = ActorCritic(policy.model, value_head)
    optimizer = torch.optim.AdamW([p for p in learner.parameters() if p.requires_grad], lr=1e-7)
    passes = list(micro_batches(segments, range(len(segments)), config.micro_batch_tokens))
    zeros = [torch.zeros(len(s.completion_ids)) for s in segments]
    tokens = sum(len(s.prompt_ids) + len(s.completion_ids) for s in segments)

    def ppo_epoch() -> None:
        for rows in passes:  # one optimizer step per pass: the most steps the real loop could take
            loss, _, _ = minibatch_loss(
                learner, segments, rows, pad_id, device, config.bf16, zeros, zeros, zeros, zeros, config, warmup=False
            )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def raw_epoch() -> None:
        for rows in passes:
            input_ids, attention_mask, width, targets, mask = batch_inputs(segments, rows, pad_id, device)
            with torch.autocast(device.type, torch.bfloat16, enabled=config.bf16):
                logits = policy.model(
                    input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=width + 1
                ).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().flatten(0, 1), targets.flatten(), reduction="none"
            )
            (loss * mask.flatten()).sum().backward()
            policy.model.zero_grad(set_to_none=True)

    best = {}
    for name, run in (("raw", raw_epoch), ("ppo", ppo_epoch)) * repeats:
        start = time.perf_counter()
        run()
        best[name] = max(best.get(name, 0.0), tokens / (time.perf_counter() - start))
    return {
        "segments": len(segments),
        "tokens": tokens,
        "passes": len(passes),
        "raw_tokens_per_second": best["raw"],
        "ppo_tokens_per_second": best["ppo"],
        "ppo_over_raw": best["ppo"] / best["raw"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init", default="runs/sft-embedded/final", help="SFT adapter (missing: a fresh LoRA)")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    init = args.init if Path(args.init, "adapter_config.json").exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        config = PPOConfig(
            output_dir=tmp,
            init=init,
            datasets=["hotpotqa"],
            dev_dataset=None,
            iterations=2,
            episodes_per_iteration=args.episodes,
            rollout_batch_size=args.episodes,
            value_warmup_iterations=0,
            progress=False,
        )
        train(config)
        iterations, _ = read_metrics(tmp)
    phases = {phase: min(r["seconds"][phase] for r in iterations) for phase in ("rollout", "score", "update")}
    speed = update_speed(config, args.episodes, args.repeats)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "model": "SmolLM2-135M-Instruct (embedded) + " + (f"adapter {init}" if init else "fresh LoRA r16"),
        "episodes_per_iteration": args.episodes,
        "ppo_epochs": config.ppo_epochs,
        "iteration_seconds": phases,
        "iteration_update_tokens_per_second": max(r["update_tokens_per_second"] for r in iterations),
        "update_vs_raw": speed,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    total = sum(phases.values())
    print(" | ".join(f"{k} {v:.1f} s ({v / total:.0%})" for k, v in phases.items()) + f" | iteration {total:.1f} s")
    print(
        f"update {speed['ppo_tokens_per_second']:.0f} tok/s vs raw forward+backward "
        f"{speed['raw_tokens_per_second']:.0f} tok/s: {speed['ppo_over_raw']:.0%} (target >= 70%)"
    )


if __name__ == "__main__":
    main()
