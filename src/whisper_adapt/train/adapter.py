"""Adapters on disk: only the trained tensors (safetensors) plus `adapter.json`; loading and merging.

An adapter is megabytes, not gigabytes. It stores what training changed — trained minus initial values, in
float16 — rather than the trained values: a change is small, so float16 keeps it to about 1e-3 of itself
(the merged weights are within ~1e-6 of the trained ones) at half the size of float32 values. LoRA adapters are saved by peft itself (adapter_model.safetensors +
adapter_config.json), so they are also valid PEFT adapters. Weights are always loaded on the CPU and the
model is moved to its device afterwards, so a small GPU never holds two copies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from whisper_adapt.errors import ModelError
from whisper_adapt.train.methods import saved_by_peft, set_trainable_state

ADAPTER_JSON = "adapter.json"
TENSORS_FILE = "adapter.safetensors"
FORMAT_VERSION = 2  # 1: trained values in float32; 2: float16 changes


@dataclass(frozen=True)
class AdapterInfo:
    method: str
    layers: list[int]
    base_model: str  # the spec the user gave
    base_sha256: str  # content hash of the base weights the adapter was trained on
    stacked_on: list[str] = field(default_factory=list)  # adapter directories applied before this one
    training: dict = field(default_factory=dict)  # resolved options, data and glossary hashes, replay
    epochs: list[dict] = field(default_factory=list)  # per-epoch validation metrics
    average: dict | None = None  # validation metrics of the last epochs' averaged weights, with their "epochs"
    kept_epochs: list[int] = field(default_factory=list)  # the epochs whose (averaged) weights this adapter holds
    phases: dict[str, float] = field(default_factory=dict)  # wall-clock seconds of training's phases
    format_version: int = FORMAT_VERSION


def save_adapter(out_dir: Path, model: torch.nn.Module, state: dict[str, torch.Tensor], info: AdapterInfo,
                 initial: dict[str, torch.Tensor] | None = None) -> None:
    """Write the adapter (trained `state`; `initial`: the same tensors before training) to a temporary
    directory and move it into place whole."""
    from safetensors.torch import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        if saved_by_peft(info.method):
            set_trainable_state(model, state)
            model.save_pretrained(tmp)
        else:
            if initial is None:
                raise ValueError("a non-LoRA adapter is saved as changes: the initial tensors are needed")
            changes = {name: (tensor - initial[name]).to(torch.float16).contiguous() for name, tensor in state.items()}
            save_file(changes, tmp / TENSORS_FILE)
        (tmp / ADAPTER_JSON).write_text(json.dumps(asdict(info), ensure_ascii=False, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; an adapter is meant to be shared
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def adapter_dir(path: Path) -> Path:
    """The adapter in `path`: a train run directory holds it in `adapter/`, else `path` is the adapter."""
    inner = Path(path) / "adapter"
    return inner if (inner / ADAPTER_JSON).is_file() else Path(path)


def read_adapter_info(adapter_dir: Path) -> AdapterInfo:
    path = Path(adapter_dir) / ADAPTER_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "chosen_epoch" in data:  # written before weight averaging: one epoch or none
            chosen = data.pop("chosen_epoch")
            data["kept_epochs"] = [] if chosen is None else [chosen]
        return AdapterInfo(**data)
    except FileNotFoundError as e:
        raise ModelError("not an adapter directory (no adapter.json)", adapter_dir) from e
    except (ValueError, TypeError) as e:
        raise ModelError(f"unreadable adapter.json ({e})", path) from e


def apply_adapter(model: torch.nn.Module, adapter_dir: Path, base_sha256: str | None = None) -> torch.nn.Module:
    """Merge one adapter into `model` (on the CPU) and return the merged plain Whisper model."""
    info = read_adapter_info(adapter_dir)
    if base_sha256 is not None and info.base_sha256 != base_sha256:
        raise ModelError(f"adapter was trained on another base model ({info.base_model}, "
                         f"sha256 {info.base_sha256[:12]}…)", adapter_dir)
    if saved_by_peft(info.method):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    from safetensors.torch import load_file

    tensors = load_file(str(Path(adapter_dir) / TENSORS_FILE), device="cpu")
    own = model.state_dict()
    unknown = [name for name in tensors if name not in own or own[name].shape != tensors[name].shape]
    if unknown:
        raise ModelError(f"adapter tensors do not fit this model: {', '.join(unknown[:3])}", adapter_dir)
    if info.format_version >= 2:
        tensors = {name: own[name] + change.to(own[name].dtype) for name, change in tensors.items()}
    model.load_state_dict(tensors, strict=False)
    return model


def check_stages(adapters: list[Path]) -> None:
    """Each adapter must come right after the stages it was trained on, all of them and in order: merged
    without its lower stage, a stacked adapter gives a model that nobody trained or evaluated."""
    for position, adapter_dir in enumerate(adapters):
        wanted = [str(Path(p).resolve()) for p in read_adapter_info(adapter_dir).stacked_on]
        given = [str(Path(p).resolve()) for p in adapters[:position]]
        if wanted != given:
            order = " ".join(f"--adapter {p}" for p in wanted + [str(Path(adapter_dir).resolve())])
            raise ModelError(f"was trained on top of {len(wanted)} earlier stage(s) ({', '.join(wanted) or 'none'}) "
                             f"but is given after {len(given)} ({', '.join(given) or 'none'}); give them in "
                             f"training order: {order}", adapter_dir)


def load_adapted_model(base: str | Path, adapters: list[Path], device: str = "cpu") -> torch.nn.Module:
    """The Hugging Face base model with `adapters` merged in order, then moved to `device`."""
    from transformers import WhisperForConditionalGeneration

    from whisper_adapt.models import model_sha256, resolve_model

    base_dir = resolve_model(base, "hf")
    model = WhisperForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32)
    check_stages(adapters)
    base_sha = model_sha256(base_dir) if adapters else None
    for adapter_dir in adapters:
        model = apply_adapter(model, Path(adapter_dir), base_sha)
    return model.to(device).eval()
