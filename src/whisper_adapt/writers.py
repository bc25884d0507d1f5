"""Output formats: one small render function per format, looked up by name.

`json` follows the field names of OpenAI's verbose_json (times in seconds as `start`/`end`, words with
`word`/`probability`), so tools written for Whisper's output read ours; it adds the segments the guards
dropped, each with its reason. `md` is the minutes document (minutes.py).

Speaker labels, where the transcript has them: a `speaker` on each json segment and word, a WebVTT voice
tag (`<v S1>`), an `S1: ` prefix on each SRT cue, and in txt a line naming the speaker at each change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.files import write_text_atomically
from whisper_adapt.glossary import Glossary
from whisper_adapt.minutes import render_minutes
from whisper_adapt.transcript import Segment, Transcript


def _one_line(text: str) -> str:
    # A line break inside a cue would end it early in SRT and VTT, and split a segment in txt.
    return " ".join(text.splitlines()).strip()


def _timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS<separator>mmm; hours keep counting past 99 rather than wrapping."""
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _render_txt(transcript: Transcript) -> str:
    lines, speaker = [], None
    for segment in transcript.segments:
        if segment.speaker is not None and segment.speaker != speaker:
            lines += ([""] if lines else []) + [f"{_one_line(segment.speaker)}:"]
            speaker = segment.speaker
        lines.append(_one_line(segment.text))
    return "".join(f"{line}\n" for line in lines)


def _render_srt(transcript: Transcript) -> str:
    cues = (
        f"{index}\n{_timestamp(segment.start_s, ',')} --> {_timestamp(segment.end_s, ',')}\n"
        f"{_speaker_prefix(segment)}{_one_line(segment.text)}\n"
        for index, segment in enumerate(transcript.segments, start=1)
    )
    return "\n".join(cues)


def _speaker_prefix(segment: Segment) -> str:
    return "" if segment.speaker is None else f"{_one_line(segment.speaker)}: "


def _render_vtt(transcript: Transcript) -> str:
    cues = (
        f"{_timestamp(segment.start_s, '.')} --> {_timestamp(segment.end_s, '.')}\n"
        f"{_voice_tag(segment)}{_one_line(segment.text)}\n"
        for segment in transcript.segments
    )
    return "WEBVTT\n\n" + "\n".join(cues)


def _voice_tag(segment: Segment) -> str:
    # A voice annotation ends at the first '>'; a name cannot carry one.
    return "" if segment.speaker is None else f"<v {_one_line(segment.speaker).replace('>', '＞')}>"


def _segment_json(segment: Segment) -> dict:
    return {
        "start": round(segment.start_s, 3),
        "end": round(segment.end_s, 3),
        "text": segment.text,
        **_speaker_json(segment),
        "avg_logprob": segment.avg_logprob,
        "no_speech_prob": segment.no_speech_prob,
        "compression_ratio": segment.compression_ratio,
        "words": [
            {"start": round(word.start_s, 3), "end": round(word.end_s, 3), "word": word.text,
             "probability": word.probability, **_speaker_json(word)}
            for word in segment.words
        ],
    }


def _speaker_json(item) -> dict:
    """Only when labelled, so output without --speakers stays as it was."""
    return {} if item.speaker is None else {"speaker": item.speaker}


def _render_json(transcript: Transcript) -> str:
    document = {
        "source": transcript.source,
        "language": transcript.language,
        "duration": transcript.duration_s,
        "text": transcript.text,
        "segments": [{"id": i, **_segment_json(s)} for i, s in enumerate(transcript.segments)],
        "dropped": [{**_segment_json(s), "reason": reason} for s, reason in transcript.dropped],
        "dropped_counts": transcript.drop_counts,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


_RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "txt": _render_txt,
    "srt": _render_srt,
    "vtt": _render_vtt,
    "json": _render_json,
}
# Formats that set the glossary's terms apart.
_GLOSSARY_RENDERERS: dict[str, Callable[[Transcript, Glossary | None], str]] = {"md": render_minutes}
FORMATS: tuple[str, ...] = (*_RENDERERS, *_GLOSSARY_RENDERERS)


def _renderer(fmt: str, glossary: Glossary | None = None) -> Callable[[Transcript], str]:
    if fmt in _GLOSSARY_RENDERERS:
        return partial(_GLOSSARY_RENDERERS[fmt], glossary=glossary)
    try:
        return _RENDERERS[fmt]
    except KeyError:
        raise WhisperAdaptError(f"unknown output format '{fmt}'; choose from {', '.join(FORMATS)}") from None


def render(transcript: Transcript, fmt: str, glossary: Glossary | None = None) -> str:
    """The transcript as text in format `fmt` (one of FORMATS); `glossary` marks its terms in `md`."""
    return _renderer(fmt, glossary)(transcript)


def write_transcript(
    transcript: Transcript, out_dir: str | Path, formats: Iterable[str], stem: str | None = None,
    glossary: Glossary | None = None,
) -> list[Path]:
    """Write `<stem>.<fmt>` (default: the source's stem) into out_dir for each format; returns the paths.

    Every format is checked before anything is written, and each file appears whole or not at all.
    """
    renderers = {fmt: _renderer(fmt, glossary) for fmt in formats}
    stem = stem or Path(transcript.source).stem
    if not stem:
        raise WhisperAdaptError("the transcript has no source name to name its output files")
    directory = Path(out_dir)
    paths = [directory / f"{stem}.{fmt}" for fmt in renderers]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, render_fn in zip(paths, renderers.values()):
            write_text_atomically(path, render_fn(transcript))
    except OSError as e:
        raise WhisperAdaptError(f"cannot write the transcript: {e.strerror}", e.filename or directory) from e
    return paths
