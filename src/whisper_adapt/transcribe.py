"""Long-form transcription with faster-whisper, our guards on every path, and the replacement dictionary."""

from __future__ import annotations

import datetime
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from whisper_adapt import progress
from whisper_adapt.audio import SAMPLE_RATE, audio_duration_s, iter_audio_chunks
from whisper_adapt.errors import TooLongError, WhisperAdaptError
from whisper_adapt.glossary import Glossary, apply_replacements
from whisper_adapt.guards import GuardOptions, apply_guards
from whisper_adapt.transcript import Segment, Transcript, Word

if TYPE_CHECKING:
    from whisper_adapt.segment import SpeechMap
    from whisper_adapt.speakers import SpeakerLabeller

# Longest stretch of a file transcribe_path holds and transcribes at once (about 20 MB of samples, and
# faster-whisper's features of it): memory is bounded by this, not by the recording's length.
WINDOW_S = 300.0
# How far before a window's end a pause to cut at is looked for.
_CUT_SEARCH_S = 30.0
_READ_CHUNK_S = 30.0


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = "ja"
    beam_size: int = 5
    # Silero VAD skips non-speech before Whisper sees it: the first defence against hallucination.
    vad: bool = True
    # 0 runs faster-whisper's sequential decoder; N > 0 its batched pipeline with N windows at a time.
    batch_size: int = 0
    # Off: feeding the previous window's text back is how one loop spreads into the next windows.
    condition_on_previous_text: bool = False
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    word_timestamps: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    guards: GuardOptions = field(default_factory=GuardOptions)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise WhisperAdaptError(f"beam size must be at least 1, not {self.beam_size}")
        if self.batch_size < 0:
            raise WhisperAdaptError(f"batch size must be 0 (sequential) or more, not {self.batch_size}")
        if self.batch_size and not self.vad:
            raise WhisperAdaptError("the batched pipeline needs VAD to cut the audio; drop --no-vad or --batch-size")


def load_model(spec: str | Path = "base", device: str = "auto", compute_type: str = "auto"):
    """A faster-whisper model for `spec` (any form models.py resolves), converted to CTranslate2 if needed.

    compute_type "auto" is int8 on CPU (about 1.6x faster than float32 for base on 2 cores, same text on
    our samples; bench/transcribe_speed.py) and float16 on a GPU.
    """
    import ctranslate2
    from faster_whisper import WhisperModel

    from whisper_adapt.models import resolve_model

    # CTranslate2 warns on every CPU load that float16 weights run as float32: expected, not actionable.
    ctranslate2.set_log_level(logging.ERROR)
    path = resolve_model(spec, "ct2")
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "int8" if device == "cpu" else "float16"
    try:
        return WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=os.cpu_count() or 0)
    except (RuntimeError, ValueError) as e:
        raise WhisperAdaptError(f"cannot load model on {device}/{compute_type} ({e})", path) from e


def transcribe_audio(
    model,
    audio: np.ndarray,
    options: TranscribeOptions = TranscribeOptions(),
    source: str = "<audio>",
    glossary: Glossary | None = None,
    on_progress: progress.ProgressFn = progress.ignore,
) -> Transcript:
    """Transcribe 16 kHz mono samples; guards run on the output of either decoder path."""
    from whisper_adapt.segment import SpeechMap

    duration_s = len(audio) / SAMPLE_RATE
    speech = SpeechMap(audio) if options.vad else None
    raw_segments, language = _run_decoder(model, audio, options, speech)
    segments = []
    stage = f"transcribe {Path(source).name}"
    for raw in raw_segments:
        segments.append(_to_segment(raw))
        on_progress(progress.Progress(stage, min(raw.end, duration_s), duration_s, "s"))
    on_progress(progress.Progress(stage, duration_s, duration_s, "s"))  # the silence after the last word too
    segments, outside = _clamp_to_audio(segments, duration_s)
    kept, dropped = apply_guards(segments, options.guards, language, speech.speech_share if speech else None)
    dropped = sorted(dropped + outside, key=lambda item: item[0].start_s)
    if not options.word_timestamps:  # asked for by the pause guard only
        kept = [replace(segment, words=()) for segment in kept]
        dropped = [(replace(segment, words=()), reason) for segment, reason in dropped]
    if glossary is not None:
        kept = [_replace_text(segment, apply_replacements(segment.text, glossary)) for segment in kept]
    return Transcript(source, language, duration_s, tuple(kept), tuple(dropped))


def transcribe_path(
    model,
    path: str | Path,
    options: TranscribeOptions = TranscribeOptions(),
    glossary: Glossary | None = None,
    on_progress: progress.ProgressFn = progress.ignore,
    source: str | None = None,
    window_s: float = WINDOW_S,
    max_duration_s: float | None = None,
) -> Transcript:
    """Transcribe a file of any length in bounded memory: decoded in chunks, transcribed by `transcribe_audio`
    in windows of about `window_s` seconds cut in pauses (no sentence is split), timestamps made the
    recording's. With no language given, the one detected in the first window is kept for the rest.
    `max_duration_s`: TooLongError as soon as decoding passes it, before that window is transcribed.
    `source` names the transcript (default: the path)."""
    source = source or str(path)
    total_s = audio_duration_s(path)  # the header's figure, for progress only
    parts: list[tuple[float, Transcript]] = []
    for window, start_s in _windows(path, window_s, max_duration_s, source):

        def report(event: progress.Progress, start_s: float = start_s) -> None:
            done_s = start_s + event.done
            on_progress(replace(event, done=done_s, total=max(total_s, done_s)))

        part = transcribe_audio(model, window, options, source, glossary, report)
        options = options if options.language else replace(options, language=part.language)
        parts.append((start_s, part))
    return _joined(source, parts)


def _windows(path: str | Path, window_s: float, max_duration_s: float | None,
             source: str) -> Iterable[tuple[np.ndarray, float]]:
    """(samples, start in seconds) of consecutive windows, each cut in the longest pause of its last
    `_CUT_SEARCH_S` seconds; memory: one window plus one read chunk."""
    from whisper_adapt.segment import pause_cut

    window_len = round(window_s * SAMPLE_RATE)
    search_len = round(min(_CUT_SEARCH_S, window_s / 2) * SAMPLE_RATE)
    pending, start, decoded = np.zeros(0, np.float32), 0, 0
    for chunk in iter_audio_chunks(path, _READ_CHUNK_S):
        decoded += len(chunk)
        if max_duration_s is not None and decoded > max_duration_s * SAMPLE_RATE:
            raise TooLongError(f"holds more than {max_duration_s / 60:g} minutes of audio", source)
        pending = np.concatenate([pending, chunk])
        while len(pending) >= window_len:
            cut = pause_cut(pending, window_len - search_len, window_len)
            yield pending[:cut], start / SAMPLE_RATE
            pending, start = pending[cut:], start + cut
    if len(pending):
        yield pending, start / SAMPLE_RATE


def _joined(source: str, parts: list[tuple[float, Transcript]]) -> Transcript:
    """The windows' transcripts as one, their times shifted by each window's start."""
    segments = tuple(_shifted(segment, start_s) for start_s, part in parts for segment in part.segments)
    dropped = tuple((_shifted(segment, start_s), why) for start_s, part in parts for segment, why in part.dropped)
    last_start_s, last = parts[-1]
    return Transcript(source, parts[0][1].language, last_start_s + last.duration_s, segments, dropped)


def _shifted(segment: Segment, offset_s: float) -> Segment:
    if not offset_s:
        return segment
    words = tuple(replace(w, start_s=w.start_s + offset_s, end_s=w.end_s + offset_s) for w in segment.words)
    return replace(segment, start_s=segment.start_s + offset_s, end_s=segment.end_s + offset_s, words=words)


def _run_decoder(model, audio: np.ndarray, options: TranscribeOptions, speech: SpeechMap | None) -> tuple[Iterable, str]:
    """faster-whisper's segments and language. The sequential decoder hears each VAD region on its own
    (`clip_timestamps`) rather than faster-whisper's concatenation of them: there a window glues sentences
    from minutes apart, and a decoder that ends its text early (an adapted model or a prompt does, after the
    first sentence) loses every other sentence of the window, while its last segment's time stretches over
    the silences between them. (The batched pipeline decodes VAD chunks packed into 30-s pieces, each apart.)"""
    settings = dict(
        language=options.language,
        beam_size=options.beam_size,
        temperature=list(options.temperatures),
        compression_ratio_threshold=options.guards.compression_ratio_max,
        log_prob_threshold=options.guards.avg_logprob_min,
        no_speech_threshold=options.guards.no_speech_prob_max,
        # The pause guard splits segments at their words' timings: ask for them whenever it is on.
        word_timestamps=options.word_timestamps or options.guards.max_pause_s is not None,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
        vad_filter=options.vad,
    )
    if speech is not None and not options.batch_size and speech.regions_s:
        settings.update(vad_filter=False, clip_timestamps=[edge for region in speech.regions_s for edge in region])
    if options.batch_size:
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(model)
        segments, info = pipeline.transcribe(audio, batch_size=options.batch_size, **settings)
    else:
        segments, info = model.transcribe(
            audio, condition_on_previous_text=options.condition_on_previous_text, **settings
        )
    return segments, info.language


def _to_segment(raw) -> Segment:
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in (raw.words or ()))
    return Segment(
        start_s=raw.start, end_s=raw.end, text=raw.text.strip(), avg_logprob=raw.avg_logprob,
        no_speech_prob=raw.no_speech_prob, compression_ratio=raw.compression_ratio, words=words,
    )


def _clamp_to_audio(segments: list[Segment], duration_s: float) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Whisper can predict timestamps past the end of the audio; such text was not heard."""
    kept, outside = [], []
    for segment in segments:
        if segment.start_s >= duration_s:
            outside.append((segment, f"after the end: starts at {segment.start_s:.2f} s, the audio ends at {duration_s:.2f} s"))
        else:
            kept.append(replace(segment, end_s=min(segment.end_s, duration_s)))
    return kept, outside


def _replace_text(segment: Segment, text: str) -> Segment:
    return segment if text == segment.text else replace(segment, text=text)


@dataclass
class BatchResult:
    written: list[Path] = field(default_factory=list)
    failures: list[WhisperAdaptError] = field(default_factory=list)


def transcribe_files(
    files: Sequence[Path],
    out_dir: Path,
    formats: Sequence[str],
    model,
    options: TranscribeOptions = TranscribeOptions(),
    glossary: Glossary | None = None,
    on_progress: progress.ProgressFn = progress.ignore,
    speakers: SpeakerLabeller | None = None,
) -> BatchResult:
    """Transcribe each file and write the chosen formats; a bad file is recorded and the batch goes on.
    With `speakers`, each recording is also diarized and its segments and words carry speaker labels."""
    from whisper_adapt.writers import write_transcript

    result = BatchResult()
    stems = output_stems(files)
    for path in files:
        try:
            transcript = transcribe_path(model, path, options, glossary, on_progress)
            transcript = replace(transcript, recorded_on=recording_date(path))
            if speakers is not None:
                transcript = speakers.label(path, transcript, glossary, _speaker_progress(on_progress, transcript))
            result.written += write_transcript(transcript, out_dir, formats, stems[path], glossary)
        except WhisperAdaptError as e:
            result.failures.append(e)
    return result


def _speaker_progress(on_progress: progress.ProgressFn, transcript: Transcript) -> progress.ProgressFn:
    """Diarization's progress against the transcript's length (the diarizer does not know it ahead)."""
    duration_s = transcript.duration_s
    return lambda event: on_progress(replace(event, done=min(event.done, duration_s), total=duration_s))


def recording_date(path: Path) -> str:
    """The day the recording was last written (a recorder writes the file as the meeting ends), ISO."""
    try:
        return datetime.date.fromtimestamp(path.stat().st_mtime).isoformat()
    except OSError as e:
        raise WhisperAdaptError(f"cannot read the file's date: {e.strerror}", path) from e


def output_stems(files: Sequence[Path]) -> dict[Path, str]:
    """Output names: the input's stem (so players find `talk.srt` beside `talk.mp4`), unless two inputs
    share it (`a/talk.wav`, `b/talk.m4a`): then the full file name, then a numbered one."""
    stem_counts = Counter(path.stem for path in files)
    stems: dict[Path, str] = {}
    taken: set[str] = set()
    for path in files:
        stem = path.stem if stem_counts[path.stem] == 1 else path.name
        candidate, number = stem, 2
        while candidate in taken:
            candidate, number = f"{stem}-{number}", number + 1
        stems[path] = candidate
        taken.add(candidate)
    return stems
