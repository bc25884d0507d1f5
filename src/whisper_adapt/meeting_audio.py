"""A meeting recording put together from a script of spoken lines, and the script's spans of who said what.

The demo's meeting (demo.py) and the long-form recordings (nonspeech.build_longform) are both built here:
lines in order with a pause (or, for long-form sets, a stretch of non-speech) before each, the lines
marked murmur spoken at once and quietly, faint room noise over everything. A script file holds one
`voice<TAB>text` line per utterance; lines between `[murmur]` and `[/murmur]` are the murmur.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.errors import WhisperAdaptError

MURMUR_GAIN = 0.3
PAUSE_S = (0.6, 2.2)
ROOM_NOISE = 0.003


@dataclass(frozen=True)
class Line:
    voice: str
    text: str
    murmur: bool = False  # spoken over the other murmur lines: nobody could transcribe it


def read_meeting(path: Path) -> list[Line]:
    """`voice<TAB>text` lines; lines between `[murmur]` and `[/murmur]` are spoken at once."""
    lines, murmur = [], False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("[murmur]", "[/murmur]"):
            murmur = text == "[murmur]"
            continue
        voice, sep, said = text.partition("\t")
        if not sep:
            raise WhisperAdaptError(f"line {number}: expected voice<TAB>text", path)
        lines.append(Line(voice, said.strip(), murmur))
    return lines


def build_meeting(lines: Sequence[Line], speech: Callable[[str, str], np.ndarray], rng: np.random.Generator,
                  gap: Callable[[np.random.Generator], np.ndarray] | None = None) -> tuple[np.ndarray, list[dict]]:
    """The meeting's audio and its script as spans [{start_s, end_s, text, speaker, murmur}]: lines in order
    with pauses, murmur lines mixed into one stretch, faint room noise over everything. `gap(rng)` makes
    what is heard before each line (default: a silent pause of PAUSE_S); long-form recordings put long
    stretches of non-speech there (nonspeech.build_longform)."""
    gap = gap or _pause
    parts, spans, position = [], [], 0
    index = 0
    while index < len(lines):
        group = [lines[index]]
        while group[0].murmur and index + len(group) < len(lines) and lines[index + len(group)].murmur:
            group.append(lines[index + len(group)])
        voices = [speech(line.text, line.voice) for line in group]
        length = max(len(v) for v in voices)
        audio = sum(np.pad(v, (0, length - len(v))) for v in voices)
        audio = (audio * MURMUR_GAIN if group[0].murmur else audio).astype(np.float32)
        before = gap(rng).astype(np.float32)
        start = position + len(before)
        spans.append({"start_s": start / SAMPLE_RATE, "end_s": (start + length) / SAMPLE_RATE,
                      "text": "".join(line.text for line in group), "speaker": group[0].voice,
                      "murmur": group[0].murmur, "voices": [line.voice for line in group]})
        parts += [before, audio]
        position = start + length
        index += len(group)
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    meeting = np.concatenate(parts)
    meeting = meeting + rng.normal(0, ROOM_NOISE, meeting.size).astype(np.float32)
    return np.clip(meeting, -1, 1).astype(np.float32), spans


def _pause(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(round(rng.uniform(*PAUSE_S) * SAMPLE_RATE), np.float32)


def script_for(start_s: float, end_s: float, spans: Sequence[dict]) -> tuple[str, bool]:
    """(what was said in [start_s, end_s], whether murmur is in it): the spans whose middle lies inside."""
    inside = [s for s in spans if start_s <= (s["start_s"] + s["end_s"]) / 2 < end_s]
    return "".join(s["text"] for s in inside if not s["murmur"]), any(s["murmur"] for s in inside)
