"""What a run computes once before training: the room variants, the encoder's output for every clip (and the
examples built on it), the unadapted model's predictions and the frozen decoder layers' output.

Each pass runs on the main process, reporting its progress, while the others wait; then every process reads
the files it wrote. The model stays on the CPU between passes, so a small GPU holds it only while it works.
"""

from __future__ import annotations

from collections.abc import Callable

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.progress import counter
from whisper_adapt.train import data as train_data
from whisper_adapt.train.assemble import TrainData
from whisper_adapt.train.distill import fill_teacher_cache, with_teacher_files
from whisper_adapt.train.prefix import fill_prefix_cache, with_prefix_files
from whisper_adapt.train.run import Run

CACHE_STAGES = {"cache": "encoding clips", "teacher": "unadapted model's predictions",
                "prefix": "caching frozen decoder layers"}
# The sets trained on (cached alike); the others are only scored.
TRAINING_SETS = ("train", "variants", "replay", "nonspeech")


def add_acoustics(run: Run, data: TrainData) -> TrainData:
    """Render the run's variants and non-speech clips (main process); every process then finds the files."""
    from whisper_adapt.train.variants import add_acoustics as render

    options = run.options
    if run.accelerator.is_main_process:
        render(data, options.augment, run.out_dir, options.seed, run.progress)
    run.accelerator.wait_for_everyone()
    return render(data, options.augment, run.out_dir, options.seed)


def build_examples(run: Run, model, data: TrainData, cached: bool) -> tuple[dict[str, list], list[WhisperAdaptError]]:
    """Encode (once, on the main process) and tokenize every clip the run trains on or scores; `cached`: the
    training sets are encoded too (the encoder is frozen), not only the scored ones."""
    sets = {"train": data.train, "variants": [v for group in data.variants.values() for v in group],
            "replay": data.replay, "nonspeech": data.nonspeech, "validation": data.validation,
            "general": data.general, "wide_check": data.wide_check if run.options.averaged_epochs() else [],
            "nonspeech_check": data.nonspeech_check}  # the wide check judges only the average
    files = _encode(run, model, [clip for name, clips in sets.items()
                                 if cached or name not in TRAINING_SETS for clip in clips])
    limit = model.config.max_target_positions
    # With non-speech in the mix, speech examples say that speech follows (see train/data.target_sequence).
    label_language = bool(data.nonspeech)
    examples, problems = {}, []
    for name, clips in sets.items():
        use_files = files if (name not in TRAINING_SETS or cached) else None
        if name.startswith("nonspeech"):
            examples[name] = train_data.build_nonspeech_examples(clips, run.prompt, use_files)
            continue
        trained = name in TRAINING_SETS
        built, found = train_data.build_examples(clips, run.tokenizer, run.prompt, use_files,
                                                 run.options.timestamp_share if trained else 0.0, run.options.seed,
                                                 limit, run.glossary if name in ("train", "variants") else None,
                                                 label_language and trained)
        examples[name] = built
        problems += found if name != "variants" else []  # a variant's problem is its clip's, reported once
    return examples, problems


def _encode(run: Run, model, clips: list) -> dict | None:
    """The encoder cache's files for these clips, filled by the main process (None: no clips)."""
    from whisper_adapt.models import cache_root

    if not clips:
        return None
    cache_dir = cache_root() / "encoder" / train_data.encoder_sha256(model)
    if run.accelerator.is_main_process:
        train_data.fill_encoder_cache(model.to(run.accelerator.device), clips, cache_dir,
                                      advance=_counter(run, "cache", len(clips)))
        model.to("cpu")
    run.accelerator.wait_for_everyone()
    return train_data.encoder_cache_files(clips, cache_dir)


def cache_trained(run: Run, model, examples: dict[str, list], depth: int) -> dict[str, list]:
    """`examples` with the training sets' examples reading the teacher's predictions (when distilling) and the
    output of the `depth` frozen decoder layers (when above 0) from caches."""
    trained = [e for name in TRAINING_SETS for e in examples[name]]
    if run.options.distill:
        trained = _cache_teacher(run, model, trained)
        run.clock.lap("teacher pass")
    if depth:
        trained = _cache_prefix(run, model, trained, depth)
        run.clock.lap("frozen-prefix pass")
    return examples | _regroup(trained, {name: len(examples[name]) for name in TRAINING_SETS})


def _regroup(examples: list, sizes: dict[str, int]) -> dict[str, list]:
    """The concatenation of several sets cut back into them."""
    groups, start = {}, 0
    for name, size in sizes.items():
        groups[name] = examples[start:start + size]
        start += size
    return groups


def variant_groups(own: list, variants: list) -> list[list]:
    """For each of the organization's examples, the examples of its acoustic variants (ids `<clip id>#v<n>`)."""
    by_clip: dict[str, list] = {}
    for example in variants:
        by_clip.setdefault(example.clip.clip_id.rpartition("#v")[0], []).append(example)
    return [by_clip.get(example.clip.clip_id, []) for example in own]


def _cache_prefix(run: Run, model, examples: list, depth: int) -> list:
    """Compute (main process) the frozen layers' output of every training example; all processes read it."""
    directory = run.out_dir / "prefix"
    if run.accelerator.is_main_process:
        fill_prefix_cache(model.to(run.accelerator.device), examples, depth, directory, model.config.num_mel_bins,
                          run.prompt.eot, advance=_counter(run, "prefix", len(examples)))
        model.to("cpu")
    run.accelerator.wait_for_everyone()
    return with_prefix_files(examples, directory)


def _cache_teacher(run: Run, model, examples: list) -> list:
    """The unadapted model's predictions on the training examples (main process); all processes read them."""
    examples = with_teacher_files(examples, run.out_dir / "teacher")
    if run.accelerator.is_main_process:
        fill_teacher_cache(model.to(run.accelerator.device), examples, model.config.num_mel_bins, run.prompt.eot,
                           advance=_counter(run, "teacher", len(examples)))
        model.to("cpu")
    run.accelerator.wait_for_everyone()
    return examples


def _counter(run: Run, stage: str, total: int) -> Callable[[float], None]:
    """Counts the examples a cache pass has finished, as the run's progress."""
    return counter(run.progress, CACHE_STAGES[stage], total, "clips")
