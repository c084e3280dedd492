"""Which questions PPO trains and evaluates on: the training sets (all, or only those the bundled corpus covers),
the held-out validation sample that replaces dev for choosing `best/`, the dev sample, and each iteration's draw."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import QAExample, dataset_path, load_qa, sample
from .ppo_config import PPOConfig

VALIDATION = "validation (held-out train)"
"""The `eval_set` of in-run evaluations on held-out training questions (else "dev")."""


def covered(example: QAExample) -> bool:
    """Whether the bundled corpus holds the evidence (PopQA: `subject_in_local_corpus`, HotpotQA: `has_context`)."""
    return bool(example.extra.get("subject_in_local_corpus", example.extra.get("has_context", True)))


def load_questions(
    data: str | None, datasets: Sequence[str], split: str, covered_only: bool | Sequence[str]
) -> list[list[QAExample]]:
    """Training questions, one list per data set (or one for a QA file); `covered_only`: True for every data set,
    or the names of those that keep only covered questions."""
    if data is not None:
        return [load_qa(data)]
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
    left: list[list[QAExample]] = []
    held: list[QAExample] = []
    for examples in sets:
        if len(examples) <= per_set:
            raise ValueError(
                f"validation_per_dataset={per_set} would leave nothing to train on ({len(examples)} questions)"
            )
        chosen = {e.id for e in sample(examples, per_set, seed=seed)}
        left.append([e for e in examples if e.id not in chosen])
        held.extend(e for e in examples if e.id in chosen)
    return left, held


def dev_questions(config: PPOConfig) -> list[QAExample]:
    if config.dev_data:
        examples = load_qa(config.dev_data)
    elif config.dev_dataset is not None:
        examples = load_qa(dataset_path(config.dev_dataset, "dev"))
    else:
        return []
    return sample(examples, config.dev_limit, seed=config.seed)


def run_questions(config: PPOConfig) -> tuple[list[list[QAExample]], list[QAExample], str]:
    """(the training sets, less any held-out questions; the in-run evaluation's questions; their `eval_set` name):
    the held-out validation sample with `validation_per_dataset`, else the dev sample."""
    train_sets = load_questions(config.data, config.datasets, config.split, config.covered_only)
    train_sets, validation = hold_out(train_sets, config.validation_per_dataset, validation_seed(config))
    return train_sets, validation or dev_questions(config), VALIDATION if validation else "dev"


def iteration_examples(sets: Sequence[Sequence[QAExample]], iteration: int, count: int, seed: int) -> list[QAExample]:
    """One iteration's questions: the data sets take turns, one question each whatever its size, and each is read as
    consecutive slices of a permutation reshuffled every pass over it."""
    orders: dict[tuple[int, int], list[int]] = {}
    chosen = []
    for position in range(iteration * count, (iteration + 1) * count):
        index, which = divmod(position, len(sets))
        epoch, offset = divmod(index, len(sets[which]))
        if (which, epoch) not in orders:
            generator = torch.Generator().manual_seed(seed * 31 + epoch * 7919 + which)
            orders[which, epoch] = torch.randperm(len(sets[which]), generator=generator).tolist()
        chosen.append(sets[which][orders[which, epoch][offset]])
    return chosen
