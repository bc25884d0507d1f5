"""The training set: reviewed clips, optionally focused on glossary terms, split by recording.

Focusing on the clips that hold a glossary term teaches the organization's words fastest, but training
on them alone makes Whisper forget everyday Japanese (DESIGN.md: everyday CER 0.12 → 0.25). Keeping a
share of general clips limits that. `general_share` is the share of the *selection* that is general
clips: 0.3 adds about 3 general clips for every 7 term clips (fewer if the corpus has fewer).

Train and validation are split by recording, never by clip: the clips of one recording share a voice,
a room and a topic, and a validation set that hears them in training would flatter the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from whisper_adapt.corpus import open_corpus
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, count_terms
from whisper_adapt.labeled import LabeledClip


@dataclass(frozen=True)
class Selection:
    train: list[LabeledClip]
    validation: list[LabeledClip]
    term_clips: int  # selected clips holding a glossary term (all of them when no glossary is given)
    general_clips: int  # selected clips holding none


def select_training(corpus_dir: Path, glossary: Glossary | None = None, general_share: float | None = None,
                    validation_share: float = 0.1, seed: int = 0) -> Selection:
    """Reviewed clips of the corpus split into train and validation by recording.

    With a glossary and `general_share`, only clips holding a term plus that share of general clips;
    without `general_share`, every reviewed clip. The same corpus, arguments and seed give the same split.
    """
    if general_share is not None and not 0 <= general_share < 1:
        raise WhisperAdaptError(f"general share must be at least 0 and below 1, got {general_share}")
    if not 0 <= validation_share < 1:
        raise WhisperAdaptError(f"validation share must be at least 0 and below 1, got {validation_share}")
    with open_corpus(corpus_dir) as corpus:
        clips = corpus.labeled_clips("reviewed")
    rng = random.Random(seed)
    chosen, term_count = _focus(clips, glossary, general_share, rng)
    train, validation = split_by_recording(chosen, validation_share, rng)
    return Selection(train, validation, term_count, len(chosen) - term_count)


def _focus(clips: list[LabeledClip], glossary: Glossary | None, general_share: float | None,
           rng: random.Random) -> tuple[list[LabeledClip], int]:
    if glossary is None:
        return clips, len(clips)
    with_term = {c.clip_id for c in clips if any(count_terms(c.text, glossary).values())}
    if general_share is None:
        return clips, len(with_term)
    general = [c.clip_id for c in clips if c.clip_id not in with_term]
    wanted = round(len(with_term) * general_share / (1 - general_share))
    kept = with_term | set(rng.sample(general, min(wanted, len(general))))
    # Keep the corpus order (recording, time) so that the output is easy to read and compare.
    return [c for c in clips if c.clip_id in kept], len(with_term)


def split_by_recording(clips: list[LabeledClip], validation_share: float,
                       rng: random.Random) -> tuple[list[LabeledClip], list[LabeledClip]]:
    """Whole recordings, in a seeded random order, go to validation until it holds about
    `validation_share` of the clips; at least one recording always stays in train."""
    by_recording: dict[str, list[LabeledClip]] = {}
    for clip in clips:
        by_recording.setdefault(clip.recording or clip.clip_id, []).append(clip)
    names = sorted(by_recording)
    rng.shuffle(names)
    target = validation_share * len(clips)
    held_out: set[str] = set()
    held = 0
    for name in names:
        size = len(by_recording[name])
        # Take a recording only if it brings validation closer to the target, and never the last one
        # that train has: too few recordings give an empty validation set rather than a leaky one.
        if abs(held + size - target) < abs(held - target) and len(held_out) < len(names) - 1:
            held_out.add(name)
            held += size
    train = [c for c in clips if (c.recording or c.clip_id) not in held_out]
    validation = [c for c in clips if (c.recording or c.clip_id) in held_out]
    return train, validation
