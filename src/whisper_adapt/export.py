"""Export: merge adapters into the base, write the merged Hugging Face model and its CTranslate2 conversion,
and check that both decode a fixed clip the same way before anyone trusts the export.

Layout of the output directory: the CTranslate2 model at the top (so `transcribe --model DIR` and any
faster-whisper program load it as is) and the merged Hugging Face model under `hf/`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.errors import ModelError
from whisper_adapt.evaluate import pooled_cer

QUANTIZATIONS = ("float16", "int8", "int8_float16", "float32")
# An export whose two forms disagree by more than this on the check clip is broken, not merely rounded.
MAX_CHECK_CER = 0.1


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    hf_text: str
    ct2_text: str
    check_cer: float


def export_model(base: str | Path, adapters: list[Path], out_dir: Path, quantization: str = "float16",
                 check_audio: np.ndarray | None = None) -> ExportResult:
    from whisper_adapt.convert import convert_hf_to_ct2, load_tokenizer, save_hf_model
    from whisper_adapt.models import resolve_model
    from whisper_adapt.train.adapter import adapter_dir, load_adapted_model, read_adapter_info

    adapters = [adapter_dir(a) for a in adapters]  # a train run directory stands for its adapter
    if quantization not in QUANTIZATIONS:
        raise ModelError(f"unknown quantization '{quantization}'; choose from {', '.join(QUANTIZATIONS)}")
    base_dir = resolve_model(base, "hf")
    model = load_adapted_model(base, adapters, device="cpu")
    tokenizer = load_tokenizer(base_dir)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    save_hf_model(model, tokenizer, model.config.num_mel_bins, staging / "hf")
    convert_hf_to_ct2(staging / "hf", staging / "ct2", quantization=quantization)
    for item in (staging / "ct2").iterdir():
        item.rename(staging / item.name)
    (staging / "ct2").rmdir()

    audio = check_audio if check_audio is not None else _sample_audio()
    hf_text, ct2_text = _decode_both(model, tokenizer, staging, audio)
    check = pooled_cer([hf_text], [ct2_text])
    manifest = {"base": str(base), "adapters": [str(Path(a).resolve()) for a in adapters],
                "adapter_info": [asdict(read_adapter_info(a)) for a in adapters], "quantization": quantization,
                "check": {"hf_text": hf_text, "ct2_text": ct2_text, "cer": check}}
    (staging / "export.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    if check > MAX_CHECK_CER:
        raise ModelError(f"export check failed: the merged model says '{hf_text}' but the CTranslate2 export "
                         f"says '{ct2_text}' (CER {check:.2f})", staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return ExportResult(out_dir, hf_text, ct2_text, check)


def _sample_audio() -> np.ndarray:
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.resources import sample_recording

    return decode_audio(sample_recording())


def _decode_both(model, tokenizer, ct2_dir: Path, audio: np.ndarray) -> tuple[str, str]:
    """Greedy, no timestamps, one 30 s window, same log-mel features for both."""
    from faster_whisper import WhisperModel

    from whisper_adapt.features import clip_features
    from whisper_adapt.guards import GuardOptions, collapse_repeats
    from whisper_adapt.hf_decode import greedy_decode, make_prompt

    features = clip_features(audio, model.config.num_mel_bins)
    prompt = make_prompt(tokenizer, "ja")
    with torch.no_grad():
        hidden = model.get_encoder()(torch.from_numpy(features)[None]).last_hidden_state
    duration_s = min(len(audio) / 16000, 30.0)
    hf_text = greedy_decode(model, hidden, [duration_s], prompt, tokenizer)[0].text
    ct2 = WhisperModel(str(ct2_dir), device="cpu", compute_type="float32")
    segments, _ = ct2.transcribe(audio[: 30 * 16000], language="ja", beam_size=1, temperature=0.0,
                                 without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
    # Both sides pass the same loop guard: a looping decode is cut at different lengths by the two decoders.
    return hf_text, collapse_repeats("".join(segment.text for segment in segments).strip(), GuardOptions())
