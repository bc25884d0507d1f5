"""Naming speakers, offline: a names file that maps labels to names after the fact, and reference
recordings (one per person, the file named after them) matched against each speaker's voice.

A voice is the mean of CAM++ embeddings of the speech in a recording; a speaker takes the name of the
reference voice most like its own when their cosine similarity reaches `min_similarity` — each name at
most once, the pairing that is most alike overall (Hungarian assignment) — and stays `S<n>` otherwise.
Voices never leave this process: they are computed here and compared here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from whisper_adapt.audio import decode_audio
from whisper_adapt.errors import AudioError, WhisperAdaptError

# Measured on CAM++ with the packaged voices (bench/speakers.py): one person's recordings are ≥ 0.75
# alike, two different people ≤ 0.6.
DEFAULT_MIN_SIMILARITY = 0.65
_NAME_LINE = re.compile(r"^\s*(S\d+)\s*[:：\t]\s*(.*?)\s*$")


def read_speaker_names(path: str | Path) -> dict[str, str]:
    """`S1: 田中` lines (a colon, full-width colon or tab between) as label → name; `#` starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperAdaptError(f"cannot read the speaker names ({e})", path) from e
    names: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _NAME_LINE.match(line)
        if not match or not match.group(2):
            raise WhisperAdaptError(f"line {number}: expected a label and a name, such as 'S1: 田中', not {line!r}",
                                    path)
        label, name = match.groups()
        if label in names:
            raise WhisperAdaptError(f"line {number}: {label} is named twice", path)
        names[label] = name
    return names


def load_voices(directory: str | Path, embed) -> dict[str, np.ndarray]:
    """name → unit voice vector for each recording in `directory` (file name without extension = the
    person's name; hidden files are skipped). `embed(audio)` gives the unit embeddings of its speech."""
    folder = Path(directory)
    if not folder.is_dir():
        raise WhisperAdaptError("the voices folder does not exist or is not a folder", folder)
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise WhisperAdaptError("the voices folder holds no recordings (one per person, named after them)", folder)
    by_name: dict[str, Path] = {}
    for path in files:
        if path.stem in by_name:
            raise WhisperAdaptError(f"two recordings for {path.stem!r}: {by_name[path.stem].name} and {path.name}; "
                                    "keep one per person", folder)
        by_name[path.stem] = path
    return {name: _voice(path, embed) for name, path in by_name.items()}


def _voice(path: Path, embed) -> np.ndarray:
    if not path.is_file():
        raise WhisperAdaptError("not a recording (the voices folder holds one audio file per person)", path)
    try:
        audio = decode_audio(path)
    except AudioError as e:
        raise WhisperAdaptError(f"not a recording the voices can be taken from: {e.problem}", path) from e
    embeddings = embed(audio)
    if len(embeddings) == 0:
        raise WhisperAdaptError("no speech heard in this reference recording", path)
    mean = embeddings.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def match_voices(speakers: Mapping[str, np.ndarray], voices: Mapping[str, np.ndarray],
                 min_similarity: float = DEFAULT_MIN_SIMILARITY) -> dict[str, str]:
    """label → name for the speakers whose voice matches a reference voice closely enough; the pairing is
    the one with the highest total similarity, each name used at most once."""
    from scipy.optimize import linear_sum_assignment

    if not speakers or not voices:
        return {}
    labels, names = list(speakers), list(voices)
    similarity = np.stack([speakers[label] for label in labels]) @ np.stack([voices[n] for n in names]).T
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return {labels[r]: names[c] for r, c in zip(rows, columns) if similarity[r, c] >= min_similarity}
