"""Training examples: target token sequences, faster-whisper's features, and the encoder-output cache.

When the encoder is frozen its output depends only on the audio, so each clip is encoded once (float16 on
disk, keyed by the audio's hash and the encoder weights' hash) and every epoch trains the decoder on the
cache: the encoder is most of Whisper's compute.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from whisper_adapt.audio import audio_duration_s, decode_audio
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.files import file_sha256, write_atomically
from whisper_adapt.features import clip_features
from whisper_adapt.glossary import Glossary, find_matches
from whisper_adapt.hf_decode import Prompt
from whisper_adapt.labeled import LabeledClip

TIMESTAMP_STEP_S = 0.02
IGNORE_INDEX = -100  # positions the loss skips: the prompt and the padding


@dataclass(frozen=True)
class Example:
    clip: LabeledClip
    duration_s: float
    decoder_input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    encoder_file: Path | None  # None when the encoder trains too (method "full")
    prefix_file: Path | None = None  # the frozen decoder layers' output (train/prefix.py), when cached
    teacher_file: Path | None = None  # the unadapted model's top-k predictions (train/distill.py)
    term_positions: tuple[int, ...] = ()  # indexes into `labels` of tokens spelling a glossary term


def target_sequence(text_ids: list[int], prompt: Prompt, duration_s: float | None,
                    label_language: bool = False) -> tuple[list[int], list[int]]:
    """(decoder inputs, labels). With `duration_s` the target carries timestamps <|0.00|> … <|end|>, so the
    adapted model keeps predicting them (training without them breaks long-form timestamping). With
    `label_language` the first label is the language token, as in Whisper's own training: where the run
    also trains non-speech clips to <|nospeech|>, speech must say that speech follows."""
    if duration_s is None:
        head, body = prompt.plain, text_ids
    else:
        end = prompt.timestamp_begin + min(1500, round(duration_s / TIMESTAMP_STEP_S))
        head, body = prompt.plain[:3], [prompt.timestamp_begin, *text_ids, end]
    sequence = head + body + [prompt.eot]
    labels = [token if i + 1 >= len(head) else IGNORE_INDEX for i, token in enumerate(sequence[1:])]
    if label_language:
        labels[0] = prompt.language
    return sequence[:-1], labels


def nonspeech_sequence(prompt: Prompt) -> tuple[list[int], list[int]]:
    """(decoder inputs, labels) of a clip where nobody speaks: <|nospeech|> after <|startoftranscript|>
    (the probability the guards read) and, after the usual prompt, nothing but end-of-text."""
    inputs = list(prompt.plain)
    return inputs, [prompt.no_speech] + [IGNORE_INDEX] * (len(inputs) - 2) + [prompt.eot]


def encoder_sha256(model: torch.nn.Module) -> str:
    """Identity of the encoder weights: cache entries from another encoder are never reused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_cache_files(clips: Sequence[LabeledClip], cache_dir: Path) -> dict[str, Path]:
    """clip_id → the cache file of its encoder output (present or not)."""
    return {clip.clip_id: cache_dir / f"{file_sha256(clip.audio_path)}.npy" for clip in clips}


def fill_encoder_cache(
    model: torch.nn.Module, clips: Sequence[LabeledClip], cache_dir: Path, batch_size: int = 8,
    advance: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Encode every clip not yet cached; returns clip_id → cache file. Files appear whole or not at all."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = encoder_cache_files(clips, cache_dir)
    todo = [clip for clip in clips if not files[clip.clip_id].exists()]
    device = next(model.parameters()).device
    n_mels = model.config.num_mel_bins
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        features = np.stack([clip_features(decode_audio(clip.audio_path), n_mels) for clip in batch])
        with torch.no_grad():
            hidden = model.model.encoder(torch.from_numpy(features).to(device)).last_hidden_state
        for clip, states in zip(batch, hidden.to(torch.float16).cpu().numpy()):
            write_atomically(files[clip.clip_id], partial(np.save, arr=states))
        if advance:
            advance(len(batch))
    return files


def term_token_indexes(text: str, tokenizer, glossary: Glossary | None) -> tuple[list[int], list[int]]:
    """(token ids of `text`, indexes of the tokens that overlap a glossary term). A term's kanji are often
    several byte-level tokens each; every one of them counts."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=bool(glossary))
    if not glossary:
        return encoded.input_ids, []
    spans = [(start, end) for start, end, term in find_matches(text, glossary) if text[start:end] == term]
    inside = [i for i, (first, last) in enumerate(encoded.offset_mapping)
              if any(first < end and start < last for start, end in spans)]
    return encoded.input_ids, inside


def build_examples(
    clips: Sequence[LabeledClip], tokenizer, prompt: Prompt, encoder_files: dict[str, Path] | None,
    timestamp_share: float, seed: int, max_target_tokens: int, glossary: Glossary | None = None,
    label_language: bool = False,
) -> tuple[list[Example], list[WhisperAdaptError]]:
    """Examples for `clips`; a share of them (chosen by `seed`) gets timestamped targets; with `glossary`,
    each records where its target spells a term. Clips whose text is empty or too long for Whisper's 448-token
    window are reported, not trained on."""
    rng = random.Random(seed)
    examples, problems = [], []
    for clip in clips:
        text_ids, term_tokens = term_token_indexes(clip.text, tokenizer, glossary)
        duration_s = audio_duration_s(clip.audio_path)
        if not text_ids:
            problems.append(WhisperAdaptError("empty transcript", clip.audio_path))
            continue
        timed = duration_s if rng.random() < timestamp_share else None
        inputs, labels = target_sequence(text_ids, prompt, timed, label_language)
        if len(inputs) > max_target_tokens:
            problems.append(WhisperAdaptError(f"transcript of {len(inputs)} tokens exceeds {max_target_tokens}",
                                              clip.audio_path))
            continue
        text_start = len(labels) - len(text_ids) - (1 if timed is None else 2)  # before [<|end|>,] <|eot|>
        examples.append(Example(clip, duration_s, tuple(inputs), tuple(labels),
                                encoder_files[clip.clip_id] if encoder_files else None,
                                term_positions=tuple(text_start + i for i in term_tokens)))
    return examples, problems


def build_nonspeech_examples(clips: Sequence[LabeledClip], prompt: Prompt,
                             encoder_files: dict[str, Path] | None) -> list[Example]:
    """Examples for clips where nobody speaks (their text is ignored): the no-speech target."""
    inputs, labels = nonspeech_sequence(prompt)
    return [Example(clip, audio_duration_s(clip.audio_path), tuple(inputs), tuple(labels),
                    encoder_files[clip.clip_id] if encoder_files else None) for clip in clips]


def load_example(example: Example, n_mels: int) -> dict:
    """What one training step needs of an example: target ids, and its cached (or computed) inputs."""
    item = {"decoder_input_ids": example.decoder_input_ids, "labels": example.labels,
            "term_positions": example.term_positions}
    if example.encoder_file is not None:
        item["encoder_hidden"] = torch.from_numpy(np.load(example.encoder_file))
    else:
        item["input_features"] = torch.from_numpy(clip_features(decode_audio(example.clip.audio_path), n_mels))
    if example.prefix_file is not None:
        item["decoder_prefix"] = torch.from_numpy(np.load(example.prefix_file))
    if example.teacher_file is not None:
        with np.load(example.teacher_file) as teacher:
            item["teacher_ids"] = torch.from_numpy(teacher["ids"]).long()
            item["teacher_log_probs"] = torch.from_numpy(teacher["log_probs"].astype(np.float32))
    return item


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: Sequence[Example], n_mels: int):
        self.examples = list(examples)
        self.n_mels = n_mels

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return load_example(self.examples[index], self.n_mels)


class EpochMix(torch.utils.data.Dataset):
    """One epoch's examples: every example of the organization's clips, one augmented variant of each of them
    (when it has any), and fresh draws from pools of replayed general speech and of non-speech clips.

    Every draw depends only on (seed, epoch), so a resumed run trains on what the uninterrupted one would have.
    """

    def __init__(self, own: Sequence[Example], variants: Sequence[Sequence[Example]],
                 pools: dict[str, tuple[Sequence[Example], int]], n_mels: int, seed: int):
        self.own, self.n_mels, self.seed = list(own), n_mels, seed
        self.variants = [list(group) for group in variants if group]
        self.pools = {name: (list(pool), min(per_epoch, len(pool))) for name, (pool, per_epoch) in pools.items()}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        picked = [group[random.Random(f"variant:{self.seed}:{epoch}:{index}").randrange(len(group))]
                  for index, group in enumerate(self.variants)]
        drawn = []
        for name, (pool, per_epoch) in self.pools.items():
            indexes = range(per_epoch)
            if epoch and per_epoch < len(pool):
                indexes = random.Random(f"{name}:{self.seed}:{epoch}").sample(range(len(pool)), per_epoch)
            drawn += [pool[i] for i in indexes]
        self.items = self.own + picked + drawn

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return load_example(self.items[index], self.n_mels)


def model_batches(examples: Sequence[Example], n_mels: int, pad_id: int, device,
                  batch_size: int = 8) -> Iterator[tuple[range, dict]]:
    """(positions in `examples`, model inputs on `device`) batch by batch, for computing caches: no labels,
    and no cached teacher or prefix."""
    dataset = ExampleDataset([replace(e, teacher_file=None, prefix_file=None) for e in examples], n_mels)
    for start in range(0, len(examples), batch_size):
        indexes = range(start, min(start + batch_size, len(examples)))
        batch = collate([dataset[i] for i in indexes], pad_id)
        batch.pop("labels")
        batch.pop("term_mask", None)
        yield indexes, {k: (v.to(device) if torch.is_tensor(v) else (v[0].to(device),)) for k, v in batch.items()}


def collate(items: list[dict], pad_id: int) -> dict:
    """Pad targets to the longest in the batch (inputs with end-of-text, labels with the ignore index)."""
    length = max(len(item["decoder_input_ids"]) for item in items)
    inputs = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(items):
        inputs[row, : len(item["decoder_input_ids"])] = torch.tensor(item["decoder_input_ids"])
        labels[row, : len(item["labels"])] = torch.tensor(item["labels"])
    batch = {"decoder_input_ids": inputs, "labels": labels}
    if any(item.get("term_positions") for item in items):
        batch["term_mask"] = torch.zeros(len(items), length, dtype=torch.bool)
        for row, item in enumerate(items):
            batch["term_mask"][row, list(item["term_positions"])] = True
    if "decoder_prefix" in items[0]:
        # Padding rows come after every real position, so under causal attention their values never matter.
        prefix = torch.zeros(len(items), length, items[0]["decoder_prefix"].shape[-1])
        for row, item in enumerate(items):
            prefix[row, : len(item["decoder_prefix"])] = item["decoder_prefix"]
        batch["decoder_prefix"] = prefix
    with_teacher = [item for item in items if "teacher_ids" in item]
    if with_teacher:
        batch |= _collate_teacher(items, length, with_teacher[0]["teacher_ids"].shape[-1])
    if "encoder_hidden" in items[0]:
        batch["encoder_outputs"] = (torch.stack([item["encoder_hidden"] for item in items]).float(),)
    else:
        batch["input_features"] = torch.stack([item["input_features"] for item in items])
    return batch


def _collate_teacher(items: list[dict], length: int, top_k: int) -> dict:
    """The batch's teacher predictions padded to `length`; the mask marks the target positions where the
    teacher's most likely token is the reference token."""
    ids = torch.zeros(len(items), length, top_k, dtype=torch.long)
    log_probs = torch.zeros(len(items), length, top_k)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for row, item in enumerate(items):
        if "teacher_ids" in item:
            size = len(item["teacher_ids"])
            ids[row, :size] = item["teacher_ids"]
            log_probs[row, :size] = item["teacher_log_probs"]
            mask[row, :size] = torch.tensor(item["labels"]) == item["teacher_ids"][:, 0]
    return {"teacher_ids": ids, "teacher_log_probs": log_probs, "teacher_mask": mask}
