"""Training and evaluation for SmartRAG policies: data, evaluation, trajectories, warm-up, SFT, PPO, export."""

from .data import DATA_DIR, QAExample, dataset_path, load_qa, sample
from .evaluate import MODES, at_threshold, evaluate, means, mode_context, score_episode, summarize, summary_line

__all__ = [
    "DATA_DIR",
    "MODES",
    "QAExample",
    "at_threshold",
    "dataset_path",
    "evaluate",
    "load_qa",
    "means",
    "mode_context",
    "sample",
    "score_episode",
    "summarize",
    "summary_line",
]
