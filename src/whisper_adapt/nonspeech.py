"""Sounds without speech, and long-form recordings built from them, for tests, benchmarks and eval sets.

A meeting room is mostly not speech: room tone, the murmur of the next room, keyboards, long quiet.
Adapted models invent text there (issue #20: 22.6 invented characters per minute of non-speech), so the
long-form evaluation needs recordings in which most of the time nobody speaks. `build_longform` makes one
from speech clips: each sentence is preceded by 10–45 s of one kind of non-speech, the kinds taken in turn:

- room: a fan's low rumble (brown noise) with faint broadband hiss and 50 Hz mains hum;
- murmur: speech from the next room — the recording's own sentences reversed (so no word can be made out),
  two voices overlapped, low-passed at 800 Hz as through a wall, 13 dB below the speech. Silero VAD
  calls about half of it speech (three voices it calls noise, a 1.5 kHz cut all speech), so the decoder
  and the guards, not VAD alone, must keep it out of the transcript;
- keyboard: key presses, 2–6 a second, each a 25 ms decaying burst over faint room tone;
- quiet: near-silence: only the faint room tone laid over the whole recording.

The reference holds only the sentences: murmur is non-speech there (nobody in the meeting said it).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, write_wav
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.meeting_audio import ROOM_NOISE, Line, build_meeting

KINDS = ("room", "murmur", "keyboard", "quiet", "tones")
LONGFORM_KINDS = ("room", "murmur", "keyboard", "quiet")  # what a long-form recording's gaps hold by default


def low_pass(audio: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Frequencies above `cutoff_hz` removed (in one FFT: the sounds here are at most a minute long)."""
    spectrum = np.fft.rfft(audio)
    spectrum[np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, len(audio)).astype(np.float32)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def _scaled(audio: np.ndarray, rms: float) -> np.ndarray:
    level = _rms(audio)
    return (audio * (rms / level) if level else audio).astype(np.float32)


def room_noise(seconds: float, rng: np.random.Generator, rms: float = 0.01) -> np.ndarray:
    n = round(seconds * SAMPLE_RATE)
    rumble = np.cumsum(rng.normal(0, 1, n))
    rumble = low_pass(rumble - np.linspace(rumble[0], rumble[-1], n), 300) if n else rumble
    t = np.arange(n) / SAMPLE_RATE
    hum = np.sin(2 * np.pi * 50 * t) + 0.4 * np.sin(2 * np.pi * 150 * t)
    return (_scaled(rumble, rms) + _scaled(rng.normal(0, 1, n), rms / 4) + _scaled(hum, rms / 3)).astype(np.float32)


def keyboard_clicks(seconds: float, rng: np.random.Generator, peak: float = 0.3) -> np.ndarray:
    n = round(seconds * SAMPLE_RATE)
    audio = rng.normal(0, 0.002, n)
    burst = round(0.025 * SAMPLE_RATE)
    position = 0
    while True:
        position += round(rng.uniform(1 / 6, 1 / 2) * SAMPLE_RATE)
        if position + burst > n:
            break
        audio[position:position + burst] += rng.normal(0, peak, burst) * np.exp(-np.arange(burst) / 60)
    return np.clip(audio, -1, 1).astype(np.float32)


def murmur(seconds: float, speech: Sequence[np.ndarray], rng: np.random.Generator, voices: int = 2,
           rms: float = 0.02, cutoff_hz: float = 800.0) -> np.ndarray:
    """Unintelligible talk through a wall: `voices` streams of the given speech, reversed and overlapped,
    nothing above `cutoff_hz`."""
    if not speech:
        raise WhisperAdaptError("murmur needs at least one speech clip to make it from")
    n = round(seconds * SAMPLE_RATE)
    mixed = np.zeros(n, np.float32)
    if n == 0:
        return mixed
    for _ in range(voices):
        stream, filled = [], 0
        while filled < n:
            clip = speech[rng.integers(len(speech))][::-1]
            pause = np.zeros(round(rng.uniform(0.1, 0.8) * SAMPLE_RATE), np.float32)
            stream += [clip, pause]
            filled += len(clip) + len(pause)
        joined = np.concatenate(stream)
        offset = rng.integers(0, max(1, len(joined) - n + 1))
        mixed += joined[offset:offset + n]
    return _scaled(low_pass(mixed, cutoff_hz), rms)


def tones(seconds: float, rng: np.random.Generator, peak: float = 0.1) -> np.ndarray:
    """Music-like: a line of notes with harmonics and soft attacks (a ringtone, hold music)."""
    n = round(seconds * SAMPLE_RATE)
    audio, position = np.zeros(n, np.float32), 0
    while position < n:
        note_len = min(round(rng.uniform(0.15, 0.6) * SAMPLE_RATE), n - position)
        pitch_hz = 220 * 2 ** (int(rng.integers(0, 24)) / 12)
        t = np.arange(note_len) / SAMPLE_RATE
        note = sum(np.sin(2 * np.pi * pitch_hz * h * t) / h for h in (1, 2, 3))
        audio[position:position + note_len] = note * np.minimum(1, t / 0.01) * np.exp(-t / rng.uniform(0.1, 0.5))
        position += note_len
    return (audio / max(float(np.abs(audio).max()), 1e-9) * peak).astype(np.float32)


def nonspeech(kind: str, seconds: float, rng: np.random.Generator, speech: Sequence[np.ndarray] = ()) -> np.ndarray:
    """`seconds` of one kind of non-speech (see the module docstring); murmur is made from `speech`."""
    if kind == "room":
        return room_noise(seconds, rng)
    if kind == "murmur":
        return murmur(seconds, speech, rng)
    if kind == "keyboard":
        return keyboard_clicks(seconds, rng)
    if kind == "quiet":
        return np.zeros(round(seconds * SAMPLE_RATE), np.float32)  # the recording's faint room tone only
    if kind == "tones":
        return tones(seconds, rng)
    raise WhisperAdaptError(f"unknown kind of non-speech {kind!r}; choose from {', '.join(KINDS)}")


@dataclass(frozen=True)
class LongformOptions:
    gap_s: tuple[float, float] = (10.0, 45.0)  # non-speech before each sentence, drawn uniformly
    kinds: tuple[str, ...] = LONGFORM_KINDS  # taken in turn, one per gap
    tail_s: float = 5.0  # non-speech after the last sentence (of the next kind in turn)

    def __post_init__(self) -> None:
        low, high = self.gap_s
        if not 0 <= low <= high:
            raise WhisperAdaptError(f"long-form gaps: need 0 <= low <= high, not {self.gap_s}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise WhisperAdaptError(f"long-form kinds: choose from {', '.join(KINDS)}, not {', '.join(unknown) or 'none'}")


def build_longform(
    sentences: Sequence[tuple[str, str]], speech: Callable[[str, str], np.ndarray], rng: np.random.Generator,
    options: LongformOptions = LongformOptions(),
) -> tuple[np.ndarray, list[dict]]:
    """A recording of `sentences` ((voice, text), spoken by `speech(text, voice)`), each after a stretch of
    non-speech and the last followed by `tail_s` more, and its reference [{start, end, text, speaker}]."""
    clips = {(text, voice): speech(text, voice) for voice, text in sentences}
    turn = itertools.count()

    def gap(rng: np.random.Generator, seconds: float | None = None) -> np.ndarray:
        kind = options.kinds[next(turn) % len(options.kinds)]
        return nonspeech(kind, rng.uniform(*options.gap_s) if seconds is None else seconds, rng, list(clips.values()))

    lines = [Line(voice, text) for voice, text in sentences]
    audio, spans = build_meeting(lines, lambda text, voice: clips[text, voice], rng, gap)
    tail = gap(rng, max(0.0, options.tail_s - 1.0))  # build_meeting already closed on a second of room tone
    audio = np.concatenate([audio, tail + rng.normal(0, ROOM_NOISE, tail.size).astype(np.float32)])
    reference = [{"start": round(s["start_s"], 3), "end": round(s["end_s"], 3), "text": s["text"],
                  "speaker": s["speaker"]} for s in spans]
    return np.clip(audio, -1, 1).astype(np.float32), reference


def speech_share(duration_s: float, reference: Sequence[dict]) -> float:
    """Share of the recording inside reference spans (the spans do not overlap)."""
    return sum(span["end"] - span["start"] for span in reference) / duration_s if duration_s else 0.0


def write_longform(folder: Path, name: str, audio: np.ndarray, reference: Sequence[dict]) -> tuple[Path, Path]:
    """`name.wav` and its reference `name.json` in `folder`: one recording of a long-form set."""
    folder.mkdir(parents=True, exist_ok=True)
    wav, ref = folder / f"{name}.wav", folder / f"{name}.json"
    write_wav(wav, audio)
    ref.write_text(json.dumps(list(reference), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return wav, ref
