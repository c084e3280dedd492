"""Training and evaluation for SmartRAG policies: data, evaluation, trajectories, warm-up, SFT, PPO, export."""

from .data import DATA_DIR, QAExample, dataset_path, load_qa, sample
from .evaluate import MODES, evaluate, mode_context, score_episode, summarize, summary_line

__all__ = [
    "DATA_DIR",
    "MODES",
    "QAExample",
    "dataset_path",
    "evaluate",
    "load_qa",
    "mode_context",
    "sample",
    "score_episode",
    "summarize",
    "summary_line",
]
