"""The meeting room in the training data: acoustic variants of the clips and clips where nobody speaks.

An adapter trained on clean clips in a few voices lost its words in a reverberant room with other voices
(term recall 0.95 → 0.34) and, on murmur, invented text where the unadapted model wrote nothing. So before
training, every organization clip gets `variants` renderings through chains drawn by augment.py, half of the
replayed general clips are heard through one (in place: no extra cost a step), and a pool of non-speech clips
(room noise, murmur, typing, tones, near-silence) is made to be trained on Whisper's no-speech answer, with a
held-out few to measure what the model invents there each epoch.

Everything is rendered into the run directory (`variants/`, 16 kHz WAV, listenable) once, decided by the
seed alone: a rerun or `--resume` finds the files and renders nothing, and the encoder cache, keyed by a
file's content, reuses their encodings. `variants/variants.json` lists every file with its chain.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from whisper_adapt.audio import decode_audio, write_wav
from whisper_adapt.augment import AugmentOptions, clip_rng, colored_noise, describe, draw_chain, render
from whisper_adapt.nonspeech import KINDS as NONSPEECH_KINDS
from whisper_adapt.nonspeech import murmur, nonspeech
from whisper_adapt.labeled import LabeledClip
from whisper_adapt.progress import ProgressFn, counter, ignore
from whisper_adapt.train.assemble import TrainData

NONSPEECH_CHECK_PER_KIND = 2
# Interference for non-speech clips: never babble, which would be speech; the room and the line only.
_NONSPEECH_CHAIN = dict(noise_p=0.0, speed_p=0.0)


def add_acoustics(data: TrainData, options: AugmentOptions, run_dir: Path, seed: int,
                  on_progress: ProgressFn = ignore) -> TrainData:
    """`data` with variants of its training clips, its replay partly augmented, and non-speech clips;
    `on_progress` counts the files."""
    folder = run_dir / "variants"
    folder.mkdir(parents=True, exist_ok=True)
    own_per_epoch = len(data.train) * (2 if options.variants else 1)
    replay_per_epoch = data.replay_per_epoch if data.replay_per_epoch is not None else len(data.replay)
    per_epoch = round((own_per_epoch + replay_per_epoch) * options.nonspeech_share / (1 - options.nonspeech_share))
    nonspeech_count = per_epoch * data.description.get("replay_rotation", 1)
    check_count = len(NONSPEECH_KINDS) * NONSPEECH_CHECK_PER_KIND if per_epoch else 0
    total = len(data.train) * options.variants + len(data.replay) + nonspeech_count + check_count
    # Everyday speech none of which is in the checks: the other talkers of babble and murmur.
    renderer = _Renderer(folder, options, seed, {clip.clip_id: clip for clip in data.replay},
                         counter(on_progress, "rendering room variants", total, "clips"))
    variants = {clip.clip_id: tuple(renderer.variant(clip, k) for k in range(options.variants))
                for clip in data.train} if options.variants else {}
    replay = [renderer.replayed(clip) for clip in data.replay]
    nonspeech = [renderer.nonspeech("train", i) for i in range(nonspeech_count)]
    check = [renderer.nonspeech("check", i) for i in range(check_count)]
    renderer.write_manifest()
    description = dict(data.description, augment={
        **asdict(options), "variant_clips": sum(len(v) for v in variants.values()),
        "replay_augmented_clips": sum(c.audio_path.parent == folder for c in replay),
        "nonspeech_clips": len(nonspeech), "nonspeech_per_epoch": per_epoch, "nonspeech_check_clips": len(check),
        "effects": renderer.effect_counts(), "manifest": str(folder / "variants.json")})
    return replace(data, replay=replay, variants=variants, nonspeech=nonspeech, nonspeech_per_epoch=per_epoch,
                   nonspeech_check=check, description=description)


class _Renderer:
    """Renders (or finds, when a run is repeated) the run's files and remembers what each one is."""

    def __init__(self, folder: Path, options: AugmentOptions, seed: int, babble: dict[str, LabeledClip],
                 count: Callable[[], None]):
        self.folder, self.options, self.seed, self.babble, self.count = folder, options, seed, babble, count
        self.manifest: dict[str, dict] = {}

    def variant(self, clip: LabeledClip, index: int) -> LabeledClip:
        rng = clip_rng(self.seed, "variant", clip.clip_id, index)
        chain = draw_chain(rng, self.options, self._babble_for(clip))
        path = self._render(f"{_stem(clip.clip_id)}-v{index}", clip, chain)
        return replace(clip, clip_id=f"{clip.clip_id}#v{index}", audio_path=path)

    def replayed(self, clip: LabeledClip) -> LabeledClip:
        rng = clip_rng(self.seed, "replay", clip.clip_id)
        if rng.random() >= self.options.replay_augmented:
            self.count()
            return clip
        path = self._render(f"{_stem(clip.clip_id)}-r", clip, draw_chain(rng, self.options, self._babble_for(clip)))
        return replace(clip, audio_path=path)

    def nonspeech(self, purpose: str, index: int) -> LabeledClip:
        kinds = [kind for kind in NONSPEECH_KINDS if self.babble or kind != "murmur"]  # murmur needs voices
        kind = kinds[index % len(kinds)]
        name = f"nonspeech-{purpose}-{index:03d}-{kind}"
        path = self.folder / f"{name}.wav"
        rng = clip_rng(self.seed, "nonspeech", purpose, index)
        duration_s = float(rng.uniform(*self.options.nonspeech_s))
        chain = draw_chain(rng, replace(self.options, **_NONSPEECH_CHAIN), [])
        if not path.exists():
            voices = [self._audio(c) for c in self._pick_voices(rng)] if kind == "murmur" else []
            sound = training_nonspeech(kind, duration_s, rng, voices)
            write_wav(path, render(sound, chain, self.options, self.seed, self._babble_audio))
        self.count()
        self.manifest[path.name] = {"nonspeech": kind, "duration_s": round(duration_s, 2), "chain": chain,
                                    "describe": describe(chain)}
        return LabeledClip(name, path, "", recording=f"nonspeech-{purpose}")

    def effect_counts(self) -> dict[str, int]:
        """How many of the rendered files went through each effect (the list itself is in the manifest)."""
        counts: dict[str, int] = {}
        for entry in self.manifest.values():
            for effect in entry["chain"]:
                counts[effect] = counts.get(effect, 0) + 1
        return dict(sorted(counts.items()))

    def write_manifest(self) -> None:
        (self.folder / "variants.json").write_text(json.dumps(self.manifest, ensure_ascii=False, indent=1),
                                                   encoding="utf-8")

    def _render(self, stem: str, clip: LabeledClip, chain: dict) -> Path:
        path = self.folder / f"{stem}.wav"
        if not path.exists():
            write_wav(path, render(self._audio(clip), chain, self.options, self.seed, self._babble_audio))
        self.count()
        self.manifest[path.name] = {"clip": clip.clip_id, "chain": chain, "describe": describe(chain)}
        return path

    def _babble_for(self, clip: LabeledClip) -> list[str]:
        """Other talkers for `clip`: general clips with other words than its own."""
        return [clip_id for clip_id, other in self.babble.items() if other.text != clip.text]

    def _pick_voices(self, rng: np.random.Generator) -> list[LabeledClip]:
        pool = list(self.babble.values())
        return [pool[i] for i in rng.choice(len(pool), size=min(8, len(pool)), replace=False)]

    def _babble_audio(self, clip_id: str) -> np.ndarray:
        return self._audio(self.babble[clip_id])

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _audio_of(path: Path) -> np.ndarray:
        return decode_audio(path)

    def _audio(self, clip: LabeledClip) -> np.ndarray:
        return self._audio_of(clip.audio_path)


def training_nonspeech(kind: str, duration_s: float, rng: np.random.Generator,
                       voices: list[np.ndarray]) -> np.ndarray:
    """One of nonspeech.py's sounds, drawn wider for training: murmur of 2–6 voices behind walls of
    different thickness, and every kind at a level between -45 and -25 dBFS (near-silence below -60)."""
    if kind == "murmur":
        sound = murmur(duration_s, voices, rng, voices=int(rng.integers(2, 7)), cutoff_hz=float(rng.uniform(500, 1200)))
    else:
        sound = nonspeech(kind, duration_s, rng)
    if kind == "quiet":
        sound = colored_noise(len(sound), "white", rng)
    level_db = rng.uniform(-75, -60) if kind == "quiet" else rng.uniform(-45, -25)
    sound = sound / max(np.sqrt(np.mean(sound**2)), 1e-12) * 10 ** (level_db / 20)
    # Impulsive sounds (typing) at that average level would peak near full scale: keep peaks below -6 dBFS.
    return (sound / max(1.0, np.abs(sound).max() / 0.5)).astype(np.float32)


def _stem(clip_id: str) -> str:
    """A file name for any clip id (ids may hold slashes or other characters a file name cannot)."""
    return hashlib.sha1(clip_id.encode()).hexdigest()[:16]
