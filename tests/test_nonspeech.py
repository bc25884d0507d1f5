"""Non-speech sounds and long-form recordings built from them, on stand-in speech (no TTS, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.longform import read_reference
from whisper_adapt.nonspeech import (
    KINDS, LongformOptions, build_longform, murmur, nonspeech, speech_share, write_longform,
)

SENTENCES = [("jf_alpha", "上期の売上です。"), ("jm_kumo", "はい、わかりました。"), ("jf_alpha", "来週また話しましょう。")]


def _speech(text: str, voice: str) -> np.ndarray:
    """Stand-in speech: a 300 Hz tone, half a second per three characters."""
    t = np.arange(len(text) * SAMPLE_RATE // 6) / SAMPLE_RATE
    return (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _share_above(audio: np.ndarray, hz: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float(power[np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE) > hz].sum() / power.sum())


def test_a_longform_recording_puts_long_non_speech_before_every_sentence(tmp_path):
    audio, reference = build_longform(SENTENCES, _speech, np.random.default_rng(0))
    duration = len(audio) / SAMPLE_RATE
    assert [(r["text"], r["speaker"]) for r in reference] == [(t, v) for v, t in SENTENCES]
    for span, (_, text) in zip(reference, SENTENCES):
        assert span["end"] - span["start"] == pytest.approx(len(_speech(text, "")) / SAMPLE_RATE, abs=1e-3)
    starts = [r["start"] for r in reference]
    gaps = [starts[0]] + [b - a["end"] for a, b in zip(reference, starts[1:])]
    assert all(10.0 <= gap <= 45.0 for gap in gaps)
    assert duration == pytest.approx(reference[-1]["end"] + 5.0, abs=1e-3)
    assert speech_share(duration, reference) < 0.5
    wav, json_path = write_longform(tmp_path, "meeting", audio, reference)
    spans = read_reference(json_path)
    assert [(s.start_s, s.end_s, s.text, s.speaker) for s in spans] == [
        (r["start"], r["end"], r["text"], r["speaker"]) for r in reference]
    assert wav.exists()


def test_the_gaps_take_the_kinds_in_turn():
    options = LongformOptions(gap_s=(12.0, 12.0), kinds=("quiet", "keyboard"))
    audio, reference = build_longform(SENTENCES, _speech, np.random.default_rng(1), options)
    gaps = [audio[round((r["start"] - 11) * SAMPLE_RATE):round((r["start"] - 1) * SAMPLE_RATE)] for r in reference]
    peaks = [float(np.abs(g).max()) for g in gaps]
    assert peaks[0] < 0.02 and peaks[1] > 0.1 and peaks[2] < 0.02  # quiet, keyboard clicks, quiet


def test_each_kind_of_non_speech_sounds_like_itself():
    rng = np.random.default_rng(0)
    speech = [_speech("あいうえおかきくけこ", ""), np.random.default_rng(1).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)]
    sounds = {kind: nonspeech(kind, 10.0, rng, speech) for kind in KINDS}
    assert all(len(s) == 10 * SAMPLE_RATE and np.abs(s).max() <= 1 for s in sounds.values())
    assert _share_above(sounds["murmur"], 1000) < 1e-3  # heard through a wall: nothing above 800 Hz
    assert np.sqrt(np.mean(sounds["murmur"] ** 2)) == pytest.approx(0.02, rel=0.01)
    clicks = sounds["keyboard"]
    assert np.abs(clicks).max() > 20 * np.sqrt(np.mean(clicks**2))  # short bursts over near-silence
    assert 0.005 < np.sqrt(np.mean(sounds["room"] ** 2)) < 0.02
    assert not sounds["quiet"].any()
    tone_spectrum = np.abs(np.fft.rfft(sounds["tones"][: SAMPLE_RATE // 20] * np.hanning(SAMPLE_RATE // 20))) ** 2
    flatness = np.exp(np.mean(np.log(tone_spectrum + 1e-20))) / np.mean(tone_spectrum)
    assert flatness < 0.05 and np.abs(sounds["tones"]).max() == pytest.approx(0.1)  # notes, not noise


def test_bad_requests_are_refused():
    with pytest.raises(WhisperAdaptError, match="needs at least one speech clip"):
        murmur(5.0, [], np.random.default_rng(0))
    with pytest.raises(WhisperAdaptError, match="unknown kind of non-speech 'music'"):
        nonspeech("music", 5.0, np.random.default_rng(0))
    with pytest.raises(WhisperAdaptError, match="choose from"):
        LongformOptions(kinds=("room", "music"))
    with pytest.raises(WhisperAdaptError, match="0 <= low <= high"):
        LongformOptions(gap_s=(20.0, 10.0))
