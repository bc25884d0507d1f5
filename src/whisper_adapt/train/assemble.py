"""Which clips a training run sees: the organization's clips, replay of general speech, and held-out sets.

- Training clips are the reviewed clips that hold a glossary term (clips without one teach nothing new and
  dilute the signal — the recipe that worked dropped them), plus replay: general clips, `replay_share` of
  of the training set, so the decoder keeps seeing everyday Japanese while it learns the new words.
- Validation clips are held out by recording, so no recording leaks into both sets.
- General held-out clips (never replayed) measure forgetting every epoch.
General clips come from the user's own reviewed clips without glossary terms when there are enough, topped
up from the general Japanese set shipped with the package.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, count_terms
from whisper_adapt.labeled import LabeledClip, read_audiofolder
from whisper_adapt.selection import split_by_recording
from whisper_adapt.train.trainer import TrainData


@dataclass(frozen=True)
class AssembleOptions:
    terms_only: bool = True
    replay_share: float = 0.3  # share of the training set that is replayed general speech
    validation_share: float = 0.15  # of the organization's recordings (at least one when there are two)
    general_validation: int = 10  # general clips held out to measure forgetting
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.replay_share < 1 or not 0 <= self.validation_share < 1:
            raise WhisperAdaptError("replay share and validation share must be at least 0 and below 1")


def shipped_general_set() -> list[LabeledClip]:
    """48 everyday and office sentences in four synthetic voices, free of any company's words."""
    clips, problems = read_audiofolder(Path(str(resources.files("whisper_adapt") / "data" / "general_ja")))
    if problems or not clips:
        raise WhisperAdaptError(f"the packaged general set is damaged: {problems[:1]}")
    return clips


def has_term(clip: LabeledClip, glossary: Glossary) -> bool:
    return any(count_terms(clip.text, glossary).values())


def assemble(clips: Sequence[LabeledClip], glossary: Glossary | None, options: AssembleOptions = AssembleOptions(),
             general: Sequence[LabeledClip] | None = None) -> TrainData:
    """The training run's three sets; `general` defaults to the user's term-free clips + the shipped set."""
    with_terms = [c for c in clips if glossary is None or has_term(c, glossary)]
    term_free = [c for c in clips if glossary is not None and not has_term(c, glossary)]
    organization = with_terms if options.terms_only else list(clips)
    if not organization:
        raise WhisperAdaptError("no reviewed clip holds a glossary term: nothing to adapt to")
    rng = random.Random(options.seed)
    if len({c.recording for c in organization}) == 1:
        # One recording (or a set without recording names, e.g. synthesized clips): clips are the units.
        organization = [replace(c, recording=c.clip_id) for c in organization]
    train, validation = split_by_recording(organization, options.validation_share, rng)
    shipped = [] if general is not None else shipped_general_set()
    pool = list(general) if general is not None else term_free + shipped
    rng.shuffle(pool)
    general_held = pool[: options.general_validation]
    wanted = round(len(train) * options.replay_share / (1 - options.replay_share))
    replay = pool[options.general_validation :][:wanted]
    description = {
        "train_clips": len(train), "replay_clips": len(replay), "validation_clips": len(validation),
        "general_clips": len(general_held), "terms_only": options.terms_only,
        "replay_share": options.replay_share, "replay_source": _replay_source(replay, shipped, general is not None),
        "data_sha256": _clips_hash(train + replay + validation),
        "glossary_sha256": _glossary_hash(glossary),
    }
    return TrainData(train + replay, validation, general_held, description)


def _replay_source(replay: Sequence[LabeledClip], shipped: Sequence[LabeledClip], given: bool) -> dict:
    """How many replayed clips came from where: the --general set, or the user's term-free clips and the
    packaged general set."""
    if given:
        return {"general_set": len(replay)}
    packaged = {clip.clip_id for clip in shipped}
    from_package = sum(clip.clip_id in packaged for clip in replay)
    return {"own_term_free": len(replay) - from_package, "packaged": from_package}


def _clips_hash(clips: Sequence[LabeledClip]) -> str:
    digest = hashlib.sha256()
    for clip in sorted(clips, key=lambda c: c.clip_id):
        digest.update(f"{clip.clip_id}\t{clip.text}\t{clip.audio_path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _glossary_hash(glossary: Glossary | None) -> str | None:
    if glossary is None:
        return None
    return hashlib.sha256(repr(glossary.terms).encode()).hexdigest()
