"""Is bf16 autocast faster than fp32 on this machine? Greedy answers of the embedded model, both ways, one run.

    python experiments/bf16-speed/bf16_speed.py [--n 16] [--repeats 2]

`SmartRAGPolicy` turns autocast on by default only where `bf16_is_fast` says the hardware has native bf16
(AVX-512 or AMX CPUs, CUDA GPUs with bf16); this prints both timings (best of `--repeats`) and that verdict.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from langchain_smartrag import ANSWER, SmartRAGPolicy
from langchain_smartrag.hardware import bf16_is_fast
from langchain_smartrag.training import dataset_path, load_qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="HotpotQA dev questions, answered in one batch")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    policy = SmartRAGPolicy.embedded(trained=False)
    prompts = [policy.prompt(e.question) for e in load_qa(dataset_path("hotpotqa", "dev"))[: args.n]]
    seconds = {}
    for autocast in (False, True):
        policy.autocast = autocast
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            policy.generate_batch(prompts, ANSWER, max_new_tokens=16)
            timings.append(time.perf_counter() - start)
        seconds[autocast] = min(timings)
    print(
        f"{platform.machine()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}; {args.n} greedy "
        f"answers, up to 16 tokens, best of {args.repeats}: fp32 {seconds[False]:.2f} s, "
        f"bf16 autocast {seconds[True]:.2f} s (bf16 / fp32 = {seconds[True] / seconds[False]:.2f}); "
        f"bf16_is_fast: {bf16_is_fast('cpu')}"
    )


if __name__ == "__main__":
    main()
