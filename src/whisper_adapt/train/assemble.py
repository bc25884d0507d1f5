"""Which clips a training run sees: the organization's clips, replay of general speech, and held-out sets.

- Training clips are the reviewed clips that hold a glossary term (clips without one teach nothing new and
  dilute the signal — the recipe that worked dropped them), plus replay: general clips, `replay_share` of
  of the training set, so the decoder keeps seeing everyday Japanese while it learns the new words.
- Validation clips are held out by recording, so no recording leaks into both sets.
- General held-out clips (never replayed) measure forgetting every epoch; `wide_check` more, drawn from what
  the replay left over, widen that check once at the end for the averaged weights (train/trainer.py). They
  come from the general Japanese set shipped with the package (or --general), not from the user's clips:
  those share the training's speakers and rooms, so they get easier as the model adapts to them and hide what
  it forgets (on the benchmark's hospital ward, a check drawn from them fell 3.3 points while everyday speech
  rose 1.2).
Replay is drawn at random from the rest of that set; with `replay_own`, the user's reviewed clips without a
glossary term are drawn alongside it. A run draws `replay_rotation` epochs' worth of replay clips and each
epoch trains on a fresh draw from them, so the decoder meets more of everyday Japanese at the same cost a step.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, count_terms
from whisper_adapt.labeled import LabeledClip, read_audiofolder
from whisper_adapt.resources import general_set_folder
from whisper_adapt.selection import split_by_recording
from whisper_adapt.train.soundalike import most_alike, sound_alike_scores


@dataclass(frozen=True)
class TrainData:
    train: list[LabeledClip]
    validation: list[LabeledClip] = field(default_factory=list)  # held-out clips like the training ones
    general: list[LabeledClip] = field(default_factory=list)  # held-out everyday speech: the forgetting check
    # More held-out everyday speech, read once at the end with `general` to judge the averaged weights.
    wide_check: list[LabeledClip] = field(default_factory=list)
    description: dict = field(default_factory=dict)  # hashes and counts recorded in adapter.json
    replay: list[LabeledClip] = field(default_factory=list)  # general speech trained on beside `train`
    replay_per_epoch: int | None = None  # replay clips drawn from `replay` each epoch; None: all of them
    # Acoustic variants (train/variants.py): a `train` clip's id → the same words as heard in other rooms;
    # each epoch trains on one of them beside the clean clip.
    variants: dict[str, tuple[LabeledClip, ...]] = field(default_factory=dict)
    nonspeech: list[LabeledClip] = field(default_factory=list)  # clips where nobody speaks: the no-speech target
    nonspeech_per_epoch: int = 0
    nonspeech_check: list[LabeledClip] = field(default_factory=list)  # held out: what the model invents there


@dataclass(frozen=True)
class AssembleOptions:
    terms_only: bool = True
    # Share of the training set that is replayed general speech. 0.5, not 0.3: with self-distillation,
    # ホシミ精機's everyday CER change went from +2.1 points (0.3) to -0.3 (0.5) (bench/recipes.py).
    replay_share: float = 0.5
    validation_share: float = 0.15  # of the organization's recordings (at least one when there are two)
    # General clips held out to measure forgetting: 40 clips hold ~700 characters, so the 0.5-point budget
    # is ~3 characters rather than the single character it was with 10.
    general_validation: int = 40
    # Further general clips (distinct sentences, none replayed) that join those 40 to judge the averaged weights
    # once at the end: 200 clips (~3,500 characters) decide what ships, where 40 moved by a point by chance.
    wide_check: int = 160
    # Share of the replay drawn from general clips that sound like the terms (train/soundalike.py); the rest
    # is drawn at random. Off by default: on both benchmark companies 0.5 did no better than random replay
    # (bench/recipes.py, recipe sound-alike-0.5).
    sound_alike_share: float = 0.0
    # Also replay the user's reviewed clips that hold no term. Off by default: on both benchmark companies
    # they protected everyday speech less than the general set alone (bench/recipes.py, own-replay*: the
    # hospital ward +1.3 points over three seeds against +0.9, ホシミ精機 +2.0 against +0.8): they teach the
    # organization's voices and topics, not everyday Japanese.
    replay_own: bool = False
    # Distinct replay clips of a run, in epochs' worth: each epoch trains on a fresh draw of one epoch's
    # replay from them (train/trainer.py); 1 replays the same clips every epoch. With 4, ホシミ精機's everyday
    # CER moved -1.6/-0.7/-0.2 points over three seeds against +0.7 with 1 (bench/recipes.py).
    replay_rotation: int = 4
    # Examples each training clip gives an epoch: 2 when it is also trained as one of its acoustic variants
    # (train/variants.py), so that the replay keeps its share of the epoch.
    examples_per_clip: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.replay_share < 1 or not 0 <= self.validation_share < 1:
            raise WhisperAdaptError("replay share and validation share must be at least 0 and below 1")
        if not 0 <= self.sound_alike_share <= 1:
            raise WhisperAdaptError("the sound-alike share must be between 0 and 1")
        if self.general_validation < 0 or self.wide_check < 0:
            raise WhisperAdaptError("the held-out general clips cannot be fewer than 0")
        if self.replay_rotation < 1 or self.examples_per_clip < 1:
            raise WhisperAdaptError("the replay rotation and the examples per clip must be at least 1")


def shipped_general_set() -> list[LabeledClip]:
    """About 1,170 everyday, office and news-style sentences in four synthetic voices, free of any company's
    words (scripts/general_ja.txt)."""
    clips, problems = read_audiofolder(general_set_folder())
    if problems or not clips:
        raise WhisperAdaptError(f"the packaged general set is damaged: {problems[:1]}")
    return clips


def shipped_readings() -> dict[str, str]:
    """Audio file name → katakana reading of the packaged general set's sentences."""
    with open(general_set_folder() / "metadata.csv", encoding="utf-8", newline="") as f:
        return {row["file_name"]: row["reading"] for row in csv.DictReader(f) if row.get("reading")}


def has_term(clip: LabeledClip, glossary: Glossary) -> bool:
    return any(count_terms(clip.text, glossary).values())


def assemble(clips: Sequence[LabeledClip], glossary: Glossary | None, options: AssembleOptions = AssembleOptions(),
             general: Sequence[LabeledClip] | None = None) -> TrainData:
    """The training run's three sets; `general` (default: the shipped set) is held out and replayed."""
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
    general_set = list(general) if general is not None else shipped_general_set()
    general_held, rest = _hold_out_sentences(general_set, options.general_validation, rng)
    held_texts = {c.text for c in general_held}
    # With --all-clips the term-free clips are trained on: they cannot also be general speech.
    replay_own = options.replay_own and options.terms_only
    own_general = [c for c in term_free if c.text not in held_texts] if replay_own else []
    # Own clips are drawn as often as general ones, not first: replaying mostly the organization's own talk
    # protected everyday speech still less (the hospital ward of bench/recipes.py: everyday +1.7 points, and
    # with another seed no epoch within budget).
    candidates = list(rest)
    for clip in own_general:  # random places rather than a reshuffle: with no own clips the draw is unchanged
        candidates.insert(rng.randrange(len(candidates) + 1), clip)
    wanted = round(len(train) * options.examples_per_clip * options.replay_share / (1 - options.replay_share))
    replay = _draw_replay(candidates, wanted * options.replay_rotation, glossary, options.sound_alike_share)
    replayed_texts = {c.text for c in replay}
    wide_check = _one_clip_per_sentence([c for c in rest if c.text not in replayed_texts])[: options.wide_check]
    own_ids = {c.clip_id for c in own_general}
    own_replayed = sum(c.clip_id in own_ids for c in replay)
    per_epoch = min(wanted, len(replay))
    description = {
        "train_clips": len(train), "replay_clips": per_epoch, "replay_pool": len(replay),
        "replay_rotation": options.replay_rotation, "validation_clips": len(validation),
        "general_clips": len(general_held), "wide_check_clips": len(wide_check), "terms_only": options.terms_only,
        "replay_share": options.replay_share, "replay_own": replay_own,
        "replay_source": {"own_term_free": own_replayed,
                          "general_set" if general is not None else "packaged": len(replay) - own_replayed},
        "sound_alike_share": options.sound_alike_share,
        "data_sha256": _clips_hash(train + replay + validation),
        "glossary_sha256": _glossary_hash(glossary),
    }
    return TrainData(train, validation, general_held, wide_check, description, replay=replay,
                     replay_per_epoch=per_epoch)


def _hold_out_sentences(clips: Sequence[LabeledClip], wanted: int,
                        rng: random.Random) -> tuple[list[LabeledClip], list[LabeledClip]]:
    """(`wanted` clips of distinct sentences held out for the forgetting check, the clips of every other
    sentence), shuffled. A held-out sentence is replayed in no voice, and a small set keeps at least half
    its sentences for replay."""
    clips = list(clips)
    rng.shuffle(clips)
    sentences = _one_clip_per_sentence(clips)
    held = sentences[: min(wanted, len(sentences) // 2)]
    held_texts = {c.text for c in held}
    return held, [c for c in clips if c.text not in held_texts]


def _one_clip_per_sentence(pool: Sequence[LabeledClip]) -> list[LabeledClip]:
    """The first clip of each sentence, in the pool's order: held-out clips should be distinct sentences."""
    first_of_sentence: dict[str, LabeledClip] = {}
    for clip in pool:
        first_of_sentence.setdefault(clip.text, clip)
    return list(first_of_sentence.values())


def _draw_replay(candidates: Sequence[LabeledClip], wanted: int, glossary: Glossary | None,
                 sound_alike_share: float) -> list[LabeledClip]:
    """`wanted` clips: the share that sounds most like the glossary first, then the others in their (shuffled)
    order. Only clips with a known reading (the packaged set) can be chosen as sound-alikes."""
    alike: list[str] = []
    if glossary is not None and sound_alike_share > 0:
        readings = shipped_readings()
        known = {c.clip_id: readings[c.audio_path.name] for c in candidates if c.audio_path.name in readings}
        alike = most_alike(list(known), sound_alike_scores(known, glossary), round(wanted * sound_alike_share))
    by_id = {c.clip_id: c for c in candidates}
    chosen = set(alike)
    return [by_id[i] for i in alike] + [c for c in candidates if c.clip_id not in chosen][: wanted - len(alike)]


def _clips_hash(clips: Sequence[LabeledClip]) -> str:
    digest = hashlib.sha256()
    for clip in sorted(clips, key=lambda c: c.clip_id):
        digest.update(f"{clip.clip_id}\t{clip.text}\t{clip.audio_path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _glossary_hash(glossary: Glossary | None) -> str | None:
    if glossary is None:
        return None
    return hashlib.sha256(repr(glossary.terms).encode()).hexdigest()
