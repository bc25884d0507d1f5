"""Cut a recording into clips at speech pauses: Silero VAD finds speech, clips are packed and split to length.

How a recording becomes clips:
1. Speech regions: faster-whisper's Silero VAD; a pause of at least `min_silence_ms` separates two
   regions, and `pad_ms` of the surrounding audio is kept on each side (a short pause is shared at its
   middle).
2. A region longer than `max_clip_s` is split at its quietest point (lowest smoothed energy, at least
   `min_clip_s` from either end), again and again, so a long stretch of speech is cut between words
   where the speaker breathes, not in the middle of one.
3. Consecutive regions are packed into one clip while it stays within `max_clip_s` and the pause
   between them is at most `max_inner_pause_ms`; a clip that would grow too long is cut at its longest
   pause. So every cut between clips lies in a pause, and in the longest one available.
4. A clip shorter than `min_clip_s` is widened into the silence around it, or dropped if there is none.

Hours-long files are decoded and scanned in windows of `window_s` seconds. The clip that may still grow
(the last one of a window) is not emitted: its audio is carried into the next window and scanned again,
so memory stays at about one window plus one clip whatever the recording's length. The cutting is
deterministic for a given file and options, which lets an interrupted `prepare` re-run it and skip the
clips it already has.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, iter_audio_chunks
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.progress import Progress, ProgressFn, ignore

# Whisper hears at most 30 s at once; a longer clip could neither be drafted in one window nor trained on.
WHISPER_WINDOW_S = 30.0
_FRAME = 160  # 10 ms energy frames
# A 210 ms average: a pause between phrases is that long, while the silent closure inside a word
# (the っ of 確定して, ~100 ms) is not, so the word does not get cut there.
_SMOOTH_FRAMES = 21
_MIN_SPEECH_MS = 250  # shorter blips (a click, a cough) are not speech regions
VAD_FRAME = 512  # Silero's frame at 16 kHz (32 ms)


@dataclass(frozen=True)
class SegmentOptions:
    min_clip_s: float = 1.0
    max_clip_s: float = 30.0
    min_silence_ms: int = 300
    pad_ms: int = 200
    max_inner_pause_ms: int = 2000
    vad_threshold: float = 0.5
    window_s: float = 120.0

    def __post_init__(self) -> None:
        # max >= 2 min: a region just over max can always be split into two pieces of at least min.
        if not (0 < self.min_clip_s and 2 * self.min_clip_s <= self.max_clip_s <= WHISPER_WINDOW_S):
            raise WhisperAdaptError(f"clip length bounds must satisfy 0 < 2 × min <= max <= {WHISPER_WINDOW_S:g} s, "
                                    f"got {self.min_clip_s:g}–{self.max_clip_s:g} s")
        if self.min_silence_ms < 0 or self.pad_ms < 0:
            raise WhisperAdaptError("pause and padding lengths cannot be negative")
        if self.max_inner_pause_ms < self.min_silence_ms:
            raise WhisperAdaptError("the longest pause inside a clip cannot be shorter than the pause that separates speech")
        if not 0 < self.vad_threshold < 1:
            raise WhisperAdaptError(f"VAD threshold must be between 0 and 1, got {self.vad_threshold}")
        if self.window_s < 2 * self.max_clip_s:
            raise WhisperAdaptError(f"the scan window ({self.window_s:g} s) must be at least twice the longest clip")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClipAudio:
    start: int  # first sample, counted from the start of the recording
    samples: np.ndarray

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return (self.start + len(self.samples)) / SAMPLE_RATE


def iter_clips(path: str | Path, options: SegmentOptions = SegmentOptions(),
               on_progress: ProgressFn = ignore) -> Iterator[ClipAudio]:
    """The clips of recording `path`, in order; the seconds decoded reported after each window."""
    stage = f"cut {Path(path).name}"
    carry, origin, decoded = np.zeros(0, np.float32), 0, 0
    for chunk, final in _with_last_flag(iter_audio_chunks(path, options.window_s)):
        decoded += len(chunk)
        buffer = np.concatenate([carry, chunk])
        spans, keep_from = plan_clips(buffer, options, final)
        for start, end in spans:
            yield ClipAudio(origin + start, buffer[start:end].copy())
        carry, origin = buffer[keep_from:], origin + keep_from
        on_progress(Progress(stage, decoded / SAMPLE_RATE, None, "s"))


def _with_last_flag(chunks: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    previous = next(chunks)
    for chunk in chunks:
        yield previous, False
        previous = chunk
    yield previous, True


def plan_clips(buffer: np.ndarray, options: SegmentOptions, final: bool) -> tuple[list[tuple[int, int]], int]:
    """Clip spans (sample ranges) to emit from `buffer`, and where the next window must start.

    Unless `final`, the last clip could still grow with audio not yet decoded: it is left out and the
    next window starts at its beginning (or, with no clip pending, shortly before the buffer's end).
    Emitted clips end before that point, so no audio is ever in two clips.
    """
    pieces = [piece for region in speech_regions(buffer, options) for piece in split_long(buffer, region, options)]
    clips = pack(pieces, options)
    # The last clip may still grow only if the next speech can still join it (a short enough pause).
    reach = _samples((options.max_inner_pause_ms + options.pad_ms + _MIN_SPEECH_MS) / 1000)
    if not final and clips and len(buffer) - clips[-1][1] <= reach:
        keep_from = clips.pop()[0]
    else:
        # Speech that starts in the last moments might not be a region yet: scan that tail again.
        # (The last clip ends more than `reach` before the end, and reach >= this tail: see the options.)
        tail = 0 if final else _samples((options.min_silence_ms + options.pad_ms + _MIN_SPEECH_MS) / 1000)
        keep_from = len(buffer) - tail
    return fit_min_length(clips, options, upper=keep_from), keep_from


def speech_regions(buffer: np.ndarray, options: SegmentOptions) -> list[tuple[int, int]]:
    """Padded speech regions of `buffer` as (start, end) sample ranges, from faster-whisper's Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(buffer) == 0:
        return []
    vad = VadOptions(threshold=options.vad_threshold, min_speech_duration_ms=_MIN_SPEECH_MS,
                     min_silence_duration_ms=options.min_silence_ms, speech_pad_ms=options.pad_ms)
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(buffer, vad)]


@dataclass(frozen=True, eq=False)
class SpeechMap:
    """Where Silero VAD hears speech in a stretch of audio (faster-whisper's default VAD settings, what its
    `vad_filter` uses): the padded regions (seconds) the decoder is given, and the per-frame speech
    probability the guards read under a segment. Each is computed when first asked for: the batched path
    never asks for the regions, and the guards ask for the probabilities only under an unsure segment."""

    audio: np.ndarray

    @functools.cached_property
    def regions_s(self) -> tuple[tuple[float, float], ...]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if len(self.audio) == 0:
            return ()
        return tuple((r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE)
                     for r in get_speech_timestamps(self.audio, VadOptions()))

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        """One per VAD_FRAME samples, the audio padded as get_speech_timestamps pads it."""
        from faster_whisper.vad import get_vad_model

        padded = np.pad(self.audio, (0, VAD_FRAME - len(self.audio) % VAD_FRAME))
        return np.asarray(get_vad_model()(padded)).reshape(-1)

    def speech_share(self, start_s: float, end_s: float) -> float:
        """The share of the frames between `start_s` and `end_s` that VAD calls speech (at least one frame)."""
        from faster_whisper.vad import VadOptions

        first = int(start_s * SAMPLE_RATE) // VAD_FRAME
        last = max(first + 1, -(-int(end_s * SAMPLE_RATE) // VAD_FRAME))
        frames = self.probabilities[first:last]
        return float(np.mean(frames > VadOptions().threshold)) if frames.size else 0.0


def pause_cut(buffer: np.ndarray, lowest: int, highest: int, min_silence_ms: int = 300) -> int:
    """Where to cut `buffer` between samples `lowest` and `highest` so that no word is split: the middle of
    the longest pause there (Silero VAD), else the quietest point (a breath inside continuous speech)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(min_speech_duration_ms=_MIN_SPEECH_MS, min_silence_duration_ms=min_silence_ms, speech_pad_ms=0)
    speech = [(int(r["start"]) + lowest, int(r["end"]) + lowest)
              for r in get_speech_timestamps(buffer[lowest:highest], vad)]
    edges = [lowest] + [edge for region in speech for edge in region] + [highest]
    pauses = [(edges[i + 1] - edges[i], edges[i]) for i in range(0, len(edges), 2) if edges[i + 1] > edges[i]]
    if not pauses:
        return quietest_point(buffer, lowest, highest)
    length, start = max(pauses)
    return start + length // 2


def split_long(buffer: np.ndarray, region: tuple[int, int], options: SegmentOptions) -> list[tuple[int, int]]:
    """`region` cut at its quietest points into pieces of at most `max_clip_s` (and at least `min_clip_s`)."""
    max_len, min_len = _samples(options.max_clip_s), _samples(options.min_clip_s)
    start, end = region
    pieces = []
    while end - start > max_len:
        lowest, highest = start + min_len, min(start + max_len, end - min_len)
        cut = quietest_point(buffer, lowest, highest)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def quietest_point(buffer: np.ndarray, lowest: int, highest: int) -> int:
    """The sample in [lowest, highest] at the centre of the quietest 210 ms (the latest one on ties)."""
    first, last = lowest // _FRAME, max(lowest // _FRAME, highest // _FRAME - 1)
    frames = buffer[first * _FRAME:(last + 1) * _FRAME].reshape(-1, _FRAME)
    energy = np.square(frames, dtype=np.float64).mean(axis=1)
    # Edge padding, not zeros: zeros would make the ends of the range look quiet and attract the cut.
    padded = np.pad(energy, _SMOOTH_FRAMES // 2, mode="edge")
    smoothed = np.convolve(padded, np.ones(_SMOOTH_FRAMES) / _SMOOTH_FRAMES, mode="valid")
    best = len(smoothed) - 1 - int(np.argmin(smoothed[::-1]))
    return min(max((first + best) * _FRAME + _FRAME // 2, lowest), highest)


def pack(pieces: list[tuple[int, int]], options: SegmentOptions) -> list[tuple[int, int]]:
    """Join consecutive pieces into clips of at most `max_clip_s`, never across a pause longer than
    `max_inner_pause_ms`. When the next piece does not fit, the clip is cut at its longest pause (the
    latest on ties) rather than just before that piece: a sentence ends at a longer pause than a phrase
    inside it, so this keeps sentences whole."""
    max_len, max_pause = _samples(options.max_clip_s), _samples(options.max_inner_pause_ms / 1000)
    clips: list[tuple[int, int]] = []
    group: list[tuple[int, int]] = []
    for piece in pieces:
        if group and piece[0] - group[-1][1] > max_pause:
            clips.append((group[0][0], group[-1][1]))
            group = []
        group.append(piece)
        while group[-1][1] - group[0][0] > max_len:
            # Cut before piece k: the left part fits (it was a clip already); the right part must fit too.
            fitting = [k for k in range(1, len(group)) if group[-1][1] - group[k][0] <= max_len]
            k = max(fitting, key=lambda k: (group[k][0] - group[k - 1][1], k))
            clips.append((group[0][0], group[k - 1][1]))
            group = group[k:]
    if group:
        clips.append((group[0][0], group[-1][1]))
    return clips


def fit_min_length(clips: list[tuple[int, int]], options: SegmentOptions, upper: int) -> list[tuple[int, int]]:
    """Widen clips shorter than `min_clip_s` into the silence on both sides (between the neighbouring
    clips, the buffer's start and `upper`); drop those that cannot be widened enough."""
    min_len = _samples(options.min_clip_s)
    fitted: list[tuple[int, int]] = []
    for index, (start, end) in enumerate(clips):
        missing = min_len - (end - start)
        if missing <= 0:
            fitted.append((start, end))
            continue
        left_bound = fitted[-1][1] if fitted else 0
        right_bound = clips[index + 1][0] if index + 1 < len(clips) else upper
        grow_left = min(start - left_bound, max(missing // 2, missing - (right_bound - end)))
        grow_right = min(right_bound - end, missing - grow_left)
        if grow_left + grow_right >= missing:
            fitted.append((start - grow_left, end + grow_right))
    return fitted


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)
