"""Log-mel features exactly as faster-whisper computes them for one ≤30 s window.

Hugging Face's feature extractor pads a short clip with silence before the log-mel, faster-whisper pads
the log-mel with zeros after it; the two differ by up to 0.77 and change the decoded text. Everything we
train or compare is fed faster-whisper's features, so what a model learns is what inference will see.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

WINDOW_FRAMES = 3000  # 30 s at 100 frames/s: Whisper's fixed encoder input


@lru_cache(maxsize=4)
def _extractor(n_mels: int):
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=n_mels)


def clip_features(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """[n_mels, 3000] float32 log-mel of a 16 kHz clip, zero-padded (or cut) to the 30 s window."""
    features = _extractor(n_mels)(audio)
    content = features[:, : features.shape[1] - 1]  # faster-whisper drops the frame of its 160-sample pad
    window = np.zeros((n_mels, WINDOW_FRAMES), dtype=np.float32)
    frames = min(content.shape[1], WINDOW_FRAMES)
    window[:, :frames] = content[:, :frames]
    return window
