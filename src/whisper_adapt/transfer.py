"""Where the corpus meets labelled sets in files: import them into a corpus, export its clips in the layouts
of `labeled.py`, and load the clips of either kind for training and evaluation.

Imported clips arrive reviewed (a labelled set holds human transcripts), their audio decoded from any
rate or container to our 16 kHz mono clips, with revision origin `import:<source>`. Importing the same
set again adds nothing; a clip id that is already in the corpus with a different text is reported, and
the corpus keeps its own text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.corpus import Corpus, Recording, is_corpus, open_corpus, safe_name, writing_corpus
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.labeled import LabeledClip, labeled_set_dir, read_labeled, write_audiofolder, write_jvs
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.segment import WHISPER_WINDOW_S

EXPORT_LAYOUTS = ("jvs", "audiofolder")

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    added: int = 0
    already_present: int = 0
    failures: list[WhisperAdaptError] = field(default_factory=list)


def import_sets(corpus_dir: Path, sources: Sequence[Path], on_progress: ProgressFn = ignore) -> ImportResult:
    """Import each labelled set in `sources` into the corpus at `corpus_dir` (created if missing)."""
    result = ImportResult()
    with writing_corpus(corpus_dir) as corpus:
        for source in sources:
            try:
                clips, problems = read_clips(Path(source))
            except WhisperAdaptError as e:
                result.failures.append(e)
                continue
            result.failures += problems
            _import_clips(corpus, Path(source), clips, result, on_progress)
    return result


def read_clips(source: Path) -> tuple[list[LabeledClip], list[WhisperAdaptError]]:
    """The clips of a corpus (its reviewed ones) or of a labelled set in files, and the set's problems."""
    if is_corpus(source):
        with open_corpus(source) as other:
            return other.labeled_clips(), []
    return read_labeled(source)


def load_labeled_set(path: Path) -> list[LabeledClip]:
    """The clips of a labelled set: a corpus directory (its reviewed clips), JVS, audiofolder or text pairs.

    Problems inside the set (a bad line, a missing WAV) are logged as warnings and those clips left out;
    a path that holds no set, or none that is usable, raises WhisperAdaptError naming it.
    """
    path = labeled_set_dir(Path(path))
    if not path.exists():
        raise WhisperAdaptError("not found", path)
    clips, problems = read_clips(path)
    for problem in problems:
        logger.warning("%s", problem)
    if not clips:
        raise WhisperAdaptError("the labelled set holds no usable clips (a corpus needs reviewed clips)", path)
    return clips


def _import_clips(corpus: Corpus, source: Path, clips: list[LabeledClip], result: ImportResult,
                  on_progress: ProgressFn) -> None:
    recordings: dict[str, Recording] = {}
    origin = f"import:{source.resolve()}"
    for done, clip in enumerate(clips, start=1):
        try:
            _import_clip(corpus, source, clip, origin, recordings, result)
        except WhisperAdaptError as e:
            result.failures.append(e)
        on_progress(Progress(f"import {source.name}", done, len(clips), "clips"))


def _import_clip(corpus: Corpus, source: Path, clip: LabeledClip, origin: str,
                 recordings: dict[str, Recording], result: ImportResult) -> None:
    clip_id = safe_name(clip.clip_id)
    if corpus.has_clip(clip_id):
        existing = corpus.get_clip(clip_id)
        if existing.text != clip.text:
            raise WhisperAdaptError(f"clip id {clip_id} is already in the corpus with another text "
                                    f"({existing.text!r}); kept the corpus's", clip.audio_path)
        result.already_present += 1
        return
    samples = decode_audio(clip.audio_path)
    if len(samples) > WHISPER_WINDOW_S * SAMPLE_RATE:
        raise WhisperAdaptError(f"{len(samples) / SAMPLE_RATE:.1f} s long; Whisper takes clips of at most "
                                f"{WHISPER_WINDOW_S:g} s (cut it with `prepare` instead)", clip.audio_path)
    name = clip.recording or source.name
    if name not in recordings:
        recordings[name] = corpus.add_recording(source.resolve(), None, name=name)
    corpus.add_clip(recordings[name], clip_id, samples, text=clip.text, origin=origin, status="reviewed",
                    speaker=clip.speaker)
    result.added += 1


def export_corpus(corpus_dir: Path, out: Path, layout: str = "jvs", status: str = "reviewed",
                  group: str = "corpus") -> tuple[Path, int]:
    """Write the corpus's clips with `status` to `out` as JVS (one group) or audiofolder; returns
    the written set's directory and the number of clips."""
    if layout not in EXPORT_LAYOUTS:
        raise WhisperAdaptError(f"unknown export layout {layout!r}; choose {' or '.join(EXPORT_LAYOUTS)}")
    with open_corpus(corpus_dir) as corpus:
        clips = corpus.labeled_clips(status)
    if not clips:
        raise WhisperAdaptError(f"no {status} clips to export", corpus_dir)
    written = write_jvs(clips, out, group) if layout == "jvs" else write_audiofolder(clips, out)
    return written, len(clips)
