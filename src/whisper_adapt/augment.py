"""Acoustic augmentation: the room, the other voices and the line that a meeting recording passes through.

The clips a user reviews come from one room and a few voices; meetings are far-field, reverberant, noisy
and often compressed. So training also shows every clip as variants drawn from a chain of effects, applied
in the order sound meets them:

    speed (the talker) → reverberation (the room) → babble or noise (the others in it) → gain
    → band limit (the microphone) → lossy codec (the conference line)

A chain is a plain JSON-able dict drawn from a seeded generator (`draw_chain`), so a run is reproducible,
the variants it trained on can be listed in adapter.json, and the same chain renders the same audio. Room
impulse responses come from pyroomacoustics (shoebox rooms by the image-source method) or from measured
responses the user supplies; filters, convolution and resampling from scipy.signal; codecs from PyAV.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, lossy_round_trip
from whisper_adapt.errors import WhisperAdaptError


@dataclass(frozen=True)
class AugmentOptions:
    # Augmented variants rendered per training clip; each epoch trains on the clean clip and one of them.
    variants: int = 2
    reverb_p: float = 0.7
    rt60_s: tuple[float, float] = (0.2, 0.9)  # reverberation time of the synthetic rooms
    source_distance_m: tuple[float, float] = (0.8, 4.0)  # talker to microphone: near to far field
    rooms: int = 24  # synthetic room responses per run, each variant uses one of them
    rir_dir: str | None = None  # a folder of measured room impulse responses (WAV …) instead of synthetic rooms
    noise_p: float = 0.8  # probability of interference: babble of other voices, or noise
    babble_p: float = 0.6  # of the interference, the share that is babble
    babble_talkers: tuple[int, int] = (2, 6)
    snr_db: tuple[float, float] = (0.0, 20.0)
    speed_p: float = 0.5
    speed_factor: tuple[float, float] = (0.9, 1.1)
    gain_p: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 3.0)
    band_p: float = 0.3  # telephone band or a dull microphone
    codec_p: float = 0.3
    codec_bit_rate: tuple[int, int] = (8000, 24000)  # Opus / MP3 at conference-line rates
    # Share of the replayed general clips heard through a chain instead of clean (in place: no extra cost).
    replay_augmented: float = 0.5
    # Non-speech clips (room noise, murmur, clicks, tones, near-silence) trained to Whisper's no-speech
    # answer, as a share of each epoch's speech examples, so the adapted decoder keeps saying "nothing here"
    # where the guards rely on it.
    nonspeech_share: float = 0.1
    nonspeech_s: tuple[float, float] = (3.0, 20.0)

    def __post_init__(self) -> None:
        probabilities = (self.reverb_p, self.noise_p, self.babble_p, self.speed_p, self.gain_p, self.band_p,
                         self.codec_p, self.replay_augmented)
        if not all(0 <= p <= 1 for p in probabilities) or not 0 <= self.nonspeech_share < 1:
            raise WhisperAdaptError("augmentation probabilities and shares must be between 0 and 1")
        if self.variants < 0 or self.rooms < 1:
            raise WhisperAdaptError("augmented variants cannot be fewer than 0, nor synthetic rooms fewer than 1")
        if self.rir_dir is not None:
            _measured_responses(Path(self.rir_dir))  # a wrong folder fails now, not after minutes of work


def clip_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator that depends only on (seed, key): a clip's variants do not change when others are added."""
    digest = hashlib.sha256(repr((seed, *key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_chain(rng: np.random.Generator, options: AugmentOptions, babble: Sequence[str]) -> dict:
    """One variant's effects and their settings. `babble` are the ids of clips that may be mixed in as other
    talkers (never ones holding the clip's own words)."""
    chain: dict = {}
    if rng.random() < options.speed_p:
        chain["speed"] = round(float(rng.uniform(*options.speed_factor)), 3)
    if rng.random() < options.reverb_p:
        chain["room"] = int(rng.integers(_room_count(options)))
    if rng.random() < options.noise_p:
        snr = round(float(rng.uniform(*options.snr_db)), 1)
        if babble and rng.random() < options.babble_p:
            talkers = int(rng.integers(options.babble_talkers[0], options.babble_talkers[1] + 1))
            picked = rng.choice(len(babble), size=min(talkers, len(babble)), replace=False)
            chain["babble"] = {"clips": [babble[i] for i in sorted(picked)], "snr_db": snr,
                               "seed": int(rng.integers(2**31))}
        else:
            chain["noise"] = {"color": str(rng.choice(["white", "pink", "brown"])), "snr_db": snr,
                              "seed": int(rng.integers(2**31))}
    if rng.random() < options.gain_p:
        chain["gain_db"] = round(float(rng.uniform(*options.gain_db)), 1)
    if rng.random() < options.band_p:
        chain["band_hz"] = [300, 3400] if rng.random() < 0.5 else [60, int(rng.integers(3500, 7000))]
    if rng.random() < options.codec_p:
        chain["codec"] = {"name": str(rng.choice(["libopus", "libmp3lame"])),
                          "bit_rate": int(rng.integers(options.codec_bit_rate[0], options.codec_bit_rate[1] + 1))}
    return chain


def describe(chain: dict) -> str:
    """A short human-readable form of a chain, e.g. 'speed 0.95 + room 3 + babble 4 @ 8.0 dB + opus 12k'."""
    parts = []
    if "speed" in chain:
        parts.append(f"speed {chain['speed']}")
    if "room" in chain:
        parts.append(f"room {chain['room']}")
    if "babble" in chain:
        parts.append(f"babble {len(chain['babble']['clips'])} @ {chain['babble']['snr_db']} dB")
    if "noise" in chain:
        parts.append(f"{chain['noise']['color']} noise @ {chain['noise']['snr_db']} dB")
    if "gain_db" in chain:
        parts.append(f"gain {chain['gain_db']} dB")
    if "band_hz" in chain:
        parts.append(f"band {chain['band_hz'][0]}–{chain['band_hz'][1]} Hz")
    if "codec" in chain:
        parts.append(f"{chain['codec']['name'].removeprefix('lib')} {chain['codec']['bit_rate'] // 1000}k")
    return " + ".join(parts) or "clean"


AudioSource = Callable[[str], np.ndarray]  # clip id → its 16 kHz samples (for babble)


def render(samples: np.ndarray, chain: dict, options: AugmentOptions, seed: int, babble: AudioSource) -> np.ndarray:
    """`samples` (16 kHz mono) through `chain`; `seed` picks the run's synthetic rooms."""
    from scipy.signal import fftconvolve

    audio = np.asarray(samples, dtype=np.float32)
    if "speed" in chain:
        audio = change_speed(audio, chain["speed"])
    rooms = room_responses(options, seed) if "room" in chain else []
    if rooms:
        audio = _reverberate(audio, rooms[chain["room"]], fftconvolve)
    if "babble" in chain:
        spec = chain["babble"]
        others = babble_mix([babble(clip) for clip in spec["clips"]], len(audio), np.random.default_rng(spec["seed"]))
        if rooms:  # the others talk in the same room, from elsewhere in it
            others = _reverberate(others, rooms[(chain["room"] + 1) % len(rooms)], fftconvolve)
        audio = mix_at_snr(audio, others, spec["snr_db"])
    if "noise" in chain:
        spec = chain["noise"]
        noise = colored_noise(len(audio), spec["color"], np.random.default_rng(spec["seed"]))
        audio = mix_at_snr(audio, noise, spec["snr_db"])
    if "gain_db" in chain:
        audio = audio * np.float32(10 ** (chain["gain_db"] / 20))
    if "band_hz" in chain:
        audio = band_limit(audio, *chain["band_hz"])
    audio = np.clip(audio, -1, 1).astype(np.float32)
    if "codec" in chain:
        audio = lossy_round_trip(audio, chain["codec"]["name"], chain["codec"]["bit_rate"])
    return audio


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times as fast (tempo and pitch together: another talker's rate and voice)."""
    from scipy.signal import resample_poly

    ratio = Fraction(1 / factor).limit_denominator(100)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _reverberate(audio: np.ndarray, response: np.ndarray, convolve) -> np.ndarray:
    """Convolved with a room response, kept at the input's length and level (the direct sound's delay
    removed, so word timings stay where the transcript says they are)."""
    onset = int(np.argmax(np.abs(response)))
    wet = convolve(audio, response[onset:])[: len(audio)]
    level = np.sqrt(np.mean(audio**2) / max(np.mean(wet**2), 1e-12))
    return (wet * level).astype(np.float32)


def mix_at_snr(signal: np.ndarray, interference: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` plus `interference` scaled so that their power ratio is `snr_db`."""
    signal_power = np.mean(signal**2)
    interference_power = np.mean(interference**2)
    if signal_power == 0 or interference_power == 0:
        return signal
    scale = np.sqrt(signal_power / (interference_power * 10 ** (snr_db / 10)))
    return (signal + scale * interference).astype(np.float32)


def babble_mix(talkers: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Other talkers at once, each looped to `length` from a random starting point, at equal levels."""
    mixed = np.zeros(length, np.float32)
    for voice in talkers:
        if voice.size == 0:
            continue
        looped = np.resize(np.roll(voice, -int(rng.integers(len(voice)))), length)
        mixed += looped / max(np.sqrt(np.mean(looped**2)), 1e-6)
    return mixed


def colored_noise(length: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f²) noise of unit power: air conditioning, fans, traffic, rumble."""
    white = rng.standard_normal(length)
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[color]
    if exponent:
        spectrum = np.fft.rfft(white)
        frequencies = np.fft.rfftfreq(length)
        spectrum[1:] /= frequencies[1:] ** exponent
        spectrum[0] = 0
        white = np.fft.irfft(spectrum, length)
    return (white / max(np.sqrt(np.mean(white**2)), 1e-12)).astype(np.float32)


def band_limit(audio: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sections = butter(4, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sections, audio).astype(np.float32)


def room_responses(options: AugmentOptions, seed: int) -> list[np.ndarray]:
    """The run's room impulse responses: the measured ones in `rir_dir`, else `rooms` synthetic shoebox
    rooms drawn from `seed`."""
    if options.rir_dir is not None:
        return _measured_responses(Path(options.rir_dir))
    return _synthetic_responses(options.rooms, options.rt60_s, options.source_distance_m, seed)


def _room_count(options: AugmentOptions) -> int:
    return len(_measured_responses(Path(options.rir_dir))) if options.rir_dir is not None else options.rooms


def _measured_responses(folder: Path) -> list[np.ndarray]:
    from whisper_adapt.labeled import AUDIO_SUFFIXES

    if not folder.is_dir():
        raise WhisperAdaptError("is not a directory of room impulse responses", folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise WhisperAdaptError("holds no impulse responses (WAV, FLAC …)", folder)
    return _load_responses(tuple((path, path.stat().st_mtime_ns) for path in files))


@functools.lru_cache(maxsize=4)
def _load_responses(files: tuple[tuple[Path, int], ...]) -> list[np.ndarray]:
    responses = [decode_audio(path) for path, _ in files]
    for (path, _), response in zip(files, responses):
        if not np.any(response):
            raise WhisperAdaptError("is silent: not an impulse response", path)
    return responses


@functools.lru_cache(maxsize=4)
def _synthetic_responses(count: int, rt60_s: tuple[float, float], distance_m: tuple[float, float],
                         seed: int) -> list[np.ndarray]:
    """Meeting rooms from a small office to a hall: image-source shoebox responses (deterministic), kept in
    the cache directory because the image-source method takes seconds a room and every run needs them."""
    import pyroomacoustics as pra

    from whisper_adapt.files import write_atomically
    from whisper_adapt.models import cache_root

    key = json.dumps([count, rt60_s, distance_m, seed, pra.__version__])
    path = cache_root() / "rooms" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    if path.exists():
        with np.load(path) as saved:
            return [saved[f"room{i}"] for i in range(count)]
    responses = _shoebox_rooms(count, rt60_s, distance_m, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda f: np.savez(f, **{f"room{i}": r for i, r in enumerate(responses)}))
    return responses


def _shoebox_rooms(count: int, rt60_s: tuple[float, float], distance_m: tuple[float, float],
                   seed: int) -> list[np.ndarray]:
    import pyroomacoustics as pra

    rng = clip_rng(seed, "rooms")
    responses = []
    for _ in range(count):
        size = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.4, 3.5)])
        rt60 = rng.uniform(*rt60_s)
        absorption, max_order = pra.inverse_sabine(rt60, size)
        room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 60))
        microphone = rng.uniform([0.5, 0.5, 0.7], size - [0.5, 0.5, 1.0])
        room.add_microphone(microphone)
        room.add_source(_source_near(microphone, size, rng.uniform(*distance_m), rng))
        room.compute_rir()
        responses.append(np.asarray(room.rir[0][0], dtype=np.float32))
    return responses


def _source_near(microphone: np.ndarray, size: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A talker's mouth about `distance` from the microphone, inside the room."""
    direction = rng.standard_normal(3) * [1, 1, 0.2]
    position = microphone + distance * direction / np.linalg.norm(direction)
    return np.clip(position, [0.3, 0.3, 1.0], size - [0.3, 0.3, 0.8])


def perturb(clips: Sequence[tuple[str, str, np.ndarray]], seed: int, options: AugmentOptions = AugmentOptions(),
            babble: Sequence[tuple[str, str, Path]] = ()) -> list[tuple[np.ndarray, dict]]:
    """(audio, chain) of each (id, text, audio) clip heard through a chain drawn by `seed` — the training's
    augmentation as a shifted test condition. `babble` (id, text, audio file) are the other talkers; a clip
    never hears its own words among them."""
    paths = {clip_id: path for clip_id, _, path in babble}
    out = []
    for clip_id, text, audio in clips:
        others = [other_id for other_id, other_text, _ in babble if other_text != text]
        chain = draw_chain(clip_rng(seed, "perturb", clip_id), options, others)
        out.append((render(audio, chain, options, seed, lambda other: decode_audio(paths[other])), chain))
    return out
