"""Per-epoch validation on cached encoder outputs, decoded greedily (hf_decode.py) with the same guards as
`transcribe`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from whisper_adapt.hf_decode import Decoded, Prompt, greedy_decode
from whisper_adapt.train.data import Example


def _encoder_states(model, examples: Sequence[Example]) -> torch.Tensor:
    if all(e.encoder_file is not None for e in examples):
        return torch.from_numpy(np.stack([np.load(e.encoder_file) for e in examples]))
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.features import clip_features

    n_mels = model.config.num_mel_bins
    features = np.stack([clip_features(decode_audio(e.clip.audio_path), n_mels) for e in examples])
    device = next(model.parameters()).device
    with torch.no_grad():
        return model.get_encoder()(torch.from_numpy(features).to(device)).last_hidden_state


def decode_examples(model, examples: Sequence[Example], prompt: Prompt, tokenizer, batch_size: int = 8,
                    max_tokens: int | None = None) -> list[Decoded]:
    """Greedy transcripts of cached examples, in order."""
    device = next(model.parameters()).device
    results: list[Decoded] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        hidden = _encoder_states(model, chunk).to(device).float()
        results += greedy_decode(model, hidden, [e.duration_s for e in chunk], prompt, tokenizer,
                                 max_tokens=max_tokens)
    return results
