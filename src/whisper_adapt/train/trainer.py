"""The training loop: read it top to bottom.

accelerate handles devices, mixed precision and data parallelism (the same code runs under
`accelerate launch` / torchrun). The caches are computed first (train/caches.py); every epoch ends with a
checkpoint (train/checkpoints.py), so `--resume` after any interruption continues to the same result as an
uninterrupted run. After the last epoch the weights of the last epochs are averaged and validated like one more
epoch; the adapter holds that average, or else the epoch with the best term recall, within a general-CER budget
(see `choose_kept`), never chosen by training loss.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary
from whisper_adapt.hf_decode import make_prompt
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.train import caches, checkpoints
from whisper_adapt.train import data as train_data
from whisper_adapt.train.adapter import AdapterInfo, save_adapter
from whisper_adapt.train.assemble import TrainData
from whisper_adapt.train.distill import distillation_loss
from whisper_adapt.train.methods import get_method, resolve_layers, set_trainable_state, trainable_state
from whisper_adapt.train.prefix import feeding_prefix, prefix_depth
from whisper_adapt.train.run import PRESETS, EventFn, PhaseClock, Run, Training, TrainOptions
from whisper_adapt.train.scoring import choose_kept, score_epoch, score_nonspeech

# The CLI, the demo and the benchmarks import these from here; the options and stages live in run.py and caches.py.
__all__ = ["PRESETS", "EventFn", "TrainOptions", "TrainResult", "term_weighted_loss", "train_adapter"]
NONSPEECH_CHECK_TOKENS = 32
TEACHER_KEYS = ("teacher_ids", "teacher_log_probs", "teacher_mask")  # in distillation_loss's order


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path | None  # None when nothing beat the unadapted model within the budget
    kept_epochs: list[int]  # one epoch, or the averaged ones; empty with no adapter
    history: list[dict]  # epoch 0 (the unadapted model) to the last
    average: dict | None  # validation of the averaged weights, with their "epochs"; None when not averaged
    problems: list[WhisperAdaptError]
    phases: dict[str, float]  # wall-clock seconds of each phase, in the order they ran


def train_adapter(base: str | Path, data: TrainData, out_dir: Path, options: TrainOptions = TrainOptions(),
                  glossary: Glossary | None = None, stack_on: tuple[Path, ...] = (), resume: bool = False,
                  on_event: EventFn | None = None, on_progress: ProgressFn = ignore) -> TrainResult:
    from whisper_adapt.convert import load_tokenizer
    from whisper_adapt.models import model_sha256, resolve_model
    from whisper_adapt.train.adapter import load_adapted_model

    _check_start(data, out_dir, resume)
    clock = PhaseClock()
    accelerator = _accelerator(options, out_dir)
    base_dir = resolve_model(base, "hf")
    model = load_adapted_model(base, list(stack_on), device="cpu")
    tokenizer = load_tokenizer(base_dir)
    run = Run(options, accelerator, tokenizer, make_prompt(tokenizer, options.language), glossary, out_dir,
              on_event if on_event and accelerator.is_main_process else _silent,
              on_progress if accelerator.is_main_process else ignore, clock)
    method = get_method(options.method)
    layers = resolve_layers(model, options.method_options.layers)
    clock.lap("loading the model")

    if options.augment is not None:
        data = caches.add_acoustics(run, data)
        clock.lap("rendering room variants")
    examples, problems = caches.build_examples(run, model, data, method.freezes_encoder and options.cache_encoder)
    clock.lap("encoding clips")
    depth = prefix_depth(model, layers if method.trains_chosen_layers else None) if options.cache_prefix else 0
    examples = caches.cache_trained(run, model, examples, depth)
    model = method.prepare(model, options.method_options)
    initial = trainable_state(model)  # what the adapter's changes are measured from
    training = _prepare_training(run, model, examples, data, depth)
    config = _resolved_config(options, base, stack_on, data)
    clock.lap("preparing the trainer")
    history = _train_epochs(run, training, examples, config, resume)
    average = _validate_average(run, training.model, examples, initial) if options.averaged_epochs() else None
    clock.lap("checking the average")
    kept, state = _choose_kept(run, history, average, initial)

    if kept and accelerator.is_main_process:
        info = AdapterInfo(
            method=options.method, layers=layers, base_model=str(base), base_sha256=model_sha256(base_dir),
            stacked_on=[str(Path(p).resolve()) for p in stack_on], training=config, epochs=history,
            average=average, kept_epochs=kept, phases=clock.seconds,
        )
        save_adapter(out_dir / "adapter", accelerator.unwrap_model(training.model), state, info, initial)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also leaves the process group: after the last barrier
    clock.lap("saving the adapter")
    return TrainResult(out_dir / "adapter" if kept else None, kept, history, average, problems, clock.seconds)


def _check_start(data: TrainData, out_dir: Path, resume: bool) -> None:
    if not data.train and not data.replay:
        raise WhisperAdaptError("no training clips (reviewed clips holding glossary terms, plus replay)")
    if not resume and checkpoints.any_saved(out_dir):
        raise WhisperAdaptError("holds checkpoints of an earlier run: add --resume to continue it, or train into "
                                "another --out", out_dir)


def _accelerator(options: TrainOptions, out_dir: Path):
    """The run's accelerator, with every random generator seeded."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    accelerator = Accelerator(
        # Without a GPU, accelerate only joins a torchrun/`accelerate launch` group (gloo) when told it is on CPU.
        cpu=not torch.cuda.is_available(),
        mixed_precision=_precision(options), gradient_accumulation_steps=options.grad_accum,
        log_with="tensorboard", project_dir=str(out_dir / "logs"),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(options.seed)
    return accelerator


def _prepare_training(run: Run, model, examples: dict[str, list], data: TrainData, depth: int) -> Training:
    """The optimizer, the epochs' mix of examples and the schedule, prepared by accelerate with the model."""
    options, accelerator = run.options, run.accelerator
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr, weight_decay=options.weight_decay, eps=options.adam_eps)
    dataset = train_data.EpochMix(
        examples["train"], caches.variant_groups(examples["train"], examples["variants"]),
        {"replay": (examples["replay"], len(examples["replay"]) if data.replay_per_epoch is None else data.replay_per_epoch),
         "nonspeech": (examples["nonspeech"], data.nonspeech_per_epoch)},
        model.config.num_mel_bins, options.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=options.batch_size, shuffle=True,
                                         collate_fn=partial(train_data.collate, pad_id=run.prompt.eot))
    steps_per_epoch = max(1, -(-len(loader) // (options.grad_accum * accelerator.num_processes)))
    scheduler = _linear_schedule(optimizer, options.warmup_steps, steps_per_epoch * options.epochs)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    accelerator.init_trackers("train", config=_flat_config(options))
    return Training(model, optimizer, scheduler, loader, depth)


def _train_epochs(run: Run, training: Training, examples: dict[str, list], config: dict, resume: bool) -> list[dict]:
    """Epoch 0 (the unadapted model, scored) to the last, each trained, scored and checkpointed; a resumed run
    starts after its latest checkpoint. Returns every epoch's scores."""
    history = checkpoints.resume(run, training, config) if resume else []
    if not history:
        history = [_validate(run, training.model, examples, {"epoch": 0, "train_loss": None})]
        run.emit("epoch", history[-1])
        run.clock.lap("validating epochs")
    for epoch in range(len(history), run.options.epochs + 1):
        loss = _train_epoch(run, training, epoch)
        run.clock.lap("training steps")
        history.append(_validate(run, training.model, examples, {"epoch": epoch, "train_loss": loss}))
        run.emit("epoch", history[-1])
        run.clock.lap("validating epochs")
        checkpoints.save(run, training, epoch, history, config)
        run.clock.lap("saving checkpoints")
    return history


def _choose_kept(run: Run, history: list[dict], average: dict | None,
                 initial: dict[str, torch.Tensor]) -> tuple[list[int], dict[str, torch.Tensor] | None]:
    """The epochs the adapter keeps (see `choose_kept`) and their mean trained tensors; none at all when those
    tensors would not change the model."""
    kept = choose_kept(history, average, run.options.forgetting_budget)
    state = checkpoints.mean_state(run.out_dir, kept) if kept else None
    if state is not None and checkpoints.changes_nothing(state, initial):
        kept, state = [], None  # a step too small to move any weight: an adapter of zeros is no adaptation
    return kept, state


def _silent(kind: str, payload: dict) -> None:
    return None


def _precision(options: TrainOptions) -> str:
    if options.mixed_precision != "auto":
        return options.mixed_precision
    return "fp16" if torch.cuda.is_available() else "no"


def _linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, min(warmup_steps, total_steps), max(total_steps, 1))


def _train_epoch(run: Run, training: Training, epoch: int) -> float:
    options, accelerator, model, loader = run.options, run.accelerator, training.model, training.loader
    model.train()
    loader.set_epoch(epoch)  # the shuffle depends only on (seed, epoch): resuming replays the same order
    loader.dataset.set_epoch(epoch)  # accelerate passes the epoch to the sampler only, not to the dataset too
    total, count, start = 0.0, 0, time.perf_counter()
    with contextlib.ExitStack() as stack:
        feed = (stack.enter_context(feeding_prefix(accelerator.unwrap_model(model), training.depth))
                if training.depth else None)
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
                training.optimizer.step()
                training.scheduler.step()
                training.optimizer.zero_grad()
            total += loss.item()
            count += 1
            clips = step * options.batch_size * accelerator.num_processes
            run.progress(Progress(f"epoch {epoch}", step, len(loader), "steps",
                                  f"loss {total / count:.3f}  {clips / (time.perf_counter() - start):.1f} clips/s"))
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


def _validate(run: Run, model, examples: dict[str, list], label: dict) -> dict:
    """`label` (which weights these are) with the validation and forgetting-check scores of the model now."""
    from whisper_adapt.train.validate import decode_examples

    accelerator, prompt, tokenizer = run.accelerator, run.prompt, run.tokenizer
    start = time.perf_counter()
    metrics = dict(label)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.eval()
        for name in ("validation", "general"):
            if examples[name]:
                decoded = decode_examples(unwrapped, examples[name], prompt, tokenizer)
                metrics |= score_epoch(name, [e.clip.text for e in examples[name]], decoded, run.glossary)
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


def _validate_average(run: Run, model, examples: dict[str, list], initial: dict[str, torch.Tensor]) -> dict:
    """The mean of the averaged epochs' weights scored like an epoch, its forgetting check widened by
    `wide_check` for it and for the unadapted model alike: this check decides what ships, and 40 clips move by
    about a point from one epoch to the next by chance."""
    epochs = run.options.averaged_epochs()
    wide = {**examples, "general": examples["general"] + examples["wide_check"]}
    unwrapped = run.accelerator.unwrap_model(model)
    unadapted = {}
    if examples["wide_check"]:
        set_trainable_state(unwrapped, initial)
        unadapted = _validate(run, model, {**wide, "validation": [], "nonspeech_check": []}, {})
    set_trainable_state(unwrapped, checkpoints.mean_state(run.out_dir, epochs))
    average = _validate(run, model, wide, {"epochs": epochs})
    if "general_cer" in unadapted:
        average["unadapted_general_cer"] = unadapted["general_cer"]
    run.emit("average", average)
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
