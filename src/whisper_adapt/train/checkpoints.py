"""Checkpoints: every epoch's trained tensors, kept for the final choice, and the latest epoch's optimizer,
scheduler and random states, so that `--resume` after any interruption continues to the same result as an
uninterrupted run.

`<out>/checkpoints/epoch-<n>/` holds trained.safetensors, state.json (epoch, history, resolved config) and,
for the latest epoch only, resume.pt.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.train.methods import set_trainable_state, trainable_state
from whisper_adapt.train.run import Run, Training


def _directory(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def any_saved(out_dir: Path) -> bool:
    return any(_directory(out_dir).glob("epoch-*"))


def save(run: Run, training: Training, epoch: int, history: list[dict], config: dict) -> None:
    """Trained tensors of this epoch (kept for the final choice) + everything needed to resume (latest only).
    Written to a temporary directory and renamed, so a kill never leaves half a checkpoint."""
    from safetensors.torch import save_file

    run.accelerator.wait_for_everyone()
    if not run.accelerator.is_main_process:
        return
    state = trainable_state(run.accelerator.unwrap_model(training.model))
    checkpoints = _directory(run.out_dir)
    checkpoints.mkdir(parents=True, exist_ok=True)
    tmp = checkpoints / f".epoch-{epoch}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp / "trained.safetensors")
    torch.save({"optimizer": training.optimizer.state_dict(), "scheduler": training.scheduler.state_dict(),
                "rng": _rng_state()}, tmp / "resume.pt")
    (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "history": history, "config": config},
                                               ensure_ascii=False, indent=1))
    os.replace(tmp, checkpoints / f"epoch-{epoch}")
    for old in checkpoints.glob("epoch-*/resume.pt"):
        if old.parent.name != f"epoch-{epoch}":
            old.unlink()  # only the latest epoch needs optimizer state; trained tensors stay for the choice


def resume(run: Run, training: Training, config: dict) -> list[dict]:
    """Restore the latest complete checkpoint; returns its history (empty: start from scratch)."""
    checkpoints = _directory(run.out_dir)
    latest = sorted(checkpoints.glob("epoch-*/resume.pt"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not latest:
        return []
    epoch_dir = latest[-1].parent
    saved = json.loads((epoch_dir / "state.json").read_text())
    if saved["config"] != json.loads(json.dumps(config)):
        raise WhisperAdaptError("the checkpoint was made with other options or data; train into a new --out "
                                "directory or rerun without --resume", epoch_dir)
    set_trainable_state(run.accelerator.unwrap_model(training.model), _load_epoch_state(checkpoints, saved["epoch"]))
    bundle = torch.load(epoch_dir / "resume.pt", map_location="cpu", weights_only=False)
    training.optimizer.load_state_dict(bundle["optimizer"])
    training.scheduler.load_state_dict(bundle["scheduler"])
    _set_rng_state(bundle["rng"])
    return saved["history"]


def _load_epoch_state(checkpoints: Path, epoch: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(checkpoints / f"epoch-{epoch}" / "trained.safetensors"), device="cpu")


def mean_state(out_dir: Path, epochs: list[int]) -> dict[str, torch.Tensor]:
    """The element-wise mean of these epochs' trained tensors (one epoch: its own). LoRA's two factors are
    averaged each, which is not the mean of their products; the average is validated like any epoch."""
    states = [_load_epoch_state(_directory(out_dir), epoch) for epoch in epochs]
    return {name: sum(state[name] for state in states) / len(states) for name in states[0]}


def changes_nothing(state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> bool:
    """Whether every trained tensor is its initial value to float16 precision, the precision an adapter
    stores its changes in: such an adapter would hold only zeros (e.g. a learning rate too small to matter)."""
    return not any(torch.any((state[name] - initial[name]).to(torch.float16)) for name in state)


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
