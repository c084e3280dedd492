"""PPO's one config: every setting of a run (`smartrag train ppo --config FILE.yaml`, each field also a flag), checked
when it is made, so a YAML file and a flag meet the same refusal before any model loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_smartrag.scoring import ALPHA

from .config import require_counts


@dataclass
class PPOConfig:
    output_dir: str = "runs/ppo"
    init: str | None = None
    """The SFT adapter to start from (and to stay near: it is the KL reference). None: a fresh LoRA."""
    base_model: str = "embedded-base"
    """The model under a fresh LoRA when `init` is None (`embedded-base`, a directory or a hub id)."""
    lora_r: int = 16
    lora_alpha: int = 32
    # data and environment
    datasets: list[str] = field(default_factory=lambda: ["popqa", "ambignq", "hotpotqa"])
    """Train splits of the repository's data sets; they take turns, one question each, in every iteration."""
    split: str = "train"
    covered_only: bool | list[str] = True
    """Only questions whose evidence the bundled corpus holds (a list: only in those data sets). Which questions a
    corpus covers is part of *when* to search, so a policy trained on covered questions only never learns it."""
    data: str | None = None
    """A QA JSONL(.gz) to train on instead of `datasets`."""
    dev_dataset: str | None = "hotpotqa"
    dev_data: str | None = None
    dev_limit: int = 100
    validation_per_dataset: int = 0
    """If > 0: this many questions of each training set (a seeded sample) are never trained on and replace the dev
    sample as the in-run evaluation, so choosing `best/` by them never looks at dev."""
    validation_seed: int | None = None
    """The held-out sample's seed (None: `seed`). `smartrag train warmup --seed S` samples the same shuffles, so a
    warm-up drawn with this seed holds the validation questions: give the SFT's warm-up another one."""
    eval_every: int = 5
    """Evaluate (greedy, smartrag mode at `threshold`) before training and every this many iterations; the
    adapter with the highest reward so far is kept in `best/` (the starting one included)."""
    threshold: float = 0.5
    retriever: str = "local"
    """`local` (BM25 over `corpus`), `web`, or `module:factory` returning any LangChain retriever; `train(config,
    retriever=...)` takes a retriever object instead."""
    corpus: str | None = None
    """Corpus JSONL(.gz) or saved BM25 index; None: the bundled corpus."""
    k: int = 4
    alpha: float = ALPHA
    """Cost per retrieval (reward = EM + F1 - alpha * retrievals; -1 for a malformed answer)."""
    preview: int = 0
    """Titles of the question's top hits the first decision sees (0: off, the paper's protocol); each preview costs
    `scoring.ALPHA_PREVIEW`, and the saved policy records the setting (`smartrag.json`)."""
    max_retrievals: int = 1
    """Retrieval quota per episode (the paper: 1)."""
    # rollouts
    paired_decisions: bool = False
    """Roll every question out both ways, its first decision forced to search and to answer (the text sampled as
    usual), and train that decision on each branch's return against the pair's mean
    (`ppo_math.paired_decision_advantages`) instead of one sampled branch and a critic's guess: an iteration's
    episodes are half as many questions, and no decision's signal depends on which action happened to be drawn."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts' text; the update scores tokens at the same temperature. A small
    model may need < 1 to ever sample a right answer (the numbers: docs/experiments.md, "Removed from PPOConfig in
    the package cleanup")."""
    iterations: int = 20
    episodes_per_iteration: int = 64
    rollout_batch_size: int = 32
    # optimisation
    ppo_epochs: int = 2
    minibatch_episodes: int = 16
    micro_batch_tokens: int = 4096
    """Segments per forward pass are grouped by length up to about this many tokens (memory, speed)."""
    learning_rate: float = 2e-5
    value_learning_rate: float = 1e-3
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    vf_coef: float = 0.1
    """Weight of the value loss, which trains the value head and the policy's LoRA weights under it (one body)."""
    max_grad_norm: float = 1.0
    gamma: float = 1.0
    lam: float = 1.0
    whiten_advantages: bool = True
    value_warmup_iterations: int = 1
    """Iterations at the start where only the value head learns (the policy is left alone)."""
    init_kl_coef: float = 0.05
    target_kl: float | None = 1.0
    """Per-episode KL to the reference that the adaptive coefficient aims at; None keeps it fixed."""
    kl_horizon: float = 1000.0
    bf16: bool = True
    """bf16 autocast where the hardware makes it faster (`bf16_is_fast`: AVX-512 or AMX CPUs, recent GPUs)."""
    # bookkeeping
    save_every: int = 1
    keep_checkpoints: int = 2
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Trackers beside metrics.jsonl, through accelerate (tensorboard, wandb, mlflow, all, none); under output_dir."""
    seed: int = 0
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        require_counts(self, ("lora_r", "dev_limit", "eval_every", "k", "iterations", "episodes_per_iteration",
                              "rollout_batch_size", "ppo_epochs", "minibatch_episodes", "micro_batch_tokens",
                              "save_every", "keep_checkpoints"))
        if self.preview < 0:
            raise ValueError(f"preview must be >= 0, got {self.preview}")
        if isinstance(self.covered_only, str):
            raise TypeError(f"covered_only must be true/false or a list of data sets, not {self.covered_only!r}")
        if self.paired_decisions and self.max_retrievals < 1:
            raise ValueError("paired_decisions needs max_retrievals >= 1 (a decision to pair)")
        if self.paired_decisions and self.episodes_per_iteration % 2:
            raise ValueError(f"episodes_per_iteration={self.episodes_per_iteration} must be even with paired_decisions "
                             "(each question is played twice)")

    @property
    def episodes_per_question(self) -> int:
        """2 with `paired_decisions` (each question searched first and answered first), else 1."""
        return 2 if self.paired_decisions else 1
