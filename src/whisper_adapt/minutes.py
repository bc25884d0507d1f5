"""Minutes in Markdown: the document a person circulates after a meeting, readable without any tool.

A heading with the recording's name, its date and length; the participants with their speaking time;
then the conversation as turns — consecutive segments of one speaker joined into a paragraph under the
speaker's name and the time the turn began. Glossary terms are set in bold. Without speaker labels the
conversation is one paragraph per stretch of talk, a pause of `PARAGRAPH_PAUSE_S` starting the next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from whisper_adapt.glossary import Glossary, find_matches
from whisper_adapt.transcript import Segment, Transcript

PARAGRAPH_PAUSE_S = 5.0
# Languages written without spaces between words: their segments join without one.
_UNSPACED = {"ja", "zh", "th", "lo", "my", "km", "yue"}
# ASCII punctuation that Markdown may read as markup gets a backslash (CommonMark allows one before any
# ASCII punctuation); an underscore inside a word (file_name) is never markup and is left alone to read.
_MARKUP = re.compile(r"[\\`*\[\]<>#|~]|(?<![^\W_])_|_(?![^\W_])")


@dataclass(frozen=True)
class _Turn:
    speaker: str | None
    start_s: float
    segments: list[Segment]


def render_minutes(transcript: Transcript, glossary: Glossary | None = None) -> str:
    """The transcript as Markdown minutes (see the module doc)."""
    turns = list(_turns(transcript.segments))
    lines = [f"# {_escape(Path(transcript.source).name or transcript.source)}", ""]
    if transcript.recorded_on:
        lines.append(f"- Date: {transcript.recorded_on}")
    lines += [f"- Duration: {_clock(transcript.duration_s)}", ""]
    if any(turn.speaker is not None for turn in turns):
        lines += _participants(transcript.segments)
    lines += ["## Conversation", ""]
    if not turns:
        lines += ["*Nothing was said.*", ""]
    joiner = "" if transcript.language in _UNSPACED else " "
    for turn in turns:
        who = f"**{_escape(turn.speaker)}** · " if turn.speaker is not None else ""
        lines.append(f"{who}{_clock(turn.start_s)}")
        lines.append("")
        lines.append(joiner.join(_marked(s.text.strip(), glossary) for s in turn.segments if s.text.strip()))
        lines.append("")
    return "\n".join(lines)


def _turns(segments: tuple[Segment, ...]) -> Iterator[_Turn]:
    current: _Turn | None = None
    for segment in segments:
        same = current is not None and segment.speaker == current.speaker
        if same and (segment.speaker is not None or segment.start_s - current.segments[-1].end_s < PARAGRAPH_PAUSE_S):
            current.segments.append(segment)
            continue
        if current is not None:
            yield current
        current = _Turn(segment.speaker, segment.start_s, [segment])
    if current is not None:
        yield current


def speaking_time_s(segments: tuple[Segment, ...]) -> dict[str, float]:
    """Seconds each speaker talked (words' times where there are words), largest first."""
    talk: dict[str, float] = {}
    for segment in segments:
        pieces = segment.words or (segment,)
        for piece in pieces:
            if piece.speaker is not None:
                talk[piece.speaker] = talk.get(piece.speaker, 0.0) + max(0.0, piece.end_s - piece.start_s)
    return dict(sorted(talk.items(), key=lambda item: -item[1]))


def _participants(segments: tuple[Segment, ...]) -> list[str]:
    talk = speaking_time_s(segments)
    total = sum(talk.values()) or 1.0
    lines = ["## Participants", "", "| Speaker | Speaking time | Share |", "|---|---:|---:|"]
    lines += [f"| {_escape(name)} | {_clock(seconds)} | {seconds / total:.0%} |" for name, seconds in talk.items()]
    return lines + [""]


def _marked(text: str, glossary: Glossary | None) -> str:
    """`text` escaped for Markdown, with each glossary term in bold."""
    if glossary is None:
        return _escape(text)
    pieces, position = [], 0
    for start, end, term in find_matches(text, glossary):
        if text[start:end] != term:  # a misrecognition left as it was heard: not the term, not bold
            continue
        pieces += [_escape(text[position:start]), f"**{_escape(term)}**"]
        position = end
    return "".join(pieces) + _escape(text[position:])


def _escape(text: str) -> str:
    return _MARKUP.sub(lambda match: "\\" + match[0], text)


def _clock(seconds: float) -> str:
    """H:MM:SS."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
