"""A PPO run's logs: `metrics.jsonl` (one record per iteration, and one per in-run evaluation, which has "dev") and
`rollouts.jsonl` (every episode the policy played, for reading, not for resuming), their curves as a PNG, and the
iteration means that go into a record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checkpoints import truncate_log

ROLLOUT_FIELDS = (
    "id",
    "question",
    "golds",
    "queries",
    "answer",
    "well_formed",
    "retrievals",
    "search_probabilities",
    "em",
    "f1",
    "reward",
)
"""What `rollouts.jsonl` keeps of each episode, with its iteration and KL to the reference."""


class RunLog:
    """The run's two JSONL logs, appended to by the main process only (elsewhere every write is a no-op). A resumed
    run first cuts both back to the iteration its checkpoint holds (a fresh one empties them), so each iteration is
    logged once."""

    def __init__(self, output_dir: Path, main: bool, resumed_at: int | None = None, tracker: Any = None) -> None:
        self.output_dir, self.main, self.tracker = output_dir, main, tracker
        if main:  # a fresh run in a used folder starts its logs empty
            for name in ("metrics.jsonl", "rollouts.jsonl"):
                truncate_log(output_dir / name, "iteration", -1 if resumed_at is None else resumed_at)
        self.metrics = (output_dir / "metrics.jsonl").open("a") if main else None

    def write(self, record: dict[str, Any]) -> None:
        """Append a record to metrics.jsonl; its numbers also go to the tracker (an `Accelerator` with `log_with`),
        nested keys joined by "/", at the record's iteration."""
        if self.metrics is not None:
            self.metrics.write(json.dumps(record) + "\n")
            self.metrics.flush()
        if self.tracker is not None:
            self.tracker.log(numbers(record), step=record["iteration"])

    def rollouts(self, played: Sequence[dict[str, Any]]) -> None:
        if self.main:
            with (self.output_dir / "rollouts.jsonl").open("a") as file:
                file.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in played)

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()


def numbers(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The record's numbers, flat: {"dev": {"em": 0.1}} -> {"dev/em": 0.1}."""
    flat: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def rollout_records(episodes: Sequence[dict[str, Any]], iteration: int, kls: Sequence[float]) -> list[dict[str, Any]]:
    """The `rollouts.jsonl` record of each episode: its `ROLLOUT_FIELDS`, the iteration and its KL to the reference."""
    return [
        {**{k: e[k] for k in ROLLOUT_FIELDS}, "iteration": iteration, "kl": kl}
        for e, kl in zip(episodes, kls, strict=True)
    ]


def summarize_rollout(episodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Iteration means over every process's episodes (`p_search`: the first decision's P(search))."""
    n = max(len(episodes), 1)
    first = [e["search_probabilities"][0] for e in episodes if e["search_probabilities"]]
    return {
        "episodes": len(episodes),
        "reward": sum(e["reward"] for e in episodes) / n,
        "em": sum(e["em"] for e in episodes) / n,
        "f1": sum(e["f1"] for e in episodes) / n,
        "retrieval_rate": sum(e["retrievals"] for e in episodes) / n,
        "format_error_rate": sum(not e["well_formed"] for e in episodes) / n,
        "kl": sum(e["kl"] for e in episodes) / n,
        "p_search": sum(first) / max(len(first), 1),
    }


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
    rollout_lines = (
        {
            "reward": ("expected_reward", "rollouts, P(search)-weighted pair"),
            "retrieval_rate": ("p_search", "rollouts, mean P(search)"),
        }
        if paired
        else {key: (key, "rollouts (sampled)") for key in ("reward", "retrieval_rate")}
    )
    for ax, key, label in ((ax_reward, "reward", "reward"), (ax_retrieval, "retrieval_rate", "retrieval rate")):
        rollout_key, rollout_label = rollout_lines[key]
        ax.plot([r["iteration"] for r in train_rows], [r[rollout_key] for r in train_rows], ".-", label=rollout_label)
        ax.plot(
            [r["iteration"] for r in dev_rows], [r["dev"][key] for r in dev_rows], "o-", label=f"{label_set}, greedy"
        )
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_reward.legend()
    ax_retrieval.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
