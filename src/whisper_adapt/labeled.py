"""Labelled audio sets kept in plain files: the JVS layout, Hugging Face `audiofolder`, and text pairs.

The readers never raise on bad content: each returns the clips it could read and one `WhisperAdaptError`
per problem (a malformed line, a missing WAV, a duplicate id …), so a batch can go on and report them all.
They do not decode audio; whoever uses a clip decodes it (any rate, any container) with `audio.py`.

Clip ids must be unique within a set. JVS repeats the same ids for every speaker, so a group found below
the root is prefixed with its path (`jvs001/parallel100/VOICEACTRESS100_001` becomes
`jvs001-parallel100-VOICEACTRESS100_001`); a group at the root keeps its ids as they are, which is what
makes `read_jvs(write_jvs(clips, out, "g") / "g")` give back the same ids.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.files import write_text_atomically

JVS_TRANSCRIPTS = "transcripts_utf8.txt"
# Real JVS keeps 24 kHz WAVs in wav24kHz16bit/; we write 16 kHz clips, so our exports use wav/.
JVS_WAV_DIRS = ("wav24kHz16bit", "wav")
AUDIOFOLDER_METADATA = "metadata.csv"
# The transcript column's name differs between audiofolder datasets; the first one present is used.
TEXT_COLUMNS = ("transcription", "text", "sentence")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus")


Problems = list[WhisperAdaptError]


@dataclass(frozen=True)
class LabeledClip:
    clip_id: str
    audio_path: Path  # absolute
    text: str
    recording: str = ""  # source recording id/name: train/validation split by recording
    speaker: str = ""


def read_jvs(root: Path) -> tuple[list[LabeledClip], Problems]:
    """Every `transcripts_utf8.txt` group at or below `root`, with its WAVs (see module doc for ids)."""
    root = Path(root).resolve()
    clips: list[LabeledClip] = []
    problems: Problems = []
    for transcripts in sorted(root.rglob(JVS_TRANSCRIPTS)):
        group = transcripts.parent
        relative = group.relative_to(root).parts
        prefix = "-".join(relative) + "-" if relative else ""
        recording = "/".join(relative) or root.name
        speaker = relative[0] if relative else ""
        found, group_problems = _read_jvs_group(transcripts, prefix, recording, speaker)
        clips += found
        problems += group_problems
    return _drop_duplicates(clips, problems)


def _read_jvs_group(transcripts: Path, prefix: str, recording: str, speaker: str) -> tuple[list[LabeledClip], Problems]:
    wav_dir = next((transcripts.parent / d for d in JVS_WAV_DIRS if (transcripts.parent / d).is_dir()), None)
    if wav_dir is None:
        return [], [WhisperAdaptError(f"no WAV folder beside it (expected {' or '.join(JVS_WAV_DIRS)}/)", transcripts)]
    clips, problems = [], []
    for number, line in _numbered_lines(transcripts, problems):
        clip_id, sep, text = line.partition(":")
        clip_id, text = clip_id.strip(), text.strip()
        where = f"{transcripts}:{number}"
        if not sep:
            problems.append(WhisperAdaptError("expected clip_id:text (no colon on the line)", where))
        elif not clip_id or not text:
            problems.append(WhisperAdaptError("empty clip id or empty text", where))
        elif not _inside(wav_dir / f"{clip_id}.wav", wav_dir) or "/" in clip_id or "\\" in clip_id:
            problems.append(WhisperAdaptError(f"clip id {clip_id!r} is a path, not a name in {wav_dir}", where))
        elif not (wav_dir / f"{clip_id}.wav").is_file():
            problems.append(WhisperAdaptError(f"unknown clip id {clip_id!r}: no {clip_id}.wav in {wav_dir}", where))
        else:
            clips.append(LabeledClip(prefix + clip_id, (wav_dir / f"{clip_id}.wav").resolve(), text, recording, speaker))
    return clips, problems


def _numbered_lines(path: Path, problems: Problems) -> Iterable[tuple[int, str]]:
    """Non-blank lines of a text file with their 1-based numbers; a line that is not UTF-8 is a problem
    of its own, so one bad byte does not cost the rest of the file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.append(WhisperAdaptError(f"cannot read the file: {e.strerror}", path))
        return
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            problems.append(WhisperAdaptError("not UTF-8 text (save the file as UTF-8)", f"{path}:{number}"))
            continue
        if text.strip():
            yield number, text


def read_audiofolder(root: Path) -> tuple[list[LabeledClip], Problems]:
    """Every `metadata.csv` at or below `root` (one per split folder is allowed), with `file_name` and a
    transcript column; optional `clip_id`, `recording` and `speaker` columns are kept."""
    root = Path(root).resolve()
    clips: list[LabeledClip] = []
    problems: Problems = []
    for metadata in sorted(root.rglob(AUDIOFOLDER_METADATA)):
        try:
            with open(metadata, encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            problems.append(WhisperAdaptError(f"cannot read as UTF-8 CSV ({e})", metadata))
            continue
        found, file_problems = _audiofolder_rows(metadata, rows, root)
        clips += found
        problems += file_problems
    return _drop_duplicates(clips, problems)


def _audiofolder_rows(metadata: Path, rows: list[dict], root: Path) -> tuple[list[LabeledClip], Problems]:
    columns = set(rows[0]) if rows else set()
    text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
    if "file_name" not in columns or text_column is None:
        problem = f"needs a file_name column and one of {', '.join(TEXT_COLUMNS)} (has: {', '.join(sorted(columns)) or 'no rows'})"
        return [], [WhisperAdaptError(problem, metadata)]
    clips, problems = [], []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{metadata}:{number}"
        name, text = (row.get("file_name") or "").strip(), (row.get(text_column) or "").strip()
        audio = Path(os.path.normpath(metadata.parent / name))
        if not name or not text:
            problems.append(WhisperAdaptError("empty file_name or transcript", where))
        elif not _inside(audio, root):
            problems.append(WhisperAdaptError(f"file_name {name!r} points outside the set's folder {root}", where))
        elif not audio.is_file():
            problems.append(WhisperAdaptError(f"missing audio file {name}", where))
        else:
            default_id = _path_id(audio.relative_to(root))
            clip_id = (row.get("clip_id") or "").strip() or default_id
            recording = (row.get("recording") or "").strip() or metadata.parent.name
            clips.append(LabeledClip(clip_id, audio, text, recording, (row.get("speaker") or "").strip()))
    return clips, problems


def read_text_pairs(root: Path) -> tuple[list[LabeledClip], Problems]:
    """`name.wav` (or another audio suffix) beside `name.txt`, anywhere below `root`."""
    root = Path(root).resolve()
    clips, problems = [], []
    audio_files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    for audio in audio_files:
        transcript = audio.with_suffix(".txt")
        if not transcript.is_file():
            problems.append(WhisperAdaptError(f"no transcript {transcript.name} beside it", audio))
            continue
        lines = [line for _, line in _numbered_lines(transcript, problems)]
        if not lines:
            problems.append(WhisperAdaptError("empty transcript (or not UTF-8)", transcript))
            continue
        relative = audio.relative_to(root)
        recording = "/".join(relative.parent.parts) or root.name
        clips.append(LabeledClip(_path_id(relative), audio, " ".join(s.strip() for s in lines), recording))
    for transcript in sorted(root.rglob("*.txt")):
        if not any(transcript.with_suffix(s).is_file() for s in AUDIO_SUFFIXES):
            problems.append(WhisperAdaptError("transcript without an audio file of the same name", transcript))
    return _drop_duplicates(clips, problems)


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, its '..' worked out, lies in `folder`: a set's index names only the set's own files.
    (Lexically: a link the owner put inside the set is theirs to follow.)"""
    return Path(os.path.normpath(path)).is_relative_to(os.path.normpath(folder))


def _path_id(relative: Path) -> str:
    return "-".join(relative.with_suffix("").parts)


def _drop_duplicates(clips: list[LabeledClip], problems: Problems) -> tuple[list[LabeledClip], Problems]:
    """Keep the first clip of each id; a later one is a problem naming both files."""
    kept: dict[str, LabeledClip] = {}
    for clip in clips:
        first = kept.setdefault(clip.clip_id, clip)
        if first is not clip:
            problems.append(WhisperAdaptError(f"duplicate clip id {clip.clip_id!r} (first: {first.audio_path})", clip.audio_path))
    return list(kept.values()), problems


def write_jvs(clips: Sequence[LabeledClip], root: Path, group: str = "corpus") -> Path:
    """Write `clips` as one JVS group `root/group` (transcripts_utf8.txt + wav/ of 16 kHz WAVs); returns it.

    The layout holds only ids, texts and audio: recording and speaker are lost (audiofolder keeps them)."""
    if group in ("", ".", "..") or "/" in group or "\\" in group:
        raise WhisperAdaptError(f"the JVS group {group!r} must be a plain folder name: it is made inside {root}")
    group_dir = Path(root) / group
    for clip in clips:
        _check_writable(clip, forbidden=":")
    wav_dir = group_dir / "wav"
    _write_clip_audio(clips, wav_dir, lambda clip: wav_dir / f"{clip.clip_id}.wav")
    lines = "".join(f"{clip.clip_id}:{clip.text}\n" for clip in clips)
    write_text_atomically(group_dir / JVS_TRANSCRIPTS, lines)
    return group_dir


def write_audiofolder(clips: Sequence[LabeledClip], root: Path) -> Path:
    """Write `clips` as a Hugging Face audiofolder (metadata.csv + audio/*.wav, 16 kHz) loadable with
    `datasets.load_dataset("audiofolder", data_dir=root)`; recording and speaker ride along as columns."""
    root = Path(root)
    for clip in clips:
        _check_writable(clip, forbidden="")
    _write_clip_audio(clips, root / "audio", lambda clip: root / "audio" / f"{clip.clip_id}.wav")
    write_audiofolder_metadata(root, ["file_name", "transcription", "clip_id", "recording", "speaker"],
                               [[f"audio/{c.clip_id}.wav", c.text, c.clip_id, c.recording, c.speaker] for c in clips])
    return root


def write_audiofolder_metadata(root: Path, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """An audiofolder's metadata.csv (first column `file_name`, relative to `root`), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    write_text_atomically(Path(root) / AUDIOFOLDER_METADATA, buffer.getvalue())


def _check_writable(clip: LabeledClip, forbidden: str) -> None:
    bad = set(forbidden) | {"/", "\\", "\n", "\r"}
    if not clip.clip_id or clip.clip_id.startswith(".") or bad & set(clip.clip_id):
        raise WhisperAdaptError(f"clip id {clip.clip_id!r} cannot be used as a file name in this layout", clip.audio_path)
    if "\n" in clip.text or "\r" in clip.text:
        raise WhisperAdaptError(f"clip {clip.clip_id}: the text has a line break, which the layout cannot hold", clip.audio_path)


def _write_clip_audio(clips: Sequence[LabeledClip], folder: Path, target) -> None:
    from whisper_adapt.audio import decode_audio, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        write_wav(target(clip), decode_audio(clip.audio_path))


def detect_layout(path: Path) -> str | None:
    """'jvs', 'audiofolder', 'text-pairs', or None: which layout of labelled set in files `path` holds."""
    if any(path.rglob(JVS_TRANSCRIPTS)):
        return "jvs"
    if any(path.rglob(AUDIOFOLDER_METADATA)):
        return "audiofolder"
    if any(path.rglob("*.txt")):
        return "text-pairs"
    return None


READERS = {"jvs": read_jvs, "audiofolder": read_audiofolder, "text-pairs": read_text_pairs}


def read_labeled(path: Path) -> tuple[list[LabeledClip], Problems]:
    """Clips and problems of a JVS, audiofolder or text-pairs set, whichever `path` holds."""
    path = labeled_set_dir(Path(path))
    layout = detect_layout(path) if path.is_dir() else None
    if layout not in READERS:
        raise WhisperAdaptError("not a labelled set (expected a JVS transcripts_utf8.txt, an audiofolder "
                                "metadata.csv, or name.wav + name.txt pairs)", path)
    return READERS[layout](path)


def labeled_set_dir(path: Path) -> Path:
    """The set's directory, given either it or its index file (transcripts_utf8.txt, metadata.csv)."""
    if path.is_file() and path.name in (JVS_TRANSCRIPTS, AUDIOFOLDER_METADATA):
        return path.parent
    return path
