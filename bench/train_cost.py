"""Training cost, side by side in one run: our default (xattn on the last layer, encoder outputs and the
frozen decoder layers cached), the same without the decoder cache, and the original recipe (whole decoder trained, encoder recomputed every step, batch 2, lr 5e-4).

Both train on the same clips (the packaged general set, so the benchmark needs no data of yours) for the
same number of epochs; the figure that matters is the cost of an epoch from the second one on, when our
cache is full. Also prints the adapter size against a full checkpoint and the peak RAM of the process.

    python bench/train_cost.py [--model base] [--clips 16] [--epochs 2]
"""

from __future__ import annotations

import argparse
import resource
import os
import tempfile
import time
from pathlib import Path


def timed_run(model: str, clips, options, out: Path) -> tuple[list[float], Path | None]:
    """Seconds of each epoch's training steps (validation excluded) and the adapter written."""
    from whisper_adapt.train.trainer import TrainData, train_adapter

    last_step: dict[int, float] = {}

    def on_event(kind: str, payload: dict) -> None:
        if kind == "step":
            last_step[payload["epoch"]] = time.perf_counter()

    start = time.perf_counter()
    result = train_adapter(model, TrainData(clips), out, options, on_event=on_event)
    # Epoch 1 also pays for filling the cache: count it from the start of the run.
    seconds = [last_step[e] - (start if e == 1 else last_step[e - 1]) for e in sorted(last_step)]
    return seconds, result.adapter_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    from whisper_adapt.models import resolve_model
    from whisper_adapt.train.assemble import shipped_general_set
    from whisper_adapt.train.trainer import PRESETS, TrainOptions

    clips = shipped_general_set()[: args.clips]
    ours = TrainOptions(epochs=args.epochs)
    encoder_only = TrainOptions(epochs=args.epochs, cache_prefix=False)
    original = TrainOptions(method="decoder", cache_encoder=False, **{**PRESETS["original"], "epochs": args.epochs})
    with tempfile.TemporaryDirectory() as tmp:
        # A cold encoder cache of its own (the user's cache is left alone): our first epoch pays for
        # encoding, as it would on new data.
        os.environ["WHISPER_ADAPT_CACHE"] = str(Path(tmp) / "cache")
        resolve_model(args.model, "hf")  # the one-off conversion to Hugging Face form is not training cost
        ours_s, adapter = timed_run(args.model, clips, ours, Path(tmp) / "ours")
        encoder_only_s, _ = timed_run(args.model, clips, encoder_only, Path(tmp) / "encoder-only")
        original_s, _ = timed_run(args.model, clips, original, Path(tmp) / "original")
        adapter_mb = sum(p.stat().st_size for p in adapter.iterdir()) / 1e6
        model_mb = sum(p.stat().st_size for p in resolve_model(args.model, "hf").glob("*.safetensors")) / 1e6
    print(f"{len(clips)} clips, {args.epochs} epochs, model {args.model}")
    print("(epoch 1 of the first run also fills the encoder cache the second run reuses)")
    print(f"{'epoch':>5} {'xattn, both caches s':>21} {'encoder cache only s':>21} {'original s':>11} {'ratio':>7}")
    for epoch, (a, e, b) in enumerate(zip(ours_s, encoder_only_s, original_s), start=1):
        print(f"{epoch:>5} {a:21.2f} {e:21.2f} {b:11.2f} {b / a:6.1f}x")
    print(f"adapter {adapter_mb:.2f} MB vs model {model_mb:.0f} MB: {100 * adapter_mb / model_mb:.2f}% (goal <= 1%)")
    print(f"peak RAM of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
