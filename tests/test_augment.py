"""The acoustic augmentation chain and the non-speech sounds: measured properties, not just shapes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, lossy_round_trip
from whisper_adapt.augment import (AugmentOptions, babble_mix, change_speed, clip_rng, colored_noise, describe,
                                   draw_chain, mix_at_snr, render, room_responses)


def tone(seconds: float = 2.0, hz: float = 440.0) -> np.ndarray:
    time = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * time)).astype(np.float32)


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def test_chains_depend_only_on_seed_and_key():
    options = AugmentOptions()
    babble = [f"g{i}" for i in range(30)]
    first = [draw_chain(clip_rng(7, "variant", "clip-1", k), options, babble) for k in range(20)]
    again = [draw_chain(clip_rng(7, "variant", "clip-1", k), options, babble) for k in range(20)]
    other_seed = [draw_chain(clip_rng(8, "variant", "clip-1", k), options, babble) for k in range(20)]
    assert first == again and first != other_seed
    effects = {effect for chain in first for effect in chain}
    assert {"room", "speed", "codec"} <= effects and effects & {"babble", "noise"}
    assert all(set(chain["babble"]["clips"]) <= set(babble) for chain in first if "babble" in chain)
    assert describe({}) == "clean" and "room" in describe(first[0]) + describe(first[1]) + describe(first[2])


def test_probabilities_of_zero_leave_the_clip_clean():
    off = AugmentOptions(reverb_p=0, noise_p=0, speed_p=0, gain_p=0, band_p=0, codec_p=0)
    chain = draw_chain(clip_rng(0, "x"), off, ["a", "b"])
    assert chain == {}
    audio = tone()
    assert np.array_equal(render(audio, chain, off, 0, lambda clip: audio), audio)


@pytest.mark.parametrize("snr_db", [0.0, 7.5, 20.0])
def test_interference_is_mixed_at_the_asked_signal_to_noise_ratio(snr_db):
    signal = tone()
    noise = colored_noise(len(signal), "pink", np.random.default_rng(0))
    mixed = mix_at_snr(signal, noise, snr_db)
    measured = 10 * np.log10(power(signal) / power(mixed - signal))
    assert measured == pytest.approx(snr_db, abs=0.01)


def test_noise_colors_have_their_spectral_slope():
    rng = np.random.default_rng(1)
    slopes = {}
    for color in ("white", "pink", "brown"):
        spectrum = np.abs(np.fft.rfft(colored_noise(SAMPLE_RATE * 8, color, rng))) ** 2
        frequencies = np.fft.rfftfreq(SAMPLE_RATE * 8, 1 / SAMPLE_RATE)
        band = (frequencies > 100) & (frequencies < 4000)
        slopes[color] = np.polyfit(np.log10(frequencies[band]), np.log10(spectrum[band]), 1)[0]
    assert slopes["white"] == pytest.approx(0, abs=0.1)
    assert slopes["pink"] == pytest.approx(-1, abs=0.15)
    assert slopes["brown"] == pytest.approx(-2, abs=0.15)


def test_speed_changes_duration_and_pitch_together():
    faster = change_speed(tone(2.0, 440.0), 1.1)
    assert len(faster) == pytest.approx(2.0 * SAMPLE_RATE / 1.1, rel=0.01)
    peak_hz = np.argmax(np.abs(np.fft.rfft(faster))) * SAMPLE_RATE / len(faster)
    assert peak_hz == pytest.approx(440 * 1.1, rel=0.01)


def test_synthetic_rooms_reverberate_with_their_drawn_decay_time():
    options = AugmentOptions(rooms=3, rt60_s=(0.6, 0.6), source_distance_m=(2.0, 2.0))
    responses = room_responses(options, seed=5)
    assert len(responses) == 3 and all(np.array_equal(a, b) for a, b in zip(responses, room_responses(options, 5)))
    for response in responses:
        energy = np.cumsum(response[::-1] ** 2)[::-1]  # Schroeder's backward integral
        decay_db = 10 * np.log10(energy / energy[0])
        t20 = np.argmax(decay_db < -25) - np.argmax(decay_db < -5)  # a 20 dB stretch of the decay
        assert 3 * t20 / SAMPLE_RATE == pytest.approx(0.6, rel=0.35)
    rendered = render(tone(), {"room": 0}, options, 5, lambda clip: None)
    assert len(rendered) == len(tone()) and power(rendered) == pytest.approx(power(tone()), rel=0.05)


def test_synthetic_rooms_are_computed_once_per_cache(tmp_path):
    """A second run reads the rooms the first one kept (shown by a kept file altered in between)."""
    script = ("import sys, numpy as np; from whisper_adapt.augment import AugmentOptions, room_responses; "
              "np.save(sys.argv[1], np.stack([r[:400] for r in room_responses(AugmentOptions(rooms=2), 11)]))")
    env = {**os.environ, "WHISPER_ADAPT_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "first.npy")], env=env, check=True)
    [kept] = (tmp_path / "cache" / "rooms").glob("*.npz")
    with np.load(kept) as saved:
        np.savez(kept, **{name: saved[name] * 2 for name in saved.files})
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "second.npy")], env=env, check=True)
    first, second = np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy")
    assert np.any(first) and np.array_equal(second, first * 2)


def test_measured_responses_replace_synthetic_rooms(tmp_path):
    from whisper_adapt.audio import write_wav
    from whisper_adapt.errors import WhisperAdaptError

    impulse = np.zeros(SAMPLE_RATE // 2, np.float32)
    impulse[100], impulse[2000] = 1.0, 0.5
    write_wav(tmp_path / "hall.wav", impulse)
    options = AugmentOptions(rir_dir=str(tmp_path))
    chains = [draw_chain(clip_rng(0, k), options, []) for k in range(20)]
    assert {chain["room"] for chain in chains if "room" in chain} == {0}  # one measured response to use
    echoed = render(tone(0.5), {"room": 0}, options, 0, lambda clip: None)
    assert np.corrcoef(echoed[1900:], tone(0.5)[:-1900])[0, 1] > 0.2  # the echo 1,900 samples after the direct sound
    (tmp_path / "hall.wav").unlink()
    with pytest.raises(WhisperAdaptError, match="no impulse responses"):
        AugmentOptions(rir_dir=str(tmp_path))
    with pytest.raises(WhisperAdaptError, match="not a directory"):
        AugmentOptions(rir_dir=str(tmp_path / "missing"))


@pytest.mark.parametrize("codec", ["libopus", "libmp3lame"])
def test_lossy_codecs_keep_length_and_timing(codec):
    speechlike = tone(1.0, 300.0) * np.sin(np.linspace(0, 20, SAMPLE_RATE)).astype(np.float32)
    coded = lossy_round_trip(speechlike, codec, 12000)
    assert len(coded) == len(speechlike)
    assert np.corrcoef(coded, speechlike)[0, 1] > 0.9 and not np.array_equal(coded, speechlike)


def test_babble_is_several_talkers_at_equal_level():
    rng = np.random.default_rng(0)
    talkers = [tone(1.0, hz) * scale for hz, scale in ((200, 1.0), (330, 0.01), (510, 0.3))]
    mixed = babble_mix(talkers, SAMPLE_RATE * 3, rng)
    spectrum = np.abs(np.fft.rfft(mixed))
    levels = [spectrum[round(hz * 3)] for hz in (200, 330, 510)]  # bins of 1/3 Hz
    assert max(levels) / min(levels) < 1.5


def test_perturbation_never_plays_a_clip_its_own_words_as_babble(tmp_path):
    from whisper_adapt.audio import write_wav
    from whisper_adapt.augment import perturb

    others = []
    for index, hz in enumerate((200, 300, 400, 500)):
        write_wav(tmp_path / f"o{index}.wav", tone(1.0, hz))
        others.append((f"o{index}", "同じ文" if index == 0 else f"別の文{index}", tmp_path / f"o{index}.wav"))
    options = AugmentOptions(noise_p=1.0, babble_p=1.0, babble_talkers=(1, 3))
    clips = [(f"c{k}", "同じ文", tone(1.0, 440)) for k in range(30)]
    rendered = perturb(clips, seed=3, options=options, babble=others)
    used = [clip for _, chain in rendered for clip in chain["babble"]["clips"]]
    assert used and "o0" not in used and set(used) <= {"o1", "o2", "o3"}
    assert all(len(audio) >= 0.85 * SAMPLE_RATE for audio, _ in rendered)
