"""PPO's one config: every setting of a run (`smartrag train ppo --config FILE.yaml`, each field also a flag), checked
when it is made, so a YAML file and a flag meet the same refusal before any model loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_smartrag.scoring import ALPHA

from .config import require_counts, require_numbers


@dataclass
class PPOConfig:
    """Every setting of a PPO run; each field's docstring is its flag's `--help` (docs/training.md says more)."""

    # the policy
    output_dir: str = "runs/ppo"
    """Run folder: checkpoints, metrics.jsonl, rollouts.jsonl, `best/` and `final/` adapters."""
    init: str | None = None
    """SFT adapter folder to start from, also the KL reference (None: a fresh LoRA on `base_model`)."""
    base_model: str = "embedded-base"
    """Model under a fresh LoRA when `init` is None: `embedded-base`, a model folder or a hub id."""
    lora_r: int = 16
    """Rank of a fresh LoRA's update matrices (ignored with `init`)."""
    lora_alpha: int = 32
    """LoRA scaling numerator of a fresh LoRA: updates are scaled by lora_alpha / lora_r (ignored with `init`)."""
    # data and environment
    datasets: list[str] = field(default_factory=lambda: ["popqa", "ambignq", "hotpotqa"])
    """Bundled data sets to train on; they take turns, one question each, in every iteration."""
    split: str = "train"
    """Split of `datasets` to train on."""
    covered_only: bool | list[str] = True
    """Train only on questions the bundled corpus covers: true/false for all data sets, or a list of their names."""
    data: str | None = None
    """QA JSONL(.gz) file to train on instead of `datasets`."""
    dev_dataset: str | None = "hotpotqa"
    """Bundled data set whose dev split the in-run evaluation samples (None and no `dev_data`: no evaluation)."""
    dev_data: str | None = None
    """QA JSONL(.gz) file for the in-run evaluation instead of `dev_dataset`."""
    dev_limit: int = 100
    """Questions in the in-run evaluation's dev sample (drawn with `seed`)."""
    validation_per_dataset: int = 0
    """Training questions per data set held out to evaluate on and pick `best/` by, instead of dev (0: none)."""
    validation_seed: int | None = None
    """Seed of the held-out sample (None: `seed`); a warm-up built with this seed would contain those questions."""
    eval_every: int = 5
    """Iterations between in-run evaluations (greedy, at `threshold`); one also runs before the first iteration."""
    threshold: float = 0.5
    """Search when P(search) >= this, in the in-run evaluation (a probability, 0 to 1)."""
    retriever: str = "local"
    """Retriever: `local` (BM25 over `corpus`), `web`, or `module:factory` returning a LangChain retriever."""
    corpus: str | None = None
    """Corpus JSONL(.gz) or saved BM25 index folder for the local retriever (None: the bundled corpus)."""
    k: int = 4
    """Documents per retrieval."""
    alpha: float = ALPHA
    """Reward cost per retrieval, in reward units (reward = EM + F1 - alpha * retrievals; -1 if malformed)."""
    preview: int = 0
    """Titles of the question's top hits the first decision sees (0: off); each costs `scoring.ALPHA_PREVIEW`."""
    max_retrievals: int = 1
    """Retrieval quota per episode; at the quota the answer is forced (the paper: 1)."""
    # rollouts
    paired_decisions: bool = False
    """Play each question twice, first decision forced to search and to answer; train it on the two returns' gap."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts' text (> 0); the update scores tokens at the same temperature."""
    iterations: int = 20
    """PPO iterations (rollout, score, update) in the run."""
    episodes_per_iteration: int = 64
    """Episodes rolled out per iteration, over all processes (twice the questions' count with paired_decisions)."""
    rollout_batch_size: int = 32
    """Questions per `graph.batch` call in rollouts and in-run evaluations."""
    # optimisation
    ppo_epochs: int = 2
    """Passes over each iteration's episodes in the update."""
    minibatch_episodes: int = 16
    """Episodes per optimizer step."""
    micro_batch_tokens: int = 4096
    """Tokens per forward pass, about: segments are grouped by length up to this (memory against speed)."""
    learning_rate: float = 2e-5
    """AdamW learning rate of the policy's LoRA weights."""
    value_learning_rate: float = 1e-3
    """AdamW learning rate of the value head."""
    clip_range: float = 0.2
    """PPO's clip on the probability ratio: it is kept within 1 +- this."""
    value_clip_range: float = 0.2
    """Clip on a value's move from its rollout estimate, in reward units."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss (it trains the value head and the LoRA weights under it)."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global L2 norm before each optimizer step."""
    gamma: float = 1.0
    """Discount per completion token, 0 to 1 (1: the answer's reward reaches the search decision undiminished)."""
    lam: float = 1.0
    """GAE lambda, 0 to 1 (1: Monte Carlo returns minus values; 0: one-step TD errors)."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0 and standard deviation 1 over all processes' tokens."""
    value_warmup_iterations: int = 1
    """Iterations at the start in which only the value head learns (the policy is left alone)."""
    init_kl_coef: float = 0.05
    """Starting coefficient of the per-token KL penalty to the reference, in reward units per nat (0: none)."""
    target_kl: float | None = 1.0
    """Per-episode KL to the reference, in nats, that the adaptive coefficient aims at (None: the coefficient stays)."""
    kl_horizon: float = 1000.0
    """Episodes over which the adaptive coefficient moves by at most 20% (larger: slower adaptation)."""
    bf16: bool = True
    """bf16 autocast on a CUDA GPU with bf16; float32 on a CPU, where it keeps a seeded rollout batch-independent."""
    # bookkeeping
    save_every: int = 1
    """Iterations between checkpoints (the last iteration always saves one)."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept in output_dir; older ones are deleted."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Trackers beside metrics.jsonl, through accelerate: tensorboard, wandb, mlflow, all, none (under output_dir)."""
    seed: int = 0
    """Seed of the run: torch, the questions' order, every episode's sampling and the dev sample."""
    resume: bool = False
    """Continue from the newest checkpoint in output_dir (without it, a folder with checkpoints is refused)."""
    progress: bool = True
    """Show a progress bar of iterations (main process only)."""

    def __post_init__(self) -> None:
        require_counts(
            self,
            (
                "lora_r",
                "lora_alpha",
                "dev_limit",
                "eval_every",
                "k",
                "iterations",
                "episodes_per_iteration",
                "rollout_batch_size",
                "ppo_epochs",
                "minibatch_episodes",
                "micro_batch_tokens",
                "save_every",
                "keep_checkpoints",
            ),
        )
        require_numbers(
            self,
            (
                "temperature",
                "learning_rate",
                "value_learning_rate",
                "clip_range",
                "value_clip_range",
                "max_grad_norm",
                "target_kl",
                "kl_horizon",
            ),
            above=0,
        )
        require_counts(
            self, ("preview", "max_retrievals", "validation_per_dataset", "value_warmup_iterations"), least=0
        )
        require_numbers(self, ("alpha", "vf_coef", "init_kl_coef"), at_least=0)
        require_numbers(self, ("threshold", "gamma", "lam"), at_least=0, at_most=1)
        if isinstance(self.covered_only, str):
            raise TypeError(f"covered_only must be true/false or a list of data sets, not {self.covered_only!r}")
        if self.paired_decisions and self.max_retrievals < 1:
            raise ValueError("paired_decisions needs max_retrievals >= 1 (a decision to pair)")
        if self.paired_decisions and self.episodes_per_iteration % 2:
            raise ValueError(
                f"episodes_per_iteration={self.episodes_per_iteration} must be even with paired_decisions "
                "(each question is played twice)"
            )

    @property
    def episodes_per_question(self) -> int:
        """2 with `paired_decisions` (each question searched first and answered first), else 1."""
        return 2 if self.paired_decisions else 1
