"""What a training run is, decided in one place: a recipe (how to train, and which data: clips, replay,
checks) and the one function that trains an adapter from labelled clips with it. `train`, `demo` and the
benchmarks all go through `train_from_clips`, so what they measure is what the CLI ships."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from whisper_adapt.augment import AugmentOptions
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary
from whisper_adapt.labeled import LabeledClip
from whisper_adapt.progress import ProgressFn, ignore
from whisper_adapt.train.assemble import AssembleOptions, assemble
from whisper_adapt.train.methods import MethodOptions
from whisper_adapt.train.trainer import PRESETS, EventFn, TrainOptions, TrainResult, train_adapter


@dataclass(frozen=True)
class Recipe:
    train: TrainOptions = field(default_factory=TrainOptions)
    data: AssembleOptions = field(default_factory=AssembleOptions)


def build_recipe(preset: str | None = None, train: dict | None = None, method: dict | None = None,
                 augment: bool | None = None, acoustics: dict | None = None, data: dict | None = None) -> Recipe:
    """A recipe from the settings a user gave, by field name (what is left out takes the dataclasses'
    default): a preset's settings first, the given ones over them. `augment=False` trains on the clips as
    they are; `acoustics` are AugmentOptions fields."""
    if preset is not None and preset not in PRESETS:
        raise WhisperAdaptError(f"unknown preset '{preset}'; choose from {', '.join(PRESETS)}")
    settings = {**PRESETS.get(preset or "", {}), **(train or {})}
    if augment is False:
        settings["augment"] = None
    elif acoustics:
        settings["augment"] = AugmentOptions(**acoustics)
    return Recipe(TrainOptions(method_options=MethodOptions(**(method or {})), **settings),
                  AssembleOptions(**(data or {})))


def train_from_clips(base: str | Path, clips: Sequence[LabeledClip], glossary: Glossary | None, recipe: Recipe,
                     out_dir: Path, general: Sequence[LabeledClip] | None = None, stack_on: tuple[Path, ...] = (),
                     resume: bool = False, on_event: EventFn | None = None,
                     on_progress: ProgressFn = ignore) -> TrainResult:
    """Assemble what trains (term clips, replay, held-out checks) and train the adapter into `out_dir`.
    `on_event("data", description)` tells what was assembled before training starts, then the trainer's
    events follow; `on_progress` hears how far each pass is."""
    augment = recipe.train.augment
    per_clip = 2 if augment is not None and augment.variants else 1  # clean + one variant an epoch
    data = assemble(clips, glossary, replace(recipe.data, examples_per_clip=per_clip), general)
    if on_event:
        on_event("data", {**data.description, "validation_clips": len(data.validation),
                          "general_clips": len(data.general)})
    return train_adapter(base, data, out_dir, recipe.train, glossary, stack_on, resume, on_event, on_progress)
