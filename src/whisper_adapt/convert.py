"""Weight conversion between Whisper's three on-disk forms.

- CTranslate2 → Hugging Face: `model.bin` is read directly. Its layout (ctranslate2/specs/model_spec.py):
  uint32 binary version, spec name, uint32 revision, uint32 variable count, then per variable its name,
  uint8 rank, uint32 dims, uint8 dtype id, uint32 byte count and the raw bytes; then uint32 alias count and
  (alias, target) name pairs. Strings are uint16 length (with the trailing NUL) + UTF-8 bytes + NUL.
- Hugging Face → CTranslate2: ctranslate2's own converter, plus the tokenizer and preprocessor files.
- OpenAI `.pt` → Hugging Face: a fixed renaming of the checkpoint's state dict.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisper_adapt.errors import ModelError

# Order of ctranslate2's DataType enum (include/ctranslate2/types.h).
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_BINARY_VERSIONS = range(5, 7)


@dataclass(frozen=True)
class Ct2Model:
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]


def read_ct2_model(path: Path) -> Ct2Model:
    """Read a CTranslate2 `model.bin` into named numpy arrays (aliases resolved; bfloat16 as float32)."""
    try:
        with open(path, "rb") as f:
            return _parse_ct2(f, path)
    except (OSError, ValueError, struct.error, IndexError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read CTranslate2 model ({e})", path) from e


def _parse_ct2(f: BinaryIO, path: Path) -> Ct2Model:
    def take(fmt: str):
        return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

    def take_string() -> str:
        return f.read(take("H"))[:-1].decode("utf-8")

    version = take("I")
    if version not in _SUPPORTED_BINARY_VERSIONS:
        raise ModelError(f"unsupported CTranslate2 binary version {version}", path)
    spec_name, revision = take_string(), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = take_string()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype = _CT2_DTYPES[take("B")]
        size = take("I")
        variables[name] = _read_array(f, dtype, shape, size)
    for _ in range(take("I")):
        alias, target = take_string(), take_string()
        variables[alias] = variables[target]
    return Ct2Model(spec_name, revision, variables)


def _read_array(f: BinaryIO, dtype: str, shape: tuple[int, ...], size: int) -> np.ndarray:
    stored = np.dtype("<u2" if dtype == "bfloat16" else "<" + np.dtype(dtype).str[1:])
    array = np.fromfile(f, dtype=stored, count=size // stored.itemsize)
    if array.nbytes != size:
        raise ValueError(f"file ends inside a tensor ({array.nbytes} of {size} bytes)")
    if dtype == "bfloat16":
        # numpy has no bfloat16: widen the 16 stored bits into the top half of a float32.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array.reshape(shape)


def _weight(variables: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    """A float32 weight, dequantized when the model was saved as int8/int16 (scale per output row)."""
    weight = variables[f"{prefix}/weight"]
    scale = variables.get(f"{prefix}/weight_scale")
    if scale is not None:
        scale = scale.astype(np.float32)
        # One scale per output channel, broadcast over the remaining axes (conv weights have two).
        return weight.astype(np.float32) / scale.reshape(scale.shape + (1,) * (weight.ndim - scale.ndim))
    return weight.astype(np.float32)


def _hf_name_map(n_encoder: int, n_decoder: int) -> list[tuple[str, str]]:
    """(CTranslate2 prefix, Hugging Face prefix) pairs for every unfused module."""
    pairs = [
        ("encoder/conv1", "model.encoder.conv1"),
        ("encoder/conv2", "model.encoder.conv2"),
        ("encoder/layer_norm", "model.encoder.layer_norm"),
        ("decoder/layer_norm", "model.decoder.layer_norm"),
    ]
    for side, count in (("encoder", n_encoder), ("decoder", n_decoder)):
        for i in range(count):
            ct2, hf = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            pairs += [
                (f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm"),
                (f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj"),
                (f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm"),
                (f"{ct2}/ffn/linear_0", f"{hf}.fc1"),
                (f"{ct2}/ffn/linear_1", f"{hf}.fc2"),
            ]
            if side == "decoder":
                pairs += [
                    (f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm"),
                    (f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj"),
                    (f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj"),
                ]
    return pairs


def _module_tensors(variables: dict[str, np.ndarray], ct2: str) -> dict[str, np.ndarray]:
    if f"{ct2}/gamma" in variables:
        return {"weight": variables[f"{ct2}/gamma"], "bias": variables[f"{ct2}/beta"]}
    return {"weight": _weight(variables, ct2), "bias": variables[f"{ct2}/bias"]}


def _split_fused(variables: dict[str, np.ndarray], ct2: str, hf: str, names: tuple[str, ...]) -> dict:
    """Split a fused projection (q|k|v or k|v). Keys carry no bias in Hugging Face's Whisper; a key bias only
    adds a per-query constant to the attention logits, which softmax cancels, so dropping it is exact."""
    weights = np.split(_weight(variables, ct2), len(names))
    biases = np.split(variables[f"{ct2}/bias"], len(names))
    out = {}
    for name, weight, bias in zip(names, weights, biases):
        out[f"{hf}.{name}.weight"] = weight
        if name != "k_proj":
            out[f"{hf}.{name}.bias"] = bias
    return out


def ct2_to_hf_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """Rename and unfuse a CTranslate2 Whisper's variables into a Hugging Face state dict (float32)."""
    v = model.variables
    n_encoder, n_decoder = _count_layers(v, "encoder"), _count_layers(v, "decoder")
    state: dict[str, np.ndarray] = {}
    for ct2, hf in _hf_name_map(n_encoder, n_decoder):
        for key, value in _module_tensors(v, ct2).items():
            state[f"{hf}.{key}"] = value
    for side, count in (("encoder", n_encoder), ("decoder", n_decoder)):
        for i in range(count):
            fused = f"{side}/layer_{i}/self_attention/linear_0"
            state |= _split_fused(v, fused, f"model.{side}.layers.{i}.self_attn", ("q_proj", "k_proj", "v_proj"))
    for i in range(n_decoder):
        fused = f"decoder/layer_{i}/attention/linear_1"
        state |= _split_fused(v, fused, f"model.decoder.layers.{i}.encoder_attn", ("k_proj", "v_proj"))
    state["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    state["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    state["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    # Always copy: CTranslate2 aliases variables with identical values, and tensors sharing memory
    # would be refused by safetensors (and would train as one).
    return {name: np.array(value, dtype=np.float32) for name, value in state.items()}


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    count = 0
    while f"{side}/layer_{count}/ffn/layer_norm/gamma" in variables:
        count += 1
    return count


def ct2_hf_config(model: Ct2Model, ct2_config: dict) -> dict:
    """The Hugging Face WhisperConfig fields implied by a CTranslate2 Whisper's tensors and config.json."""
    v = model.variables
    d_model = v["decoder/embeddings/weight"].shape[1]
    return {
        "vocab_size": v["decoder/embeddings/weight"].shape[0],
        "num_mel_bins": v["encoder/conv1/weight"].shape[1],
        "d_model": d_model,
        "encoder_layers": _count_layers(v, "encoder"),
        "decoder_layers": _count_layers(v, "decoder"),
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": v["encoder/layer_0/ffn/linear_0/bias"].shape[0],
        "decoder_ffn_dim": v["decoder/layer_0/ffn/linear_0/bias"].shape[0],
        "max_source_positions": v["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": v["decoder/position_encodings/encodings"].shape[0],
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, 50257]),
    }


def convert_ct2_to_hf(ct2_dir: Path, out_dir: Path) -> None:
    """Write a Hugging Face Whisper directory (float32 safetensors, tokenizer, preprocessor, generation config)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    model = read_ct2_model(ct2_dir / "model.bin")
    if model.spec_name != "WhisperSpec":
        raise ModelError(f"not a Whisper model (CTranslate2 spec {model.spec_name})", ct2_dir)
    ct2_config = read_json(ct2_dir / "config.json")
    tokenizer = load_tokenizer(ct2_dir)
    config = WhisperConfig(**ct2_hf_config(model, ct2_config), **special_token_ids(tokenizer))
    with torch.device("meta"):
        hf_model = WhisperForConditionalGeneration(config)
    state = {name: torch.from_numpy(value) for name, value in ct2_to_hf_state_dict(model).items()}
    hf_model.load_state_dict(state, strict=False, assign=True)
    hf_model.tie_weights()
    missing = [name for name, p in hf_model.state_dict().items() if p.is_meta]
    if missing:
        raise ModelError(f"converted model lacks tensors: {', '.join(missing[:5])}", ct2_dir)
    hf_model.generation_config = generation_config(tokenizer, ct2_config, config)
    save_hf_model(hf_model, tokenizer, config.num_mel_bins, out_dir)


def save_hf_model(hf_model, tokenizer, num_mel_bins: int, out_dir: Path) -> None:
    """Save model, tokenizer and a feature extractor with the model's mel bins (128 for large-v3)."""
    from transformers import WhisperFeatureExtractor

    out_dir.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=num_mel_bins).save_pretrained(out_dir)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable JSON ({e})", path) from e


def load_tokenizer(model_dir: Path):
    """Whisper's tokenizer from a model directory's `tokenizer.json` (CTranslate2 and Hugging Face alike)."""
    from transformers import WhisperTokenizerFast

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelError("no tokenizer.json next to the model", model_dir)
    special = "<|endoftext|>"
    return WhisperTokenizerFast(
        tokenizer_file=str(path), unk_token=special, bos_token=special, eos_token=special, pad_token=special
    )


def special_token_ids(tokenizer) -> dict[str, int]:
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return {
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
    }


def _language_tokens(tokenizer, ct2_config: dict) -> dict[str, int]:
    lang_ids = set(ct2_config.get("lang_ids", []))
    if not lang_ids:
        lang_ids = {
            token_id
            for token, token_id in tokenizer.get_added_vocab().items()
            if len(token) <= 9 and token.startswith("<|") and token[2:-2].isalpha() and token[2:-2].islower()
            and token[2:-2] not in ("endoftext", "transcribe", "translate", "nocaptions", "notimestamps")
        }
    id_to_token = {i: t for t, i in tokenizer.get_added_vocab().items()}
    return {id_to_token[i]: i for i in sorted(lang_ids) if i in id_to_token}


def generation_config(tokenizer, ct2_config: dict, config):
    """Whisper's generation settings: language/task tokens, suppressed ids, timestamps, alignment heads."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    lang_to_id = _language_tokens(tokenizer, ct2_config)
    alignment_heads = ct2_config.get("alignment_heads") or [
        [layer, head]
        for layer in range(config.decoder_layers // 2, config.decoder_layers)
        for head in range(config.decoder_attention_heads)
    ]
    return GenerationConfig(
        **special_token_ids(tokenizer),
        suppress_tokens=list(config.suppress_tokens or []),
        begin_suppress_tokens=list(config.begin_suppress_tokens or [220, ids("<|endoftext|>")]),
        alignment_heads=[list(pair) for pair in alignment_heads],
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        is_multilingual=len(lang_to_id) > 1,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        max_length=config.max_target_positions,
        return_timestamps=False,
    )


def convert_hf_to_ct2(hf_dir: Path, out_dir: Path, quantization: str | None = None) -> None:
    """Convert with ctranslate2's own converter; keep tokenizer and preprocessor files next to the model."""
    import ctranslate2

    copy_files = [n for n in ("tokenizer.json", "preprocessor_config.json") if (hf_dir / n).is_file()]
    converter = ctranslate2.converters.TransformersConverter(str(hf_dir), copy_files=copy_files)
    try:
        converter.convert(str(out_dir), quantization=quantization, force=True)
    except Exception as e:  # the converter raises bare ValueError/RuntimeError/OSError for many causes
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ModelError(f"CTranslate2 conversion failed ({e})", hf_dir) from e


def _openai_name(name: str) -> str:
    """Map one OpenAI Whisper checkpoint name to its Hugging Face name."""
    replacements = (
        ("blocks.", "layers."),
        (".mlp.0.", ".fc1."),
        (".mlp.2.", ".fc2."),
        (".mlp_ln.", ".final_layer_norm."),
        (".attn_ln.", ".self_attn_layer_norm."),
        (".cross_attn_ln.", ".encoder_attn_layer_norm."),
        (".cross_attn.", ".encoder_attn."),
        (".attn.", ".self_attn."),
        (".query.", ".q_proj."),
        (".key.", ".k_proj."),
        (".value.", ".v_proj."),
        (".out.", ".out_proj."),
        ("encoder.ln_post.", "encoder.layer_norm."),
        ("decoder.ln.", "decoder.layer_norm."),
        ("decoder.token_embedding.", "decoder.embed_tokens."),
        ("encoder.positional_embedding", "encoder.embed_positions.weight"),
        ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    )
    for old, new in replacements:
        name = name.replace(old, new)
    return "model." + name


def convert_openai_to_hf(checkpoint: Path, out_dir: Path, tokenizer_dir: Path) -> None:
    """Convert an OpenAI `.pt` checkpoint; the tokenizer comes from `tokenizer_dir` (same vocabulary)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
        dims, weights = data["dims"], data["model_state_dict"]
        weights["encoder.blocks.0.mlp.0.weight"]
    except Exception as e:  # torch.load raises many types for non-checkpoint files
        raise ModelError(f"not an OpenAI Whisper checkpoint ({e})", checkpoint) from e
    tokenizer = load_tokenizer(tokenizer_dir)
    # Suppressed and language ids depend on the vocabulary only; alignment heads are per model and unknown here.
    vocabulary_config = {k: v for k, v in read_json(tokenizer_dir / "config.json").items() if k != "alignment_heads"}
    if dims["n_vocab"] != len(tokenizer) + 1501:
        raise ModelError(f"vocabulary of {dims['n_vocab']} tokens does not match the available tokenizer", checkpoint)
    config = WhisperConfig(
        vocab_size=dims["n_vocab"], num_mel_bins=dims["n_mels"], d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"], decoder_layers=dims["n_text_layer"],
        encoder_attention_heads=dims["n_audio_head"], decoder_attention_heads=dims["n_text_head"],
        encoder_ffn_dim=weights["encoder.blocks.0.mlp.0.weight"].shape[0],
        decoder_ffn_dim=weights["decoder.blocks.0.mlp.0.weight"].shape[0],
        max_source_positions=dims["n_audio_ctx"], max_target_positions=dims["n_text_ctx"],
        suppress_tokens=vocabulary_config.get("suppress_ids", []),
        **special_token_ids(tokenizer),
    )
    hf_model = WhisperForConditionalGeneration(config)
    state = {_openai_name(name): tensor.float() for name, tensor in weights.items()}
    result = hf_model.load_state_dict(state, strict=False)
    if result.missing_keys and result.missing_keys != ["proj_out.weight"] or result.unexpected_keys:
        raise ModelError(f"unexpected checkpoint layout ({result})", checkpoint)
    hf_model.tie_weights()
    hf_model.generation_config = generation_config(tokenizer, vocabulary_config, config)
    save_hf_model(hf_model, tokenizer, config.num_mel_bins, out_dir)
