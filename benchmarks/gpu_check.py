"""GPU check: serving, PPO and SFT speed of the embedded model (SmolLM2-135M-Instruct) on one CUDA device, in minutes.

    benchmarks/gpu_check.sh [--n 64] [--repeats 2] [--output benchmarks/results/gpu_check.json]

Measures, each after a warm-up and on its own (a failure is recorded as {"error": ...} and the rest still run):
  serving           questions/s on N HotpotQA dev questions (BM25 over the bundled corpus, greedy) for sequential
                    `graph.invoke`, `graph.batch`, `graph.abatch` and the raw batched policy calls without the graph
                    (retrieval not included): `serving.py`'s modes (a)-(d), its functions reused;
  sft               tokens/s of 10 LoRA steps of `training.sft.train` on warm-up rows built from the dev questions;
  ppo               seconds per iteration and update tokens/s of two iterations of the shipped recipe
                    (langchain_smartrag/training/configs/smartrag_paired.yaml: 32 questions, each played both
                    ways = 64 episodes),
                    from the recipe's SFT adapter if runs/ holds it, else the shipped one; no in-run evaluation.
train_speed.py's update-vs-raw comparison is not run: its `update_speed` builds the value head and the zero
tensors on the CPU, so it runs on CPU machines only.
Writes the JSON to --output and prints it. The numbers are only meaningful on CUDA: without a CUDA device the
script says so and exits 0 having measured nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # serving.py, whatever the working directory


def measure(results: dict, name: str, run, *args) -> None:
    """results[name] = run(*args) and its seconds, or the error it raised (the other measurements still run)."""
    print(f"--- {name}", flush=True)
    start = time.perf_counter()
    try:
        results[name] = run(*args)
    except Exception as error:  # noqa: BLE001 -- one broken measurement must not cost the others
        traceback.print_exc()
        results[name] = {"error": f"{type(error).__name__}: {error}"}
    results[name]["seconds"] = round(time.perf_counter() - start, 1)


def fresh_accelerate() -> None:
    """Forget accelerate's process-wide state: PPO's `Accelerator()` and the SFT trainer's (bf16) refuse each
    other's."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@functools.cache
def policy_and_retriever(batch_size: int):
    """The bare embedded model on CUDA at `from_pretrained`'s default dtype (bf16 where supported), BM25 over the
    bundled corpus: what serving.py measures (loaded here, not in setup, so a failure costs only its measurements)."""
    from langchain_smartrag import BM25Retriever, SmartRAGPolicy

    policy = SmartRAGPolicy.from_pretrained("embedded", device="cuda", max_batch_size=batch_size)
    return policy, BM25Retriever.bundled(k=4)


def serving_speed(questions: list[str], repeats: int) -> dict:
    from serving import best_rate, raw_policy_calls

    from langchain_smartrag import create_smartrag_graph

    n = len(questions)
    policy, retriever = policy_and_retriever(n)
    graph = create_smartrag_graph(policy, retriever)
    inputs = [{"question": q} for q in questions]
    states = graph.batch(inputs, {"max_concurrency": n})  # warm-up, and the prompts the raw calls replay
    graph.invoke(inputs[0])
    rates = {
        "sequential_invoke": best_rate("(a) sequential invoke", lambda: [graph.invoke(x) for x in inputs], n, 1),
        "graph_batch": best_rate("(b) graph.batch", lambda: graph.batch(inputs, {"max_concurrency": n}), n, repeats),
        "graph_abatch": best_rate("(c) graph.abatch", lambda: asyncio.run(graph.abatch(inputs)), n, repeats),
        "raw_batched_policy": best_rate(
            "(d) raw batched policy calls", lambda: raw_policy_calls(policy, questions, states), n, repeats
        ),
    }
    return {
        "dtype": str(policy.model.dtype),
        "autocast_bf16": policy.autocast,
        "questions": n,
        "retrieval_rate": sum(s["retrievals"] for s in states) / n,
        "questions_per_second": rates,
    }


def sft_speed(questions: list[str], answers: list[str], steps: int = 10) -> dict:
    from langchain_smartrag import ANSWER
    from langchain_smartrag.training.sft import SFTConfig, train
    from langchain_smartrag.training.warmup import WarmupExample, write_warmup

    policy, retriever = policy_and_retriever(len(questions))  # its prompts; SFT loads the model afresh to train
    fresh_accelerate()
    rows = [
        row
        for i, (q, a) in enumerate(zip(questions, answers, strict=True))
        for row in (
            WarmupExample("direct", policy.prompt(q), f"{ANSWER} {a}", str(i)),
            WarmupExample("observed", policy.prompt(q, retriever.invoke(q)), f"{ANSWER} {a}", str(i)),
        )
    ]
    with tempfile.TemporaryDirectory() as tmp:
        write_warmup(rows, {}, Path(tmp, "warmup.jsonl"))
        train(
            SFTConfig(
                data=str(Path(tmp, "warmup.jsonl")),
                base_model="embedded-base",
                output_dir=str(Path(tmp, "sft")),
                max_steps=steps,
                batch_size=8,
                log_every=5,
            )
        )
        last = [json.loads(line) for line in Path(tmp, "sft", "metrics.jsonl").read_text().splitlines()][-1]
    # tokens/s as sft.py logs it: every token trained on since the run began (the first step's warm-up included)
    return {"rows": len(rows), "batch_size": 8, "steps": last["step"], "tokens_per_second": last["tokens_per_second"]}


def ppo_config(tmp: str):
    import yaml

    from langchain_smartrag.models import TRAINED_ADAPTER
    from langchain_smartrag.training.ppo_config import PPOConfig

    recipe = yaml.safe_load((ROOT / "langchain_smartrag" / "training" / "configs" / "smartrag_paired.yaml").read_text())
    init = ROOT / recipe["init"] if (ROOT / recipe["init"] / "adapter_config.json").exists() else TRAINED_ADAPTER
    return PPOConfig(
        **{
            **recipe,
            "output_dir": tmp,
            "init": str(init),
            "iterations": 2,
            "validation_per_dataset": 0,
            "dev_dataset": None,
            "value_warmup_iterations": 0,
            "progress": False,
        }
    )


def ppo_speed() -> dict:
    from langchain_smartrag.training.ppo import train
    from langchain_smartrag.training.run_log import read_metrics

    fresh_accelerate()
    with tempfile.TemporaryDirectory() as tmp:
        config = ppo_config(tmp)
        train(config)
        iterations, _ = read_metrics(tmp)
    # ppo.train logs per iteration its phases' seconds and update_tokens_per_second: every non-pad token of every
    # forward+backward pass (prompt and completion, all `ppo_epochs`) over the update phase's seconds
    return {
        "init": config.init,
        "episodes_per_iteration": config.episodes_per_iteration,
        "questions_per_iteration": config.episodes_per_iteration // config.episodes_per_question,
        "per_iteration": [
            {"seconds": r["seconds"], "update_tokens_per_second": r["update_tokens_per_second"]} for r in iterations
        ],
        "seconds_per_iteration": min(sum(r["seconds"].values()) for r in iterations),
        "update_tokens_per_second": max(r["update_tokens_per_second"] for r in iterations),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="dev questions for serving and the SFT rows")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per batched mode (best kept)")
    parser.add_argument("--output", default=str(HERE / "results" / "gpu_check.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device, nothing measured (these numbers only mean something on a GPU)")
        return 0
    warnings.filterwarnings("ignore")
    import transformers
    from serving import DATA

    from langchain_smartrag.training.data import load_qa

    start = time.perf_counter()
    examples = load_qa(DATA / "hotpotqa" / "dev.jsonl")[: args.n]
    questions, answers = [e.question for e in examples], [e.answers[0] for e in examples]
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "model": "SmolLM2-135M-Instruct (embedded)",
    }
    measure(results, "serving", serving_speed, questions, args.repeats)
    results["dtype"] = results["serving"].get("dtype")  # from_pretrained's default on this GPU; None if it failed
    measure(results, "sft", sft_speed, questions, answers)
    measure(results, "ppo", ppo_speed)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
