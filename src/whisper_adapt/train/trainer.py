"""The training loop: read it top to bottom.

accelerate handles devices, mixed precision and data parallelism (the same code runs under
`accelerate launch` / torchrun). Every epoch ends with a checkpoint holding only the trained tensors, the
optimizer, the scheduler, the random states and the resolved options, so `--resume` after any
interruption continues to the same result as an uninterrupted run. After the last epoch the weights of the
last epochs are averaged and validated like one more epoch; the adapter holds that average, or else the epoch
with the best term recall, within a general-CER budget (see `choose_kept`), never chosen by training loss.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.augment import AugmentOptions
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary
from whisper_adapt.hf_decode import make_prompt
from whisper_adapt.train import data as train_data
from whisper_adapt.train.adapter import AdapterInfo, save_adapter
from whisper_adapt.train.assemble import TrainData
from whisper_adapt.train.methods import (MethodOptions, get_method, resolve_layers, set_trainable_state,
                                         trainable_state)
from whisper_adapt.train.distill import distillation_loss, fill_teacher_cache, with_teacher_files
from whisper_adapt.train.prefix import feeding_prefix, fill_prefix_cache, prefix_depth, with_prefix_files
from whisper_adapt.train.scoring import choose_kept, score_epoch, score_nonspeech

# (event, payload): a CACHE_STAGES key {done, total}, "step" {epoch, step, steps, loss, clips_per_s},
# "epoch" {metrics}, "note" {text}. The CLI draws progress from these.
EventFn = Callable[[str, dict], None]
CACHE_STAGES = {"variants": "rendering room variants", "cache": "encoding clips",
                "teacher": "unadapted model's predictions", "prefix": "caching frozen decoder layers"}
# The sets trained on (cached alike); the others are only scored.
TRAINING_SETS = ("train", "variants", "replay", "nonspeech")
NONSPEECH_CHECK_TOKENS = 32
TEACHER_KEYS = ("teacher_ids", "teacher_log_probs", "teacher_mask")  # in distillation_loss's order


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


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path | None  # None when nothing beat the unadapted model within the budget
    kept_epochs: list[int]  # one epoch, or the averaged ones; empty with no adapter
    history: list[dict]  # epoch 0 (the unadapted model) to the last
    average: dict | None  # validation of the averaged weights, with their "epochs"; None when not averaged
    problems: list[WhisperAdaptError]


def train_adapter(base: str | Path, data: TrainData, out_dir: Path, options: TrainOptions = TrainOptions(),
                  glossary: Glossary | None = None, stack_on: tuple[Path, ...] = (), resume: bool = False,
                  on_event: EventFn | None = None) -> TrainResult:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.models import model_sha256, resolve_model
    from whisper_adapt.train.adapter import load_adapted_model

    if not data.train and not data.replay:
        raise WhisperAdaptError("no training clips (reviewed clips holding glossary terms, plus replay)")
    if not resume and any((out_dir / "checkpoints").glob("epoch-*")):
        raise WhisperAdaptError("holds checkpoints of an earlier run: add --resume to continue it, or train into "
                                "another --out", out_dir)
    accelerator = Accelerator(
        # Without a GPU, accelerate only joins a torchrun/`accelerate launch` group (gloo) when told it is on CPU.
        cpu=not torch.cuda.is_available(),
        mixed_precision=_precision(options), gradient_accumulation_steps=options.grad_accum,
        log_with="tensorboard", project_dir=str(out_dir / "logs"),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(options.seed)
    emit = on_event if on_event and accelerator.is_main_process else _silent  # one process reports for all
    base_dir = resolve_model(base, "hf")
    model = load_adapted_model(base, list(stack_on), device="cpu")
    tokenizer = load_tokenizer(base_dir)
    prompt = make_prompt(tokenizer, options.language)
    method = get_method(options.method)
    layers = resolve_layers(model, options.method_options.layers)

    if options.augment is not None:
        data = _add_acoustics(data, options, out_dir, accelerator, emit)
    examples, problems = _examples(model, data, tokenizer, prompt, options, glossary,
                                   method.freezes_encoder and options.cache_encoder, accelerator, emit)
    trained = [e for name in TRAINING_SETS for e in examples[name]]
    if options.distill:
        trained = _cache_teacher(model, trained, out_dir / "teacher", prompt, accelerator, emit)
    depth = prefix_depth(model, layers if method.trains_chosen_layers else None) if options.cache_prefix else 0
    if depth:
        trained = _cache_prefix(model, trained, depth, out_dir / "prefix", prompt, accelerator, emit)
    examples |= _regroup(trained, {name: len(examples[name]) for name in TRAINING_SETS})
    model = method.prepare(model, options.method_options)
    initial = trainable_state(model)  # what the adapter's changes are measured from
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=options.weight_decay, eps=options.adam_eps)
    dataset = train_data.EpochMix(
        examples["train"], _variant_groups(examples["train"], examples["variants"]),
        {"replay": (examples["replay"], len(examples["replay"]) if data.replay_per_epoch is None else data.replay_per_epoch),
         "nonspeech": (examples["nonspeech"], data.nonspeech_per_epoch)},
        model.config.num_mel_bins, options.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=options.batch_size, shuffle=True,
                                         collate_fn=partial(train_data.collate, pad_id=prompt.eot))
    steps_per_epoch = max(1, -(-len(loader) // (options.grad_accum * accelerator.num_processes)))
    scheduler = _linear_schedule(optimizer, options.warmup_steps, steps_per_epoch * options.epochs)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    accelerator.init_trackers("train", config=_flat_config(options))

    checkpoints = out_dir / "checkpoints"
    config = _resolved_config(options, base, stack_on, data)
    history = _resume(accelerator, model, optimizer, scheduler, checkpoints, config) if resume else []
    if not history:
        history = [_validate(accelerator, model, examples, prompt, tokenizer, glossary,
                             {"epoch": 0, "train_loss": None})]
        emit("epoch", history[-1])
    for epoch in range(len(history), options.epochs + 1):
        loss = _train_epoch(accelerator, model, optimizer, scheduler, loader, epoch, options, depth, emit)
        history.append(_validate(accelerator, model, examples, prompt, tokenizer, glossary,
                                 {"epoch": epoch, "train_loss": loss}))
        emit("epoch", history[-1])
        _save_checkpoint(accelerator, model, optimizer, scheduler, checkpoints, epoch, history, config)

    average = None
    if options.averaged_epochs():
        average = _validate_average(accelerator, model, examples, prompt, tokenizer, glossary, initial, checkpoints,
                                    options.averaged_epochs())
        emit("average", average)
    kept = choose_kept(history, average, options.forgetting_budget)
    state = _mean_state(checkpoints, kept) if kept else None
    if state is not None and _changes_nothing(state, initial):
        kept, state = [], None  # a step too small to move any weight: an adapter of zeros is no adaptation
    if kept and accelerator.is_main_process:
        info = AdapterInfo(
            method=options.method, layers=layers, base_model=str(base), base_sha256=model_sha256(base_dir),
            stacked_on=[str(Path(p).resolve()) for p in stack_on], training=config, epochs=history,
            average=average, kept_epochs=kept,
        )
        save_adapter(out_dir / "adapter", accelerator.unwrap_model(model), state, info, initial)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also leaves the process group: after the last barrier
    adapter_dir = out_dir / "adapter" if kept else None
    return TrainResult(adapter_dir, kept, history, average, problems)


def _silent(kind: str, payload: dict) -> None:
    return None


def _precision(options: TrainOptions) -> str:
    if options.mixed_precision != "auto":
        return options.mixed_precision
    return "fp16" if torch.cuda.is_available() else "no"


def _linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, min(warmup_steps, total_steps), max(total_steps, 1))


def _add_acoustics(data: TrainData, options: TrainOptions, out_dir: Path, accelerator, emit: EventFn) -> TrainData:
    """Render the run's variants and non-speech clips (main process); every process then finds the files."""
    from whisper_adapt.train.variants import add_acoustics

    if accelerator.is_main_process:
        add_acoustics(data, options.augment, out_dir, options.seed,
                      lambda done, total: emit("variants", {"done": done, "total": total}))
    accelerator.wait_for_everyone()
    return add_acoustics(data, options.augment, out_dir, options.seed)


def _examples(model, data: TrainData, tokenizer, prompt, options: TrainOptions, glossary: Glossary | None,
              cached: bool, accelerator, emit: EventFn) -> tuple[dict[str, list], list[WhisperAdaptError]]:
    """Encode (once, on the main process) and tokenize every clip the run trains on or scores."""
    from whisper_adapt.models import cache_root

    sets = {"train": data.train, "variants": [v for group in data.variants.values() for v in group],
            "replay": data.replay, "nonspeech": data.nonspeech, "validation": data.validation,
            "general": data.general, "wide_check": data.wide_check if options.averaged_epochs() else [],
            "nonspeech_check": data.nonspeech_check}  # the wide check judges only the average
    to_cache = [clip for name, clips in sets.items() if cached or name not in TRAINING_SETS for clip in clips]
    files = None
    if to_cache:
        cache_dir = cache_root() / "encoder" / train_data.encoder_sha256(model)
        if accelerator.is_main_process:
            train_data.fill_encoder_cache(model.to(accelerator.device), to_cache, cache_dir,
                                          on_progress=_counter(emit, "cache", len(to_cache)))
            model.to("cpu")
        accelerator.wait_for_everyone()
        files = train_data.encoder_cache_files(to_cache, cache_dir)
    limit = model.config.max_target_positions
    # With non-speech in the mix, speech examples say that speech follows (see train/data.target_sequence).
    label_language = bool(data.nonspeech)
    examples, problems = {}, []
    for name, clips in sets.items():
        use_files = files if (name not in TRAINING_SETS or cached) else None
        if name.startswith("nonspeech"):
            examples[name] = train_data.build_nonspeech_examples(clips, prompt, use_files)
            continue
        trained = name in TRAINING_SETS
        built, found = train_data.build_examples(clips, tokenizer, prompt, use_files,
                                                 options.timestamp_share if trained else 0.0, options.seed, limit,
                                                 glossary if name in ("train", "variants") else None,
                                                 label_language and trained)
        examples[name] = built
        problems += found if name != "variants" else []  # a variant's problem is its clip's, reported once
    return examples, problems


def _regroup(examples: list, sizes: dict[str, int]) -> dict[str, list]:
    """The concatenation of several sets cut back into them."""
    groups, start = {}, 0
    for name, size in sizes.items():
        groups[name] = examples[start:start + size]
        start += size
    return groups


def _variant_groups(own: list, variants: list) -> list[list]:
    """For each of the organization's examples, the examples of its acoustic variants (ids `<clip id>#v<n>`)."""
    by_clip: dict[str, list] = {}
    for example in variants:
        by_clip.setdefault(example.clip.clip_id.rpartition("#v")[0], []).append(example)
    return [by_clip.get(example.clip.clip_id, []) for example in own]


def _cache_prefix(model, examples: list, depth: int, directory: Path, prompt, accelerator, emit: EventFn) -> list:
    """Compute (main process) the frozen layers' output of every training example; all processes read it."""
    if accelerator.is_main_process:
        fill_prefix_cache(model.to(accelerator.device), examples, depth, directory, model.config.num_mel_bins,
                          prompt.eot, on_progress=_counter(emit, "prefix", len(examples)))
        model.to("cpu")
    accelerator.wait_for_everyone()
    return with_prefix_files(examples, directory)


def _cache_teacher(model, examples: list, directory: Path, prompt, accelerator, emit: EventFn) -> list:
    """The unadapted model's predictions on the training examples (main process); all processes read them."""
    examples = with_teacher_files(examples, directory)
    if accelerator.is_main_process:
        fill_teacher_cache(model.to(accelerator.device), examples, model.config.num_mel_bins, prompt.eot,
                           on_progress=_counter(emit, "teacher", len(examples)))
        model.to("cpu")
    accelerator.wait_for_everyone()
    return examples


def _counter(emit: EventFn, event: str, total: int) -> Callable[[int], None]:
    """A progress callback that adds up finished items and emits `event` with {done, total}."""
    done = [0]

    def progress(count: int) -> None:
        done[0] += count
        emit(event, {"done": done[0], "total": total})

    return progress


def _train_epoch(accelerator, model, optimizer, scheduler, loader, epoch: int, options: TrainOptions, depth: int,
                 emit: EventFn) -> float:
    model.train()
    loader.set_epoch(epoch)  # the shuffle depends only on (seed, epoch): resuming replays the same order
    loader.dataset.set_epoch(epoch)  # accelerate passes the epoch to the sampler only, not to the dataset too
    total, count, start = 0.0, 0, time.perf_counter()
    with contextlib.ExitStack() as stack:
        feed = stack.enter_context(feeding_prefix(accelerator.unwrap_model(model), depth)) if depth else None
        for step, batch in enumerate(loader, start=1):
            if feed:
                feed(batch.pop("decoder_prefix"))
            teacher = {key: batch.pop(key) for key in TEACHER_KEYS if key in batch}
            term_mask = batch.pop("term_mask", None)
            with accelerator.accumulate(model):
                output = model(**batch)
                loss = output.loss
                if term_mask is not None and options.term_weight != 1:
                    loss = term_weighted_loss(output.logits, batch["labels"], term_mask, options.term_weight)
                if teacher:
                    loss = loss + options.distill * distillation_loss(output.logits, *teacher.values())
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total += loss.item()
            count += 1
            clips = step * options.batch_size * accelerator.num_processes
            emit("step", {"epoch": epoch, "step": step, "steps": len(loader), "loss": total / count,
                          "clips_per_s": clips / (time.perf_counter() - start)})
    mean = accelerator.gather(torch.tensor([total / max(count, 1)], device=accelerator.device)).mean().item()
    accelerator.log({"train/loss": mean}, step=epoch)
    return mean


def term_weighted_loss(logits: torch.Tensor, labels: torch.Tensor, term_mask: torch.Tensor,
                       weight: float) -> torch.Tensor:
    """Cross-entropy averaged over target positions with `weight` at the term tokens and 1 elsewhere."""
    losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels,
                                               ignore_index=train_data.IGNORE_INDEX, reduction="none")
    weights = (labels != train_data.IGNORE_INDEX).float() * torch.where(term_mask, weight, 1.0)
    return (losses * weights).sum() / weights.sum()


def _validate(accelerator, model, examples, prompt, tokenizer, glossary, label: dict) -> dict:
    """`label` (which weights these are) with the validation and forgetting-check scores of the model now."""
    from whisper_adapt.train.validate import decode_examples

    start = time.perf_counter()
    metrics = dict(label)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.eval()
        for name in ("validation", "general"):
            if examples[name]:
                decoded = decode_examples(unwrapped, examples[name], prompt, tokenizer)
                metrics |= score_epoch(name, [e.clip.text for e in examples[name]], decoded, glossary)
        if examples.get("nonspeech_check"):
            # A few dozen tokens tell whether the model writes anything where nobody speaks; a model that
            # does would otherwise decode every clip to the length limit.
            decoded = decode_examples(unwrapped, examples["nonspeech_check"], prompt, tokenizer,
                                      max_tokens=NONSPEECH_CHECK_TOKENS)
            metrics |= score_nonspeech(decoded, [e.duration_s for e in examples["nonspeech_check"]])
        if "epoch" in metrics:
            accelerator.log({k: v for k, v in metrics.items() if isinstance(v, float)}, step=metrics["epoch"])
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    return _broadcast(accelerator, metrics)


def _validate_average(accelerator, model, examples, prompt, tokenizer, glossary, initial: dict, checkpoints: Path,
                      epochs: list[int]) -> dict:
    """The mean of these epochs' weights scored like an epoch, its forgetting check widened by `wide_check` for
    it and for the unadapted model alike: this check decides what ships, and 40 clips move by about a point
    from one epoch to the next by chance."""
    wide = {**examples, "general": examples["general"] + examples["wide_check"]}
    unwrapped = accelerator.unwrap_model(model)
    unadapted = {}
    if examples["wide_check"]:
        set_trainable_state(unwrapped, initial)
        unadapted = _validate(accelerator, model, {**wide, "validation": [], "nonspeech_check": []}, prompt,
                              tokenizer, glossary, {})
    set_trainable_state(unwrapped, _mean_state(checkpoints, epochs))
    average = _validate(accelerator, model, wide, prompt, tokenizer, glossary, {"epochs": epochs})
    if "general_cer" in unadapted:
        average["unadapted_general_cer"] = unadapted["general_cer"]
    return average


def _broadcast(accelerator, metrics: dict) -> dict:
    if accelerator.num_processes == 1:
        return metrics
    from accelerate.utils import broadcast_object_list

    box = [metrics]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _resolved_config(options: TrainOptions, base, stack_on, data: TrainData) -> dict:
    """What the run is: stored in every checkpoint (resume refuses another config) and in adapter.json."""
    return {"options": asdict(options), "base": str(base), "stack_on": [str(p) for p in stack_on],
            "data": data.description}


def _flat_config(options: TrainOptions) -> dict:
    flat = {k: v for k, v in asdict(options).items() if isinstance(v, (int, float, str, bool))}
    flat["layers"] = ",".join(str(layer) for layer in options.method_options.layers)
    return flat


def _save_checkpoint(accelerator, model, optimizer, scheduler, checkpoints: Path, epoch: int,
                     history: list[dict], config: dict) -> None:
    """Trained tensors of this epoch (kept for the final choice) + everything needed to resume (latest only).
    Written to a temporary directory and renamed, so a kill never leaves half a checkpoint."""
    from safetensors.torch import save_file

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    state = trainable_state(accelerator.unwrap_model(model))
    checkpoints.mkdir(parents=True, exist_ok=True)
    tmp = checkpoints / f".epoch-{epoch}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp / "trained.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
               tmp / "resume.pt")
    (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "history": history, "config": config},
                                               ensure_ascii=False, indent=1))
    os.replace(tmp, checkpoints / f"epoch-{epoch}")
    for old in checkpoints.glob("epoch-*/resume.pt"):
        if old.parent.name != f"epoch-{epoch}":
            old.unlink()  # only the latest epoch needs optimizer state; trained tensors stay for the choice


def _load_epoch_state(checkpoints: Path, epoch: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(checkpoints / f"epoch-{epoch}" / "trained.safetensors"), device="cpu")


def _mean_state(checkpoints: Path, epochs: list[int]) -> dict[str, torch.Tensor]:
    """The element-wise mean of these epochs' trained tensors (one epoch: its own). LoRA's two factors are
    averaged each, which is not the mean of their products; the average is validated like any epoch."""
    states = [_load_epoch_state(checkpoints, epoch) for epoch in epochs]
    return {name: sum(state[name] for state in states) / len(states) for name in states[0]}


def _changes_nothing(state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> bool:
    """Whether every trained tensor is its initial value to float16 precision, the precision an adapter
    stores its changes in: such an adapter would hold only zeros (e.g. a learning rate too small to matter)."""
    return not any(torch.any((state[name] - initial[name]).to(torch.float16)) for name in state)


def _resume(accelerator, model, optimizer, scheduler, checkpoints: Path, config: dict) -> list[dict]:
    """Restore the latest complete checkpoint; returns its history (empty: start from scratch)."""
    latest = sorted(checkpoints.glob("epoch-*/resume.pt"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not latest:
        return []
    directory = latest[-1].parent
    saved = json.loads((directory / "state.json").read_text())
    if saved["config"] != json.loads(json.dumps(config)):
        raise WhisperAdaptError("the checkpoint was made with other options or data; train into a new --out "
                                "directory or rerun without --resume", directory)
    set_trainable_state(accelerator.unwrap_model(model), _load_epoch_state(checkpoints, saved["epoch"]))
    bundle = torch.load(directory / "resume.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(bundle["optimizer"])
    scheduler.load_state_dict(bundle["scheduler"])
    _set_rng_state(bundle["rng"])
    return saved["history"]


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
