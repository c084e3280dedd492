"""Could a decision tell, from the question alone, whether a search will pay? A linear probe on train rollouts.

    python experiments/warmup-mix/decision_probe.py runs/smartrag-paired [--policy runs/sft-embedded/final] [--folds 5]

Labels come from a `paired_decisions` run's rollouts (train questions, each played both ways): "search paid"
when the searched-first episode scored higher. Features: the policy's last hidden state at the decision prompt
(what its decision reads), or a one-hot of the data set and PopQA template (what a bias per question form can
know). A logistic regression per feature set, cross-validated by question (a question's repeats stay in one
fold): its AUC says how much of "when" is there to learn, next to the AUC of the policy's own P(search) then.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: _shared.py

import torch
from _shared import auc, paired_episodes

from langchain_smartrag import SmartRAGPolicy
from langchain_smartrag.tensors import left_pad, position_ids
from langchain_smartrag.training import dataset_path, load_qa


def hidden_states(policy: SmartRAGPolicy, questions: list[str], batch: int = 16) -> torch.Tensor:
    """The last layer's state at each decision prompt's last token (the position that predicts the action)."""
    rows = []
    for first in range(0, len(questions), batch):
        ids = [policy.encode(policy.prompt(q)) for q in questions[first : first + batch]]
        input_ids, mask = left_pad(ids, policy.tokenizer.pad_token_id, policy.model.device)
        with torch.no_grad():
            out = policy.model(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True
            )
        rows.append(out.hidden_states[-1][:, -1].float())
    return torch.cat(rows)


def fit_logistic(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An L2 logistic regression by L-BFGS, the rare positives weighted up to balance the classes: (weights, bias)."""
    weights = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=200)
    positive_weight = (1 - y).sum() / y.sum().clamp(min=1)

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = (
            torch.nn.functional.binary_cross_entropy_with_logits(x @ weights + bias, y, pos_weight=positive_weight)
            + 1e-2 * weights.pow(2).sum()
        )
        value.backward()
        return value

    optimizer.step(loss)
    return weights.detach(), bias.detach()


def probe_auc(features: torch.Tensor, labels: list[bool], groups: list[str], folds: int, seed: int = 0) -> float:
    """Cross-validated AUC of an L2 logistic regression (features standardised on each training fold)."""
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    fold_of = {name: i % folds for i, name in enumerate(names)}
    y = torch.tensor(labels, dtype=torch.float)
    scores = torch.zeros(len(labels))
    for fold in range(folds):
        test = torch.tensor([fold_of[g] == fold for g in groups])
        mean, std = features[~test].mean(0), features[~test].std(0) + 1e-6
        x = (features - mean) / std
        weights, bias = fit_logistic(x[~test], y[~test])
        scores[test] = x[test] @ weights + bias
    return auc(scores.tolist(), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--policy", default="runs/sft-embedded/final")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    popqa = {e.id: e for e in load_qa(dataset_path("popqa", "train"))}
    pairs = [(searched, answered) for _, searched, answered in paired_episodes(args.run)]
    labels = [searched["reward"] > answered["reward"] for searched, answered in pairs]
    groups = [searched["id"] for searched, _ in pairs]
    forms = [g.split("-")[0] + (":" + popqa[g].extra["prop"] if g in popqa else "") for g in groups]
    vocabulary = sorted(set(forms))
    one_hot = torch.tensor([[float(f == v) for v in vocabulary] for f in forms])
    states = hidden_states(SmartRAGPolicy.from_pretrained(args.policy, merge=True), [s["question"] for s, _ in pairs])
    print(f"{len(pairs)} paired questions from {args.run}, search paid on {sum(labels)}; {args.folds}-fold by question")
    print('| decision signal | AUC for "search paid" |\n|---|---|')
    print(
        f"| the run's own P(search) at the time | {auc([s['search_probabilities'][0] for s, _ in pairs], labels):.2f} |"
    )
    print(
        f"| probe: data set + PopQA template (one-hot, {len(vocabulary)}) "
        f"| {probe_auc(one_hot, labels, groups, args.folds):.2f} |"
    )
    print(
        f"| probe: {args.policy} hidden state ({states.shape[1]}) "
        f"| {probe_auc(states, labels, groups, args.folds):.2f} |"
    )


if __name__ == "__main__":
    main()
