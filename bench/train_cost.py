"""Training cost, side by side in one run: our default (xattn on the last layer, encoder outputs and the
frozen decoder layers cached), the same without the decoder cache, decoder LoRA (rank 8, every layer) and
the original recipe (whole decoder trained, encoder recomputed every step, batch 2, lr 5e-4).

All train on the same clips (the packaged general set, so the benchmark needs no data of yours) for the
same number of epochs, and decode further held-out clips after every epoch as `train` does; the figure that
matters is the cost of an epoch's training steps from the second epoch on, when our cache is full. Also
prints the adapter size against a full checkpoint and the peak RAM of the process; on a GPU, each run's
peak GPU memory. `--random-size large-v3` trains a randomly initialised model of that size instead (same
memory and time per step as the real weights, which cannot be downloaded here), and `--gpu-memory-gb 12`
caps what PyTorch may allocate, as a 12 GB card would: a run that does not fit says so.

    python bench/train_cost.py [--model base | --random-size large-v3] [--clips 16] [--general-clips 8]
                               [--epochs 2] [--gpu-memory-gb G]
"""

from __future__ import annotations

import argparse
import gc
import resource
import os
import tempfile
import time
from pathlib import Path

import torch

# OpenAI's published sizes (d_model, encoder and decoder layers, heads, mel bins), for runs on random weights.
SIZES = {
    "small": (768, 12, 12, 12, 80),
    "medium": (1024, 24, 24, 16, 80),
    "large-v3": (1280, 32, 32, 20, 128),
    "large-v3-turbo": (1280, 32, 4, 20, 128),
}


def random_model(size: str, template: Path, out: Path) -> Path:
    """A randomly initialised Whisper of `size` with the tokenizer and generation settings of the Hugging Face
    model in `template` (with base's, large-v3's one extra vocabulary token is missing: nothing measurable)."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    from whisper_adapt.convert import load_tokenizer, save_hf_model

    d_model, encoder_layers, decoder_layers, heads, mels = SIZES[size]
    config = WhisperConfig.from_pretrained(template)
    config.update(dict(d_model=d_model, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                       encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d_model,
                       decoder_ffn_dim=4 * d_model, num_mel_bins=mels))
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # initialising 1.5 B weights on 2 cores is slow
        model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(template)
    save_hf_model(model.cpu(), load_tokenizer(template), mels, out)
    return out


def gpu_peaks() -> str:
    """Peak GPU memory PyTorch allocated and reserved since the last reset."""
    if not torch.cuda.is_available():
        return "no GPU"
    gib = 2 ** 30
    return f"{torch.cuda.max_memory_allocated() / gib:.2f} GiB allocated, {torch.cuda.max_memory_reserved() / gib:.2f} GiB reserved"


def timed_run(model: str, data, options, out: Path) -> tuple[list[float] | None, Path | None, str]:
    """Seconds of each epoch's training steps (its validation excluded), the adapter written and the peak GPU
    memory (validation included); seconds None when the run did not fit the GPU memory allowed."""
    from whisper_adapt.train.trainer import train_adapter

    steps_done: dict[int, float] = {}
    validated: dict[int, float] = {}

    def on_progress(event) -> None:
        if event.unit == "steps":  # stage "epoch N": its training steps, before its validation
            steps_done[int(event.stage.split()[-1])] = time.perf_counter()

    def on_event(kind: str, payload: dict) -> None:
        if kind == "epoch":
            validated[payload["epoch"]] = time.perf_counter()

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        result = train_adapter(model, data, out, options, on_event=on_event, on_progress=on_progress)
    except torch.cuda.OutOfMemoryError:
        return None, None, "out of GPU memory; " + gpu_peaks()
    # Epoch 1 also pays for filling the caches and scoring the unadapted model: count it from the start.
    seconds = [steps_done[e] - (start if e == 1 else validated[e - 1]) for e in sorted(steps_done)]
    return seconds, result.adapter_dir, gpu_peaks()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base", help="model to train; with --random-size, a Hugging Face "
                        "model directory (or base) whose tokenizer the random weights use")
    parser.add_argument("--random-size", choices=sorted(SIZES), help="train random weights of this size instead")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--general-clips", type=int, default=8,
                        help="further clips held out and decoded after every epoch, as train's forgetting check is")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--gpu-memory-gb", type=float, help="cap on GPU memory PyTorch may allocate (GB, 1e9 bytes)")
    args = parser.parse_args()

    from transformers import WhisperConfig

    from whisper_adapt.models import resolve_model
    from whisper_adapt.train.assemble import shipped_general_set
    from whisper_adapt.train.methods import MethodOptions
    from whisper_adapt.train.assemble import TrainData
    from whisper_adapt.train.trainer import PRESETS, TrainOptions

    if args.gpu_memory_gb and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_memory_gb * 1e9 / total))
    clips = shipped_general_set()[: args.clips + args.general_clips]
    data = TrainData(clips[: args.clips], general=clips[args.clips :])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A cold encoder cache of its own (the user's cache is left alone): our first epoch pays for
        # encoding, as it would on new data.
        os.environ["WHISPER_ADAPT_CACHE"] = str(Path(tmp) / "cache")
        model = args.model
        if args.random_size:
            template = Path(args.model) if Path(args.model).is_dir() else resolve_model(args.model, "hf")
            model = str(random_model(args.random_size, template, Path(tmp) / args.random_size))
        # The one-off conversion to Hugging Face form is not training cost.
        decoder_layers = WhisperConfig.from_pretrained(resolve_model(model, "hf")).decoder_layers
        every_layer = MethodOptions(layers=tuple(range(-decoder_layers, 0)))
        runs = {
            "xattn, both caches": TrainOptions(epochs=args.epochs),
            "encoder cache only": TrainOptions(epochs=args.epochs, cache_prefix=False),
            "decoder LoRA": TrainOptions(epochs=args.epochs, method="lora", lr=1e-3, method_options=every_layer),
            "original": TrainOptions(method="decoder", cache_encoder=False,
                                     **{**PRESETS["original"], "epochs": args.epochs}),
        }
        for name, options in runs.items():
            results[name] = timed_run(model, data, options, Path(tmp) / name.replace(" ", "-").replace(",", ""))
        adapter = results["xattn, both caches"][1]
        adapter_mb = sum(p.stat().st_size for p in adapter.iterdir()) / 1e6 if adapter else float("nan")
        model_mb = sum(p.stat().st_size for p in resolve_model(model, "hf").glob("*.safetensors")) / 1e6
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    capped = args.gpu_memory_gb and torch.cuda.is_available()
    cap = f", GPU memory capped at {args.gpu_memory_gb:g} GB" if capped else ""
    print(f"{args.clips} clips (+ {args.general_clips} decoded after each epoch), {args.epochs} epochs, "
          f"model {args.random_size or args.model}, {device}{cap}")
    print("(epoch 1 of the first run also fills the encoder cache the second run reuses)")
    print(f"{'epoch':>5} " + " ".join(f"{name + ' s':>21}" for name in runs) + f" {'original / ours':>16}")
    ours, original = (results[name][0] for name in ("xattn, both caches", "original"))
    for epoch in range(1, args.epochs + 1):
        cells = [seconds[epoch - 1] if seconds else None for seconds, _, _ in results.values()]
        ratio = f"{original[epoch - 1] / ours[epoch - 1]:15.1f}x" if ours and original else f"{'-':>16}"
        print(f"{epoch:>5} " + " ".join(f"{c:21.2f}" if c is not None else f"{'did not fit':>21}" for c in cells)
              + f" {ratio}")
    for name, (_, _, peaks) in results.items():
        print(f"peak GPU memory, {name}: {peaks}")
    print(f"adapter {adapter_mb:.2f} MB vs model {model_mb:.0f} MB: {100 * adapter_mb / model_mb:.2f}% (goal <= 1%)")
    print(f"peak RAM of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
