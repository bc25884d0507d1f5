"""Shared fixtures: a tiny random Whisper (fast tests) and the packaged base model (slow tests)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Keep the test run's model cache apart from the user's, but reuse the assembled base across tests."""
    import os

    cache = Path(os.environ.get("WHISPER_ADAPT_TEST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["WHISPER_ADAPT_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return cache


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, model_cache) -> Path:
    """A randomly initialised Whisper (2+2 layers, d_model 64) in Hugging Face form, with the real
    multilingual tokenizer so that CTranslate2 conversion and faster-whisper work on it."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_adapt import convert
    from whisper_adapt.models import packaged_base_dir

    base = packaged_base_dir()
    tokenizer = convert.load_tokenizer(base)
    ct2_config = convert.read_json(base / "config.json")
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        suppress_tokens=ct2_config["suppress_ids"], begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        **convert.special_token_ids(tokenizer),
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    ct2_config.pop("alignment_heads")
    model.generation_config = convert.generation_config(tokenizer, ct2_config, config)
    out = tmp_path_factory.mktemp("tiny-whisper")
    convert.save_hf_model(model, tokenizer, 80, out)
    return out


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    """Where synthesized test speech is kept for the whole run."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def synth_wav(speech_dir):
    """`synth_wav(text, voice="jf_alpha", name=None) -> Path`: a 16 kHz WAV of `text` spoken by `voice`.

    Each (text, voice) is synthesized once per run (TTS costs about a second of CPU per second of speech);
    later calls return the same file. `name` picks the file's stem, for readable paths in failures.
    """
    import hashlib

    from whisper_adapt.audio import write_wav
    from whisper_adapt.synth import synthesize_speech

    made: dict[tuple[str, str], Path] = {}

    def synth(text: str, voice: str = "jf_alpha", name: str | None = None) -> Path:
        if (text, voice) not in made:
            stem = name or f"{voice}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"
            path = speech_dir / f"{stem}.wav"
            if path.exists():
                raise ValueError(f"synth_wav name {stem!r} is already used for another text or voice")
            write_wav(path, synthesize_speech(text, voice))
            made[(text, voice)] = path
        return made[(text, voice)]

    return synth
