"""Long-form sets: whole recordings with a time-stamped reference, and how a transcript is scored on them.

A long-form set is a folder of recordings `name.<audio or video>` (wav, flac, mp3, m4a, mp4 …), each with
a reference of the same name:
- `name.json`: a list of {"start": s, "end": s, "text": "…", "speaker": "…" (optional)};
- `name.srt` or `name.vtt`: one span per cue; a WebVTT voice tag (`<v Name>`) gives the speaker.
Spans are what was said and when; everything outside them is non-speech. They must not overlap.

SRT and WebVTT are read here, strictly, because the subtitle libraries we tried (webvtt-py 0.6, srt 3.5)
silently skip a cue whose timing line is malformed or read `00:00:0x,500` as 0 s, and a reference that
loses a sentence quietly would score every system wrongly.

Scores (pure functions over reference spans and hypothesis segments; the eval pools them over recordings):
- long-form CER and term recall: each recording's span texts against its segment texts, as one clip;
- invented characters per minute of non-speech: characters of segments that overlap no span widened by
  `SPAN_MARGIN_S` on each side, over the minutes outside every span;
- loops: guards.count_loops over each recording's output;
- timestamp error: each segment is matched to the span it overlaps most; a span's matched segments
  together start at the first one's start and end at the last one's end; the error is the mean absolute
  difference of those starts and ends from the span's (spans no segment overlaps are counted as missed);
- silence covered: for each segment, the seconds of its span outside every reference span; the maximum,
  and how many segments cover more than `SILENCE_LIMIT_S`.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.evaluate import EditCounts, TermScores, char_edits, normalize_text, term_scores
from whisper_adapt.glossary import Glossary
from whisper_adapt.guards import GuardOptions, count_loops

MEDIA_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".webm", ".mp4", ".mkv", ".mov")
REFERENCE_SUFFIXES = (".json", ".srt", ".vtt")
SPAN_MARGIN_S = 1.0  # a segment this close to a span may be its text, early or late
SILENCE_LIMIT_S = 2.0  # issue #20: no subtitle on screen for more than 2 s while nobody speaks


@dataclass(frozen=True)
class Span:
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Recording:
    """One recording of a long-form set and its reference spans, in time order."""

    name: str
    audio_path: Path
    reference_path: Path
    spans: tuple[Span, ...]

    @property
    def text(self) -> str:
        return "".join(span.text for span in self.spans)


def load_longform_set(folder: Path) -> list[Recording]:
    """Every recording of the set with its spans; every problem in the folder is reported at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WhisperAdaptError("the long-form set must be a folder of recordings and references", folder)
    media: dict[str, list[Path]] = {}
    references: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        suffix = path.suffix.lower()
        if suffix in MEDIA_SUFFIXES:
            media.setdefault(path.stem, []).append(path)
        elif suffix in REFERENCE_SUFFIXES:
            references.setdefault(path.stem, []).append(path)
    recordings, problems = [], []
    for name in sorted(media.keys() | references.keys()):
        try:
            recordings.append(_pair(name, media.get(name, []), references.get(name, [])))
        except WhisperAdaptError as e:
            problems.append(e)
    if problems:
        listing = "\n  ".join(str(p) for p in problems)
        raise WhisperAdaptError(f"{len(problems)} problem(s) in the long-form set:\n  {listing}", folder)
    if not recordings:
        raise WhisperAdaptError(f"no recordings ({', '.join(MEDIA_SUFFIXES)}) with references "
                                f"({', '.join(REFERENCE_SUFFIXES)}) in the long-form folder", folder)
    return recordings


def _pair(name: str, media: list[Path], references: list[Path]) -> Recording:
    if not references:
        raise WhisperAdaptError(f"no reference for this recording (expected {name}.json, {name}.srt or {name}.vtt)",
                                media[0])
    if not media:
        raise WhisperAdaptError(f"no recording for this reference (expected {name}.wav, {name}.mp4 …)", references[0])
    if len(references) > 1:
        raise WhisperAdaptError(f"{len(references)} references for one recording "
                                f"({', '.join(p.name for p in references)}): keep one", media[0])
    if len(media) > 1:
        raise WhisperAdaptError(f"{len(media)} recordings share the name {name!r} "
                                f"({', '.join(p.name for p in media)}): rename all but one", media[0])
    return Recording(name, media[0], references[0], read_reference(references[0]))


def read_reference(path: Path) -> tuple[Span, ...]:
    """The spans of a JSON, SRT or WebVTT reference, checked: times known, not negative, not overlapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperAdaptError(f"cannot read the reference ({e})", path) from e
    suffix = path.suffix.lower()
    spans = _json_spans(text, path) if suffix == ".json" else _cue_spans(text, path, vtt=suffix == ".vtt")
    return _checked(spans, path)


def _json_spans(text: str, path: Path) -> list[Span]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise WhisperAdaptError(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})", path) from e
    if not isinstance(items, list):
        raise WhisperAdaptError('expected a JSON list of {"start": s, "end": s, "text": "…"}', path)
    spans = []
    for index, item in enumerate(items, start=1):
        where = f"span {index}"
        if not isinstance(item, dict):
            raise WhisperAdaptError(f'{where}: expected an object {{"start": s, "end": s, "text": "…"}}', path)
        times = [item.get(key) for key in ("start", "end")]
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) for t in times):
            raise WhisperAdaptError(f"{where}: start and end must be numbers of seconds, not {times[0]!r} and {times[1]!r}",
                                    path)
        text, speaker = item.get("text"), item.get("speaker")
        if not isinstance(text, str) or not (speaker is None or isinstance(speaker, str)):
            raise WhisperAdaptError(f"{where}: text (and speaker, if given) must be strings", path)
        spans.append(Span(float(times[0]), float(times[1]), text, speaker))
    return spans


_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_TAG = re.compile(r"</?[^>]*>")


def _cue_spans(text: str, path: Path, vtt: bool) -> list[Span]:
    """Cues of an SRT or WebVTT file: each block's timing line and the text lines after it."""
    lines = text.splitlines()
    if vtt and not (lines and lines[0].startswith("WEBVTT")):
        raise WhisperAdaptError("a WebVTT file must start with 'WEBVTT'", path)
    spans, number = [], 0
    while vtt and number < len(lines) and lines[number].strip():  # the header block: WEBVTT and metadata
        number += 1
    while number < len(lines):
        if not lines[number].strip():
            number += 1
            continue
        block_start = number
        while number < len(lines) and lines[number].strip():
            number += 1
        block = lines[block_start:number]
        if vtt and block[0].split(maxsplit=1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        spans.append(_cue(block, block_start + 1, path))
    return spans


def _cue(block: list[str], first_line: int, path: Path) -> Span:
    timing = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
    if timing is None:
        raise WhisperAdaptError(f"line {first_line}: expected cue timings 'HH:MM:SS,mmm --> HH:MM:SS,mmm'", path)
    match = _TIMING.match(block[timing].strip())
    if match is None:
        raise WhisperAdaptError(f"line {first_line + timing}: cannot read the cue times {block[timing].strip()!r}", path)
    groups = match.groups()
    payload = "\n".join(block[timing + 1:])
    voice = _VOICE.search(payload)
    text = html.unescape(_TAG.sub("", payload)).replace("\n", " ").strip()
    return Span(_seconds(groups[:4]), _seconds(groups[4:]), text, voice[1].strip() if voice else None)


def _seconds(parts: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = (int(p) if p else 0 for p in parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _checked(spans: list[Span], path: Path) -> tuple[Span, ...]:
    for index, span in enumerate(spans, start=1):
        if span.start_s < 0:
            raise WhisperAdaptError(f"span {index} starts at a negative time ({span.start_s:g} s)", path)
        if span.end_s <= span.start_s:
            raise WhisperAdaptError(f"span {index} does not end ({span.end_s:g} s) after it starts ({span.start_s:g} s)",
                                    path)
    ordered = sorted(spans, key=lambda span: span.start_s)
    for a, b in zip(ordered, ordered[1:]):
        if b.start_s < a.end_s:
            raise WhisperAdaptError(f"spans overlap: {a.start_s:g}–{a.end_s:g} s {a.text[:20]!r} and "
                                    f"{b.start_s:g}–{b.end_s:g} s {b.text[:20]!r}", path)
    return tuple(ordered)


def check_duration(recording: Recording, duration_s: float, tolerance_s: float = 0.5) -> None:
    """A reference must not run past the end of its recording (a wrong file, or times in the wrong unit)."""
    if recording.spans and recording.spans[-1].end_s > duration_s + tolerance_s:
        raise WhisperAdaptError(f"the reference ends at {recording.spans[-1].end_s:g} s, after the end of the "
                                f"recording ({duration_s:.1f} s)", recording.reference_path)


def merged(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of intervals as sorted, disjoint intervals."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def covered_s(start_s: float, end_s: float, union: Sequence[tuple[float, float]]) -> float:
    """Seconds of [start_s, end_s] inside the disjoint intervals `union`."""
    return sum(max(0.0, min(end_s, b) - max(start_s, a)) for a, b in union)


def nonspeech_s(duration_s: float, spans: Sequence[Span]) -> float:
    """Seconds of the recording outside every span."""
    union = merged([(s.start_s, s.end_s) for s in spans])
    return max(0.0, duration_s - covered_s(0.0, duration_s, union))


def invented_segments(segments: Sequence, spans: Sequence[Span], margin_s: float = SPAN_MARGIN_S) -> list:
    """Segments (anything with start_s, end_s) that overlap no span widened by `margin_s` on each side."""
    widened = merged([(s.start_s - margin_s, s.end_s + margin_s) for s in spans])
    return [seg for seg in segments if not any(seg.start_s < b and a < seg.end_s for a, b in widened)]


def silence_covered_s(segment, spans: Sequence[Span]) -> float:
    """Seconds of the segment's time span that lie outside every reference span."""
    union = merged([(s.start_s, s.end_s) for s in spans])
    length = max(0.0, segment.end_s - segment.start_s)
    return length - covered_s(segment.start_s, segment.end_s, union)


def timestamp_errors(segments: Sequence, spans: Sequence[Span]) -> list[tuple[float, float]]:
    """(start error, end error) in seconds, signed (hypothesis minus reference), for each span that some
    segment overlaps most: the span's segments start at the first one's start and end at the last's end."""
    groups: dict[int, list] = {}
    for segment in segments:
        overlaps = [max(0.0, min(segment.end_s, s.end_s) - max(segment.start_s, s.start_s)) for s in spans]
        if overlaps and max(overlaps) > 0:
            groups.setdefault(overlaps.index(max(overlaps)), []).append(segment)
    return [(min(seg.start_s for seg in group) - spans[index].start_s,
             max(seg.end_s for seg in group) - spans[index].end_s)
            for index, group in sorted(groups.items())]


@dataclass(frozen=True)
class LongformScores:
    """A system's figures over a long-form set (see the module docstring for each definition)."""

    char_edits: EditCounts
    terms: TermScores
    spans: int  # reference spans in all
    nonspeech_minutes: float
    invented_chars: int
    loops: int
    timestamp_errors: tuple[tuple[float, float], ...]  # (start, end) of each matched span
    silence_covered_s: tuple[float, ...]  # per hypothesis segment

    @property
    def cer(self) -> float:
        return self.char_edits.rate

    @property
    def invented_chars_per_minute(self) -> float:
        return self.invented_chars / self.nonspeech_minutes if self.nonspeech_minutes else 0.0

    @property
    def mean_start_error_s(self) -> float | None:
        errors = self.timestamp_errors
        return sum(abs(start) for start, _ in errors) / len(errors) if errors else None

    @property
    def mean_end_error_s(self) -> float | None:
        errors = self.timestamp_errors
        return sum(abs(end) for _, end in errors) / len(errors) if errors else None

    @property
    def max_silence_covered_s(self) -> float:
        return max(self.silence_covered_s, default=0.0)

    @property
    def segments_over_silence_limit(self) -> int:
        return sum(1 for seconds in self.silence_covered_s if seconds > SILENCE_LIMIT_S)


def score_longform(decoded: Sequence[tuple[Recording, float, Sequence]], glossary: Glossary, numerals: bool = False,
                   guards: GuardOptions = GuardOptions()) -> LongformScores:
    """Pool the figures over (recording, its duration in seconds, the system's segments) triples."""
    references = [recording.text for recording, _, _ in decoded]
    hypotheses = ["".join(seg.text for seg in segments) for _, _, segments in decoded]
    edits = sum((char_edits(r, h, numerals) for r, h in zip(references, hypotheses)), EditCounts())
    invented = sum(len(normalize_text(seg.text)) for recording, _, segments in decoded
                   for seg in invented_segments(segments, recording.spans))
    return LongformScores(
        char_edits=edits,
        terms=term_scores(references, hypotheses, glossary),
        spans=sum(len(recording.spans) for recording, _, _ in decoded),
        nonspeech_minutes=sum(nonspeech_s(duration, recording.spans) for recording, duration, _ in decoded) / 60,
        invented_chars=invented,
        loops=sum(count_loops(text, guards) for text in hypotheses),
        timestamp_errors=tuple(e for recording, _, segments in decoded
                               for e in timestamp_errors(segments, recording.spans)),
        silence_covered_s=tuple(silence_covered_s(seg, recording.spans) for recording, _, segments in decoded
                                for seg in segments),
    )
