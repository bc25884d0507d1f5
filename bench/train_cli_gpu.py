"""Time and GPU memory of the real `whisper-adapt train`, phase by phase, on a randomly initialised Whisper of a
published size (same memory and time per step as the real weights, which cannot be downloaded here).

Runs the CLI in-process (`whisper_adapt.cli.main`) on your corpus and glossary, with its own options after `--`;
nothing in the training path changes: the trainer's phase functions are wrapped only to take the wall seconds
and the peak GPU memory PyTorch allocated and reserved around them. The phases: model load, encoder cache (encode
every clip, tokenize), teacher cache, frozen-layer cache, each epoch's training, validation and checkpoint, the
validation of the averaged epochs, the adapter's save. Also the whole run's peak, gaps between phases included.
`--gpu-memory-gb 12` caps what PyTorch may allocate as a 12 GB card would (as bench/train_cost.py does); a run
that does not fit says so. On a CPU there is no cap and no GPU figure. Random weights learn nothing that beats
the unadapted model, so the CLI ends with "no adapter written" (exit code 1): expected here. `--template` may be
a directory holding only base's Hugging Face config, generation config and tokenizer, where converting base is
not possible (a machine without CTranslate2).

    python bench/train_cli_gpu.py --corpus CORPUS [--glossary GLOSSARY] [--random-size large-v3 | --dims D,E,D,H,M]
                                  [--template base] [--gpu-memory-gb G] [--json FILE] [-- TRAIN OPTIONS]

The 12 GB check (GPU; the demo's packaged speech is an audiofolder, 163 clips, 101 of them holding terms):
    python bench/train_cli_gpu.py --corpus src/whisper_adapt/data/demo/speech \\
        --glossary src/whisper_adapt/data/demo/glossary.txt --random-size large-v3 --gpu-memory-gb 12 \\
        --json result.json -- --epochs 3
Its rehearsal on a CPU, with a micro model:
    OMP_NUM_THREADS=1 python bench/train_cli_gpu.py --corpus src/whisper_adapt/data/demo/speech \\
        --glossary src/whisper_adapt/data/demo/glossary.txt --dims 128,2,2,2,80 --json result.json \\
        -- --epochs 3 --batch-size 8
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from train_cost import SIZES, random_model  # noqa: E402

GIB = 2 ** 30


@dataclass
class Phase:
    name: str
    seconds: float
    peak_allocated_gib: float | None  # None without a GPU
    peak_reserved_gib: float | None


class PhaseTimer:
    """Wraps module-level functions, recording a Phase per call; keeps the run's peak GPU memory across them."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.run_peak = (0.0, 0.0)

    def take_peak(self) -> tuple[float, float] | None:
        """Peak GPU memory (GiB allocated, reserved) since the last call, folded into the run's peak."""
        if not torch.cuda.is_available():
            return None
        peak = (round(torch.cuda.max_memory_allocated() / GIB, 3), round(torch.cuda.max_memory_reserved() / GIB, 3))
        self.run_peak = (max(self.run_peak[0], peak[0]), max(self.run_peak[1], peak[1]))
        torch.cuda.reset_peak_memory_stats()
        return peak

    def wrap(self, module: ModuleType, attribute: str, title: str,
             detail: Callable[[dict], object] | None = None) -> None:
        """Replace `module.attribute` with a timed call; `detail` names the call from its bound arguments."""
        fn = getattr(module, attribute)
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = f"{title} {detail(signature.bind(*args, **kwargs).arguments)}" if detail else title
            self.take_peak()  # the gap before this phase counts towards the run's peak only
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:  # a phase that runs out of GPU memory is still listed
                seconds = round(time.perf_counter() - start, 3)
                self.phases.append(Phase(name, seconds, *(self.take_peak() or (None, None))))

        setattr(module, attribute, timed)


def time_trainer_phases(timer: PhaseTimer) -> None:
    """Wrap the functions train_adapter looks up at call time: its module's own, those of the caches and
    checkpoints modules it calls through the module, and load_adapted_model, which it imports from the adapter
    module when it runs."""
    import whisper_adapt.train.adapter as adapter
    import whisper_adapt.train.caches as caches
    import whisper_adapt.train.checkpoints as checkpoints
    import whisper_adapt.train.trainer as trainer

    def weights(arguments: dict) -> str:  # _validate's label: {"epoch": 3, ...}, {"epochs": [2, 3]} or {}
        label = arguments["label"]
        if "epoch" in label:
            return f"epoch {label['epoch']}"
        if "epochs" in label:
            return "average of epochs " + ", ".join(str(epoch) for epoch in label["epochs"])
        return "unadapted, wide check"  # the average's wider forgetting check, read for the unadapted model too

    timer.wrap(adapter, "load_adapted_model", "model load")
    timer.wrap(caches, "build_examples", "encoder cache")
    timer.wrap(caches, "_cache_teacher", "teacher cache")
    timer.wrap(caches, "_cache_prefix", "frozen-layer cache")
    timer.wrap(trainer, "_train_epoch", "training, epoch", lambda arguments: arguments["epoch"])
    timer.wrap(trainer, "_validate", "validation,", weights)
    timer.wrap(checkpoints, "save", "checkpoint, epoch", lambda arguments: arguments["epoch"])
    timer.wrap(trainer, "save_adapter", "adapter save")


def run_cli(argv: list[str], timer: PhaseTimer) -> dict:
    """Run `whisper-adapt train` in-process with its phases timed; its exit code, wall seconds and peak."""
    from whisper_adapt.cli import main as cli_main

    time_trainer_phases(timer)
    if torch.cuda.is_available():  # building the random model used the GPU: not the run's memory
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    print("whisper-adapt " + " ".join(argv), flush=True)
    start = time.perf_counter()
    try:
        result = {"exit_code": cli_main(argv)}
    except torch.cuda.OutOfMemoryError as e:
        result = {"exit_code": None, "error": f"out of GPU memory: {e}"}
    result["seconds"] = round(time.perf_counter() - start, 2)
    timer.take_peak()  # the tail after the last phase
    return result


def print_summary(header: str, timer: PhaseTimer, result: dict, cap_gb: float | None) -> None:
    print(f"\n{header}")
    print(f"{'phase':<38} {'seconds':>9}  peak GPU memory (GiB allocated / reserved)")
    for phase in timer.phases:
        memory = ("no GPU" if phase.peak_allocated_gib is None
                  else f"{phase.peak_allocated_gib:.2f} / {phase.peak_reserved_gib:.2f}")
        print(f"{phase.name:<38} {phase.seconds:9.2f}  {memory}")
    outside = result["seconds"] - sum(phase.seconds for phase in timer.phases)
    print(f"{'whole run':<38} {result['seconds']:9.2f}  ({outside:.2f} s outside the phases above)")
    if torch.cuda.is_available():
        cap = f"; cap {cap_gb:g} GB = {cap_gb * 1e9 / GIB:.2f} GiB" if cap_gb else ""
        print(f"peak GPU memory of the run: {timer.run_peak[0]:.2f} GiB allocated, "
              f"{timer.run_peak[1]:.2f} GiB reserved{cap}")
    else:
        print("peak GPU memory of the run: no GPU")
    print(result.get("error") or f"whisper-adapt train exit code {result['exit_code']}")


def dims(text: str) -> tuple[int, ...]:
    """d_model,encoder_layers,decoder_layers,heads,mels, as in train_cost.SIZES."""
    values = tuple(int(part) for part in text.split(","))
    if len(values) != 5 or values[0] % values[3] or values[4] not in (80, 128):
        raise argparse.ArgumentTypeError("five integers, d_model a multiple of heads, mels 80 or 128")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="training clips, as `whisper-adapt train --corpus` takes")
    parser.add_argument("--glossary", help="glossary, as `whisper-adapt train --glossary` takes")
    parser.add_argument("--random-size", choices=sorted(SIZES), default="large-v3",
                        help="published size of the random weights trained")
    parser.add_argument("--dims", type=dims, help="D_MODEL,ENCODER_LAYERS,DECODER_LAYERS,HEADS,MELS instead of "
                        "--random-size: e.g. 128,2,2,2,80, a micro model for a CPU rehearsal")
    parser.add_argument("--template", default="base", help="Hugging Face model directory (its config, generation "
                        "config and tokenizer suffice) or base, whose tokenizer and settings the random weights use")
    parser.add_argument("--gpu-memory-gb", type=float, help="cap on GPU memory PyTorch may allocate (GB, 1e9 bytes)")
    parser.add_argument("--json", type=Path, help="write the record here")
    parser.add_argument("train_options", nargs="*", help="after --: further `whisper-adapt train` options")
    args = parser.parse_args()

    from transformers.utils import logging as transformers_logging

    from whisper_adapt.models import resolve_model

    transformers_logging.disable_progress_bar()  # the weights' load and save bars would clutter the log
    capped = bool(args.gpu_memory_gb and torch.cuda.is_available())
    if capped:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_memory_gb * 1e9 / total))
    size = args.random_size
    if args.dims:
        size = "custom"
        SIZES[size] = args.dims  # random_model looks the dimensions up by name
    # Found before the cache moves below: the template's conversion is in the user's cache, not a cold one.
    template = Path(args.template) if Path(args.template).is_dir() else resolve_model(args.template, "hf")
    timer = PhaseTimer()
    with tempfile.TemporaryDirectory() as tmp:
        # A cold encoder cache of its own, as on new data (and the user's cache is left alone).
        os.environ["WHISPER_ADAPT_CACHE"] = str(Path(tmp) / "cache")
        model = random_model(size, template, Path(tmp) / "model")
        argv = ["train", "--corpus", args.corpus, "--model", str(model), "--out", str(Path(tmp) / "run"),
                *(["--glossary", args.glossary] if args.glossary else []), *args.train_options]
        result = run_cli(argv, timer)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    cap = f", GPU memory capped at {args.gpu_memory_gb:g} GB" if capped else ""
    header = f"random {size} {SIZES[size]}, {device}{cap}; train options: {' '.join(args.train_options) or 'none'}"
    print_summary(header, timer, result, args.gpu_memory_gb if capped else None)
    if args.json:
        record = {"command": sys.argv, "train_argv": argv, "size": size, "dims": SIZES[size], "device": device,
                  "torch": torch.__version__, "gpu_memory_cap_gb": args.gpu_memory_gb if capped else None, **result,
                  "phases": [asdict(phase) for phase in timer.phases],
                  "peak_allocated_gib": timer.run_peak[0] if torch.cuda.is_available() else None,
                  "peak_reserved_gib": timer.run_peak[1] if torch.cuda.is_available() else None}
        args.json.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
