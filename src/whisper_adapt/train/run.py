"""What one training run is given: its options, and the context its stages share (train/trainer.py).

`Run` is made once, before the caches; `Training` once accelerate has prepared the model, the optimizer,
the scheduler and the loader. They are passed whole so that a stage takes two or three arguments, not nine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from whisper_adapt.augment import AugmentOptions
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary
from whisper_adapt.hf_decode import Prompt
from whisper_adapt.progress import ProgressFn
from whisper_adapt.train.methods import MethodOptions

# (event, payload): what a run found, as it finds it: "data" {what was assembled}, "epoch" {metrics},
# "average" {metrics}. How far it is goes to a progress.ProgressFn instead.
EventFn = Callable[[str, dict], None]


@dataclass(frozen=True)
class TrainOptions:
    method: str = "xattn"
    method_options: MethodOptions = field(default_factory=MethodOptions)
    epochs: int = 10
    batch_size: int = 8
    grad_accum: int = 1
    # 5e-4 since the weights are averaged (below): with the average kept, it reached term recall 0.923 and
    # 0.938 where 3e-4 reached 0.904 and 0.917, everyday CER alike (bench/recipes.py, two runs a company). Before
    # averaging, 1e-3 had everyday CER 0.093 → 0.24 after one epoch on a 48-clip company.
    lr: float = 5e-4
    weight_decay: float = 0.01
    adam_eps: float = 1e-8
    warmup_steps: int = 2
    seed: int = 0
    # Part of the targets keep timestamps so the adapted model still times long-form segments.
    timestamp_share: float = 0.5
    # Largest rise of general-speech CER (absolute, 0.005 = 0.5 points) an epoch may cost to be kept.
    forgetting_budget: float = 0.005
    language: str = "ja"
    mixed_precision: str = "auto"  # fp16 on CUDA, none on CPU
    # Off only to measure what the cache saves (bench/train_cost.py): the encoder then runs every step.
    cache_encoder: bool = True
    # Likewise for the frozen decoder layers below the trained ones (train/prefix.py).
    cache_prefix: bool = True
    # Weight of self-distillation (train/distill.py): at every target position where the unadapted model
    # already predicts the reference token, keep its distribution. 0 turns it off. On ホシミ精機 it cut the
    # general-validation CER rise of the trained epochs from +1.5–4.3 points to +0.4–1.0 (bench/recipes.py).
    distill: float = 1.0
    # Share of the epochs, the last ones, whose trained weights are averaged into the candidate the adapter
    # prefers: the mean of points along the path forgets less than the one epoch a noisy check picks. On six
    # runs (two companies, three seeds, lr 3e-4) the average of epochs 3–10 moved everyday CER by −0.7 to −2.3
    # points where the kept single epoch moved it by +1.4 to −1.8, at term recall within one term of it.
    # 0 keeps one epoch.
    average_share: float = 0.8
    # Weight of the loss at target tokens that spell a glossary term, against 1 for every other token (the
    # weighted mean over a batch; the epochs' recorded train loss is then that weighted mean). 1 is the plain
    # cross-entropy. Weight 3 on the last layer: term recall 0.958 and 0.962 where 1 gave 0.896 and 0.923
    # (bench/recipes.py, seed 0 of each company); not yet measured with two layers.
    term_weight: float = 1.0
    # The meeting room in training (train/variants.py): acoustic variants of every clip and non-speech clips
    # trained to Whisper's no-speech answer. None trains on the clips as they are.
    augment: AugmentOptions | None = field(default_factory=AugmentOptions)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise WhisperAdaptError("epochs, batch size and gradient accumulation must be at least 1")
        if not 0 <= self.timestamp_share <= 1:
            raise WhisperAdaptError("timestamp share must be between 0 and 1")
        if self.distill < 0:
            raise WhisperAdaptError("the distillation weight must be at least 0")
        if not 0 <= self.average_share <= 1:
            raise WhisperAdaptError("the averaged share of epochs must be between 0 and 1")
        if self.term_weight <= 0:
            raise WhisperAdaptError("the term weight must be above 0")
        if not self.lr > 0:
            raise WhisperAdaptError(f"the learning rate must be above 0, not {self.lr:g}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.forgetting_budget < 0:
            raise WhisperAdaptError("warm-up steps, weight decay and the forgetting budget cannot be negative")

    def averaged_epochs(self) -> list[int]:
        """The epochs averaged into one candidate: the last `average_share` of them, none when under two."""
        count = round(self.average_share * self.epochs)
        return list(range(self.epochs - count + 1, self.epochs + 1)) if count >= 2 else []


# The recipe that worked in practice, for comparison (AdamW lr 5e-4, wd 0.01, eps 1e-8, warmup 2, batch 2, one
# checkpoint kept).
PRESETS: dict[str, dict] = {
    "original": dict(lr=5e-4, weight_decay=0.01, adam_eps=1e-8, warmup_steps=2, batch_size=2, epochs=10,
                     average_share=0.0),
}


@dataclass
class PhaseClock:
    """Wall-clock seconds of a run's phases, in the order they first ran: `lap(phase)` adds the time since the
    previous lap to `phase`, so a phase that recurs (an epoch's steps, its validation) adds up."""

    seconds: dict[str, float] = field(default_factory=dict)
    since: float = field(default_factory=time.perf_counter)

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self.since, 2)
        self.since = now


@dataclass(frozen=True)
class Run:
    """What every stage of one run reads, the same from the first cache to the saved adapter."""

    options: TrainOptions
    accelerator: Any  # accelerate.Accelerator, imported only when training
    tokenizer: Any  # the base model's WhisperTokenizer
    prompt: Prompt
    glossary: Glossary | None
    out_dir: Path
    # Both silent on every process but the main one: one process reports for all.
    emit: EventFn
    progress: ProgressFn
    clock: PhaseClock = field(default_factory=PhaseClock)


@dataclass(frozen=True)
class Training:
    """What each step uses, once accelerate has prepared it (after the caches, which need the bare model)."""

    model: torch.nn.Module  # as accelerate wrapped it: accelerator.unwrap_model gives the model itself
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: torch.utils.data.DataLoader
    depth: int  # decoder layers below the trained ones whose output the loader brings cached (0: none)
