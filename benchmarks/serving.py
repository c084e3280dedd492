"""Serving throughput of the SmartRAG graph on the embedded model, against the raw batched policy calls.

    python benchmarks/serving.py [--n 32] [--repeats 2] [--dataset hotpotqa]

Modes, each answering the same N dev questions with BM25 over the bundled corpus (greedy, so every mode
computes the same tokens):
  (a) sequential `graph.invoke`;  (b) `graph.batch` (max_concurrency=N);  (b') `graph.batch` with LangChain's
      default config (the graph's own default: the policy's max_batch_size);  (c) `graph.abatch`;
  (d) the raw policy calls alone: `search_probability_batch` / `generate_batch` on exactly the prompts the
      graph built, phase by phase, with no graph, no threads and no coalescing (retrieval not included);
  (e) the peer: what a LangChain user would otherwise build with the same model and retriever, a plain RAG
      chain (retriever | prompt | langchain-huggingface's `HuggingFacePipeline`, batch size N) with `.batch`;
      it always retrieves and answers in one generation, no decision.
Prints questions/s per mode (best of `--repeats`) and the ratios (b)/(a), (b)/(d) and (b)/(e).

With `--endpoint URL` (a server speaking the OpenAI-compatible completions API, serving the same base model under
`--endpoint-model`, e.g. `python -m llama_cpp.server --model <the embedded GGUF> --model_alias smollm2`), two more
rows run the same graph on `SmartRAGEndpointPolicy`: (f) 1 caller (sequential invoke), (g) N callers (graph.batch).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
import warnings

import torch
from langchain_core.runnables import Runnable

from langchain_smartrag import (
    ANSWER,
    SEARCH,
    BM25Retriever,
    SmartRAGEndpointPolicy,
    SmartRAGPolicy,
    create_smartrag_graph,
)
from langchain_smartrag.jsonl import read_jsonl
from langchain_smartrag.training import DATA_DIR as DATA


def raw_policy_calls(policy: SmartRAGPolicy, questions: list[str], states: list[dict]) -> None:
    """Replay the graph's policy work as plain batched calls: decide, rewrite, decide-after-observation, answer."""
    first = [policy.prompt(q) for q in questions]
    policy.search_probability_batch(first)
    searched = [i for i, s in enumerate(states) if s["retrievals"]]
    policy.generate_batch([first[i] for i in searched], SEARCH)
    # with max_retrievals=1 the second decision is forced: no model call, as in the graph
    policy.generate_batch([policy.prompt(s["question"], s["documents"]) for s in states], ANSWER)


def plain_rag_chain(policy: SmartRAGPolicy, retriever: BM25Retriever, batch_size: int) -> Runnable:
    """retriever | prompt | HuggingFacePipeline on the policy's own model and tokenizer (greedy, same token budget)."""
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_huggingface import HuggingFacePipeline
    from transformers import pipeline

    generator = pipeline(
        "text-generation",
        model=policy.model,
        tokenizer=policy.tokenizer,
        max_new_tokens=policy.max_new_tokens,
        do_sample=False,
        return_full_text=False,
    )
    llm = HuggingFacePipeline(pipeline=generator, batch_size=batch_size)

    def prompt(inputs: dict) -> str:
        context = "\n".join(d.page_content for d in inputs["documents"])
        message = f"Answer the question briefly from the context.\nContext:\n{context}\nQuestion: {inputs['question']}"
        return policy.tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )

    return {"documents": retriever, "question": RunnablePassthrough()} | RunnableLambda(prompt) | llm


def best_rate(label: str, run, n: int, repeats: int) -> float:
    seconds = min(_timed(run) for _ in range(repeats))
    print(f"{label:<40} {n / seconds:6.2f} questions/s  ({seconds:.1f} s)", flush=True)
    return n / seconds


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dataset", default="hotpotqa")
    parser.add_argument("--endpoint", help="base URL of a completions server serving the base model")
    parser.add_argument("--endpoint-model", default="smollm2", help="the model's name on that server")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    questions = [row["question"] for _, row in read_jsonl(DATA / args.dataset / "dev.jsonl")][: args.n]
    policy = SmartRAGPolicy.embedded(trained=False, max_batch_size=args.n)  # as measured in the README
    retriever = BM25Retriever.bundled(k=4)
    graph = create_smartrag_graph(policy, retriever)
    inputs = [{"question": q} for q in questions]
    states = graph.batch(inputs, {"max_concurrency": args.n})  # warm-up, and the prompts for (d)
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"SmolLM2-135M-Instruct ({'bf16 autocast' if policy.autocast else 'fp32'}), {args.n} {args.dataset} dev "
        f"questions, retrieval rate {sum(s['retrievals'] for s in states) / args.n:.2f}",
        flush=True,
    )

    rate_a = best_rate("(a) sequential invoke", lambda: [graph.invoke(x) for x in inputs], args.n, args.repeats)
    rate_b = best_rate(
        "(b) graph.batch", lambda: graph.batch(inputs, {"max_concurrency": args.n}), args.n, args.repeats
    )
    best_rate("(b') graph.batch, default config", lambda: graph.batch(inputs), args.n, args.repeats)
    rate_c = best_rate("(c) graph.abatch", lambda: asyncio.run(graph.abatch(inputs)), args.n, args.repeats)
    rate_d = best_rate(
        "(d) raw batched policy calls", lambda: raw_policy_calls(policy, questions, states), args.n, args.repeats
    )
    chain = plain_rag_chain(policy, retriever, args.n)
    rate_e = best_rate("(e) peer: plain RAG chain, .batch", lambda: chain.batch(questions), args.n, args.repeats)
    if args.endpoint:
        served = SmartRAGEndpointPolicy(args.endpoint, args.endpoint_model, tokenizer=policy.tokenizer, timeout=600)
        on_server = create_smartrag_graph(served, retriever)
        on_server.batch(inputs[:2])  # warm-up
        rate_f = best_rate(
            "(f) endpoint, 1 caller", lambda: [on_server.invoke(x) for x in inputs], args.n, args.repeats
        )
        rate_g = best_rate(
            f"(g) endpoint, {args.n} callers",
            lambda: on_server.batch(inputs, {"max_concurrency": args.n}),
            args.n,
            args.repeats,
        )
        print(f"(g)/(f) = {rate_g / rate_f:.2f}x   (f)/(a) = {rate_f / rate_a:.2f}x   (g)/(b) = {rate_g / rate_b:.2f}x")
    print(
        f"(b)/(a) = {rate_b / rate_a:.2f}x   (c)/(a) = {rate_c / rate_a:.2f}x   (b)/(e) = {rate_b / rate_e:.2f}x   "
        f"graph overhead over raw calls: (d)/(b) - 1 = {rate_d / rate_b - 1:+.1%}"
    )


if __name__ == "__main__":
    sys.exit(main())
