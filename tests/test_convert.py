"""Weight conversion: exact round trips on a tiny model; equivalence with faster-whisper on real base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from whisper_adapt import convert
from whisper_adapt.errors import ModelError
from whisper_adapt.models import resolve_model


def _state(model_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(model_dir).state_dict()


def test_hf_ct2_hf_round_trip_is_exact(tiny_whisper_dir, tmp_path):
    convert.convert_hf_to_ct2(tiny_whisper_dir, tmp_path / "ct2")
    convert.convert_ct2_to_hf(tmp_path / "ct2", tmp_path / "hf")
    before, after = _state(tiny_whisper_dir), _state(tmp_path / "hf")
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    source = json.loads((tiny_whisper_dir / "generation_config.json").read_text())
    result = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    for key in ("lang_to_id", "task_to_id", "suppress_tokens", "begin_suppress_tokens", "alignment_heads",
                "decoder_start_token_id", "no_timestamps_token_id", "is_multilingual"):
        assert result[key] == source[key], key
    assert json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())["feature_size"] == 80


def test_int8_ct2_model_is_dequantized(tiny_whisper_dir, tmp_path):
    convert.convert_hf_to_ct2(tiny_whisper_dir, tmp_path / "ct2", quantization="int8")
    convert.convert_ct2_to_hf(tmp_path / "ct2", tmp_path / "hf")
    before, after = _state(tiny_whisper_dir), _state(tmp_path / "hf")
    weight = "model.decoder.layers.1.encoder_attn.v_proj.weight"
    error = (after[weight] - before[weight]).abs().max().item()
    # int8 keeps each row to 1/127 of its largest magnitude: close, but not equal.
    assert 0 < error <= before[weight].abs().max().item() / 127 + 1e-6


def test_openai_checkpoint_converts_to_the_same_weights(tiny_whisper_dir, tmp_path):
    hf = _state(tiny_whisper_dir)
    renames = {  # written out independently of the converter's table
        "model.": "", "layers.": "blocks.", ".fc1.": ".mlp.0.", ".fc2.": ".mlp.2.",
        ".final_layer_norm.": ".mlp_ln.", ".self_attn_layer_norm.": ".attn_ln.",
        ".encoder_attn_layer_norm.": ".cross_attn_ln.", ".encoder_attn.": ".cross_attn.", ".self_attn.": ".attn.",
        ".q_proj.": ".query.", ".k_proj.": ".key.", ".v_proj.": ".value.", ".out_proj.": ".out.",
        "encoder.layer_norm.": "encoder.ln_post.", "decoder.layer_norm.": "decoder.ln.",
        "decoder.embed_tokens.": "decoder.token_embedding.",
        "encoder.embed_positions.weight": "encoder.positional_embedding",
        "decoder.embed_positions.weight": "decoder.positional_embedding",
    }
    openai_state = {}
    for name, tensor in hf.items():
        if name == "proj_out.weight":
            continue
        for old, new in renames.items():
            name = name.replace(old, new)
        openai_state[name] = tensor.half()
    dims = dict(n_mels=80, n_vocab=51865, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)
    torch.save({"dims": dims, "model_state_dict": openai_state}, tmp_path / "tiny.pt")
    converted = _state(resolve_model(tmp_path / "tiny.pt", "hf"))
    for name, tensor in hf.items():
        assert torch.equal(tensor.half().float(), converted[name]), name


def test_resolve_caches_conversions(tiny_whisper_dir):
    first = resolve_model(tiny_whisper_dir, "ct2")
    stamp = (first / "model.bin").stat().st_mtime_ns
    assert resolve_model(tiny_whisper_dir, "ct2") == first
    assert (first / "model.bin").stat().st_mtime_ns == stamp
    assert (first / "tokenizer.json").is_file()
    assert resolve_model(tiny_whisper_dir, "hf") == tiny_whisper_dir.resolve()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "not a Whisper model directory"),
        (lambda d: (d / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage") and d, "cannot read CTranslate2"),
        (lambda d: (d / "x.pt").write_bytes(b"not a checkpoint") and d / "x.pt", "not an OpenAI Whisper checkpoint"),
    ],
)
def test_bad_model_paths_are_named(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(ModelError, match=message) as excinfo:
        resolve_model(target, "hf")
    assert str(tmp_path) in str(excinfo.value)


def test_hub_ids_fail_clearly_offline():
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        resolve_model("openai/whisper-small", "ct2")
    with pytest.raises(ModelError, match="unknown model 'nonsense'"):
        resolve_model("nonsense", "ct2")


def test_packaged_base_is_assembled_and_verified():
    base = resolve_model("base", "ct2")
    assert (base / "model.bin").stat().st_size == 145_217_532
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in base.iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "language"),
    [("本日の会議を始めます。まず上期の売上について報告します。", "ja"),
     ("グッドモーニング、エブリワン。レッツ スタート ザ ミーティング。", "en")],
)
def test_converted_base_decodes_like_faster_whisper(synth_wav, text, language):
    """The proof that CTranslate2 → Hugging Face is right: same greedy tokens, logits within 1e-3."""
    import ctranslate2
    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration

    from whisper_adapt.audio import decode_audio
    from whisper_adapt.features import clip_features

    ct2_dir, hf_dir = resolve_model("base", "ct2"), resolve_model("base", "hf")
    audio = decode_audio(synth_wav(text))
    original = WhisperModel(str(ct2_dir), device="cpu", compute_type="float32")
    segments, _ = original.transcribe(audio, language=language, beam_size=1, temperature=0.0, vad_filter=False,
                                      without_timestamps=True, condition_on_previous_text=False)
    expected = [token for segment in segments for token in segment.tokens]
    assert len(expected) > 5

    hf_model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    features = torch.from_numpy(clip_features(audio))[None]
    with torch.no_grad():
        generated = hf_model.generate(input_features=features, language=language, task="transcribe",
                                      num_beams=1, do_sample=False)[0].tolist()
    text_tokens = [t for t in generated if t < hf_model.config.eos_token_id]  # special ids come after text ids
    assert text_tokens == expected

    tokenizer = convert.load_tokenizer(hf_dir)
    prompt = tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"])

    result = original.model.generate(ctranslate2.StorageView.from_array(features.numpy()), [prompt],
                                     beam_size=1, return_logits_vocab=True)[0]
    ct2_logits = np.array([np.asarray(step) for step in result.logits[0]])
    with torch.no_grad():
        forced = torch.tensor([prompt + result.sequences_ids[0]])
        hf_logits = hf_model(input_features=features, decoder_input_ids=forced).logits[0].numpy()
    hf_logits = hf_logits[len(prompt) - 1 : len(prompt) - 1 + len(ct2_logits)]
    unsuppressed = ct2_logits > -1e30  # CTranslate2 writes -FLT_MAX over suppressed tokens
    assert unsuppressed.sum() > 0.9 * unsuppressed.size
    assert np.abs(ct2_logits - hf_logits)[unsuppressed].max() < 1e-3


def test_large_v3_style_128_mel_bins_survive_both_conversions(tmp_path):
    """large-v3 reads 128 mel bins: the feature extractor must say so on both sides of a conversion."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_adapt.models import packaged_base_dir

    tokenizer = convert.load_tokenizer(packaged_base_dir())
    config = WhisperConfig(vocab_size=51865, num_mel_bins=128, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, **convert.special_token_ids(tokenizer))
    model = WhisperForConditionalGeneration(config)
    model.generation_config = convert.generation_config(tokenizer, {}, config)
    convert.save_hf_model(model, tokenizer, 128, tmp_path / "hf")
    convert.convert_hf_to_ct2(tmp_path / "hf", tmp_path / "ct2")
    assert json.loads((tmp_path / "ct2" / "preprocessor_config.json").read_text())["feature_size"] == 128
    convert.convert_ct2_to_hf(tmp_path / "ct2", tmp_path / "back")
    assert json.loads((tmp_path / "back" / "preprocessor_config.json").read_text())["feature_size"] == 128
    assert _state(tmp_path / "back")["model.encoder.conv1.weight"].shape[1] == 128
