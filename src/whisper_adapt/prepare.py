"""`prepare`: recordings → clips cut at pauses → draft transcripts, all kept in a corpus.

Idempotent and resumable, whatever stopped the last run (Ctrl-C, kill -9, power cut):
- a recording is known by its sha256; one whose clips are all in (`complete`) is skipped;
- an incomplete one is cut again from the start with the options stored for it (cutting is
  deterministic), and the clips already in the corpus are skipped, so the rerun ends with exactly the
  clips an uninterrupted run would have made;
- each clip is one transaction (its WAV written atomically before its row); drafts are committed every
  `commit_every` clips, so a kill loses at most one batch of drafting work;
- orphan WAVs and temporary files of the killed run are swept at start.

Drafts: the chosen model transcribes each clip (≤ 30 s, one Whisper window) with word timestamps, so the
review page can show each word's probability. With a glossary its terms are given to Whisper as the
initial prompt (whisper_adapt.glossary.prompt_text), which makes it more likely to write them the
organization's way. Our guards run on the drafts as on any transcription. `redraft` re-drafts the
unreviewed clips whose text nobody has edited with another (e.g. adapted) model; every draft is kept
as a revision.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from whisper_adapt.audio import audio_duration_s, decode_audio, iter_audio_chunks
from whisper_adapt.corpus import Clip, Corpus, clip_id_for, writing_corpus
from whisper_adapt.files import file_sha256
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, prompt_text
from whisper_adapt.guards import GuardOptions
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.segment import SegmentOptions, iter_clips


@dataclass(frozen=True)
class DraftOptions:
    model: str = "base"
    language: str = "ja"
    beam_size: int = 5
    # Temperature 0 only, no fallback: drafts are deterministic (a resumed or repeated run writes the
    # same text), and fallback sampling costs up to 6 decodes on exactly the murmur a person will reject
    # anyway; our guards still collapse loops. TranscribeOptions' default list restores Whisper's fallback.
    temperatures: tuple[float, ...] = (0.0,)
    # Drafts committed together: a kill loses at most this many clips' drafting work.
    commit_every: int = 8
    device: str = "auto"
    compute_type: str = "auto"
    guards: GuardOptions = field(default_factory=GuardOptions)

    def __post_init__(self) -> None:
        if self.beam_size < 1 or self.commit_every < 1:
            raise WhisperAdaptError("beam size and commit batch must be at least 1")


@dataclass
class PrepareResult:
    clips_added: int = 0
    clips_drafted: int = 0
    recordings_added: int = 0
    recordings_skipped: list[str] = field(default_factory=list)  # already complete in the corpus
    notes: list[str] = field(default_factory=list)  # worth saying, not failures (e.g. no speech found)
    failures: list[WhisperAdaptError] = field(default_factory=list)  # recordings that could not be cut
    draft_failures: list[WhisperAdaptError] = field(default_factory=list)  # clips that could not be drafted


def prepare(recordings: Sequence[Path], corpus_dir: Path, segment: SegmentOptions = SegmentOptions(),
            draft: DraftOptions | None = DraftOptions(), glossary: Glossary | None = None, redraft: bool = False,
            on_progress: ProgressFn = ignore) -> PrepareResult:
    """Cut `recordings` into the corpus at `corpus_dir` (created if missing), then draft the clips that
    need it; each bad recording or clip is recorded in the result and the rest go on."""
    result = PrepareResult()
    with writing_corpus(corpus_dir) as corpus:
        for path in recordings:
            try:
                cut_recording(corpus, Path(path), segment, result, on_progress)
            except WhisperAdaptError as e:
                result.failures.append(e)
        if draft is not None:
            draft_clips(corpus, draft, glossary, redraft, result, on_progress)
    return result


def cut_recording(corpus: Corpus, path: Path, options: SegmentOptions, result: PrepareResult,
                  on_progress: ProgressFn = ignore) -> None:
    """Add the clips of one recording that the corpus does not have yet; mark it complete at the end."""
    total_s = audio_duration_s(path)  # also rejects non-media, empty and audio-less files up front
    sha256 = file_sha256(path)
    recording = corpus.recording_by_sha256(sha256)
    if recording is not None and recording.complete:
        result.recordings_skipped.append(str(path))
        return
    if recording is None:
        # Fail before the row exists: a row left by a file with no samples would make the fixed file `name-2`.
        next(iter_audio_chunks(path, 1.0))
        recording = corpus.add_recording(path, sha256, json.dumps(options.to_dict()))
        result.recordings_added += 1
    # A resumed recording is cut exactly as it was first cut, whatever options this run was given.
    options = SegmentOptions(**json.loads(recording.segment_options))
    clips, decoded_s, added = 0, 0.0, 0

    def progress(event: Progress) -> None:
        nonlocal decoded_s
        decoded_s = event.done
        on_progress(replace(event, total=max(total_s, decoded_s), note=f"{clips} clips"))

    for clip in iter_clips(path, options, progress):
        clips += 1
        added += corpus.add_clip(recording, clip_id_for(recording, clip.start_s), clip.samples,
                                 clip.start_s, clip.end_s)
    corpus.mark_complete(recording.id, decoded_s)
    result.clips_added += added
    if clips == 0:
        result.notes.append(f"{path}: no speech found; no clips")


def draft_clips(corpus: Corpus, options: DraftOptions, glossary: Glossary | None, redraft: bool,
                result: PrepareResult, on_progress: ProgressFn = ignore) -> None:
    """Draft the clips that need it, committing every `commit_every` clips."""
    label = model_label(options.model)
    pending = clips_to_draft(corpus, label, redraft)
    if not pending:
        return
    from whisper_adapt.transcribe import load_model

    model = load_model(options.model, options.device, options.compute_type)
    batch: list = []
    total_s, done_s = sum(clip.duration_s for clip in pending), 0.0
    for done, clip in enumerate(pending, start=1):
        try:
            batch.append(draft_one(model, clip, options, glossary))
        except WhisperAdaptError as e:
            result.draft_failures.append(e)
        if len(batch) >= options.commit_every or done == len(pending):
            result.clips_drafted += corpus.set_drafts(batch, label)
            batch = []
        done_s += clip.duration_s
        on_progress(Progress("draft", done_s, total_s, "s", f"{done}/{len(pending)} clips"))


def clips_to_draft(corpus: Corpus, label: str, redraft: bool) -> list[Clip]:
    """Undrafted clips; with `redraft`, also unreviewed ones drafted by another model whose text is
    still a draft (a clip someone typed into is never redrafted)."""
    if not redraft:
        return corpus.clips(status="draft", drafted=False)
    return [clip for clip in corpus.clips(status="draft")
            if clip.draft_model != label and clip.text_origin.startswith(("prepare", "draft:"))]


def draft_one(model, clip: Clip, options: DraftOptions, glossary: Glossary | None) -> tuple:
    """(clip id, text, words) drafted by `model` for one clip."""
    from whisper_adapt.transcribe import TranscribeOptions, transcribe_audio

    settings = TranscribeOptions(
        language=options.language, beam_size=options.beam_size, temperatures=options.temperatures, word_timestamps=True,
        # The clip is speech already cut out by VAD: a second VAD pass would only shift word times.
        vad=False, initial_prompt=prompt_text(glossary) if glossary else None, guards=options.guards,
    )
    transcript = transcribe_audio(model, decode_audio(clip.audio_path), settings, str(clip.audio_path))
    words = [word for segment in transcript.segments for word in segment.words]
    return clip.id, transcript.text, words


def model_label(spec: str) -> str:
    """How a model is named in revisions: the spec, or the absolute path of a local model."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec
