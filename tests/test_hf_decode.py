"""hf_decode.py on the tiny random Whisper: the prompt's tokens and the guarded greedy decode."""

from __future__ import annotations

import warnings

import pytest
import torch

from whisper_adapt.convert import load_tokenizer
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.hf_decode import greedy_decode, make_prompt
from whisper_adapt.train.adapter import load_adapted_model


def test_the_prompt_is_whispers_plain_transcription_prefix(tiny_whisper_dir):
    tokenizer = load_tokenizer(tiny_whisper_dir)
    prompt = make_prompt(tokenizer, "ja")
    assert tokenizer.convert_ids_to_tokens(prompt.plain) == [
        "<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]
    # base's vocabulary predates <|nospeech|>: the same answer is called <|nocaptions|> there
    assert tokenizer.convert_ids_to_tokens([prompt.eot, prompt.no_speech]) == ["<|endoftext|>", "<|nocaptions|>"]
    with pytest.raises(WhisperAdaptError, match="unknown language 'xx'"):
        make_prompt(tokenizer, "xx")


def test_greedy_decoding_keeps_no_graph_and_uses_no_deprecated_arguments(tiny_whisper_dir):
    model = load_adapted_model(tiny_whisper_dir, [])
    tokenizer = load_tokenizer(tiny_whisper_dir)
    with torch.no_grad():
        hidden = model.get_encoder()(torch.zeros(2, 80, 3000)).last_hidden_state
    grad_enabled = []
    model.register_forward_pre_hook(lambda module, args: grad_enabled.append(torch.is_grad_enabled()))
    # transformers drops the deprecated keyword in 5.40: a warning today is a crash then.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        decoded = greedy_decode(model, hidden, [1.0, 2.0], make_prompt(tokenizer), tokenizer)
    assert len(decoded) == 2 and grad_enabled and not any(grad_enabled)  # a KV cache of graphs would pile up
