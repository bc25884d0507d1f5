"""`eval`: decode the same audio with every system and score them side by side.

A system is a model plus how it is used: the unadapted model bare, with the glossary as initial prompt,
with the glossary as faster-whisper hotwords, with the replacement dictionary after decoding; each adapted
model bare and with the dictionary. Forgetting is judged on general speech against the unadapted model
with a paired bootstrap over clips. Decoding is fixed and recorded (`decoding_settings`), together with
hashes of every model, glossary and data set, so the same inputs give the same report.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from whisper_adapt import evaluate
from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.augment import AugmentOptions, describe
from whisper_adapt.files import file_sha256
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, apply_replacements, load_glossary, prompt_text
from whisper_adapt.longform import Recording
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.transcribe import TranscribeOptions
from whisper_adapt.transcript import Segment, Transcript

COMPARISONS = ("prompt", "hotwords", "dictionary")
UNADAPTED = "unadapted"
PERTURB_SEED = 1  # of the shifted test set's chains, unless another is asked for
NONSPEECH_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".webm", ".mp4")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class System:
    """One way of transcribing: a model and the decoding aids given to it."""

    name: str
    model: str
    initial_prompt: str | None = None
    hotwords: str | None = None
    dictionary: bool = False  # apply the glossary's replacement dictionary to the output

    @property
    def decode_key(self) -> tuple[str, str | None, str | None]:
        # The dictionary only rewrites the decoder's text, so a system that differs by it alone shares the decode.
        return self.model, self.initial_prompt, self.hotwords


@dataclass(frozen=True)
class EvalOptions:
    beam_size: int = 5
    device: str = "auto"
    compute_type: str = "auto"
    numerals: bool = False
    bootstrap_samples: int = 2000
    seed: int = 0
    # Also score the test set heard through training's augmentation chain (rooms, other talkers, noise,
    # codecs), drawn by this seed — never one a training run draws from (`train` seeds its chains with
    # its own --seed and a "variant"/"replay" key, this with a "perturb" key). None: clean only.
    perturb_seed: int | None = None


def plan_systems(model: str, adapted: Sequence[tuple[str, str]], compare: Sequence[str], glossary: Glossary) -> list[System]:
    """The systems to score, the unadapted model first (the reference for forgetting)."""
    unknown = sorted(set(compare) - set(COMPARISONS))
    if unknown:
        raise WhisperAdaptError(f"unknown comparison {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}")
    terms = prompt_text(glossary)
    systems = [System(UNADAPTED, model)]
    if "prompt" in compare:
        systems.append(System(f"{UNADAPTED}+prompt", model, initial_prompt=terms))
    if "hotwords" in compare:
        systems.append(System(f"{UNADAPTED}+hotwords", model, hotwords=terms))
    if "dictionary" in compare:
        systems.append(System(f"{UNADAPTED}+dictionary", model, dictionary=True))
    for name, spec in adapted:
        _check_name(name, [s.name for s in systems])
        systems.append(System(name, spec))
        if "dictionary" in compare:
            systems.append(System(f"{name}+dictionary", spec, dictionary=True))
    return systems


def _check_name(name: str, taken: Sequence[str]) -> None:
    # Names label chart bars, whose font may lack Japanese glyphs; and they key the report's tables.
    if not _NAME.fullmatch(name):
        raise WhisperAdaptError(f"system name {name!r}: use ASCII letters, digits, '.', '_' or '-'")
    if name in taken:
        raise WhisperAdaptError(f"system name {name!r} is used twice")


def decoding_settings(options: EvalOptions, vad: bool) -> TranscribeOptions:
    """Fixed decoding for scoring: Japanese, beam search, temperature 0 only (fallback samples at random,
    which would make scores irreproducible), guards on with their defaults (they are part of the system).
    Clips are already cut at speech, so VAD is off for them; whole non-speech files and long-form
    recordings get it, as in use."""
    return TranscribeOptions(language="ja", beam_size=options.beam_size, vad=vad, temperatures=(0.0,))


@dataclass(frozen=True)
class Item:
    """One piece of audio to decode: a labelled clip (reference text), a non-speech file (none) or a
    long-form recording (its reference spans)."""

    item_id: str
    path: Path
    reference: str | None
    audio: np.ndarray
    recording: Recording | None = None

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def load_items(test: Path, general: Path | None, nonspeech: Path | None,
               longform: Path | None = None) -> dict[str, list[Item]]:
    """Every set's audio, decoded once; all unreadable inputs are reported together before any decoding."""
    from whisper_adapt.transfer import load_labeled_set

    sources: dict[str, list[tuple[str, Path, str | None]]] = {
        "test": [(c.clip_id, c.audio_path, c.text) for c in load_labeled_set(test)]}
    if general is not None:
        sources["general"] = [(c.clip_id, c.audio_path, c.text) for c in load_labeled_set(general)]
    if nonspeech is not None:
        sources["nonspeech"] = [(p.name, p, None) for p in _nonspeech_files(nonspeech)]
    items: dict[str, list[Item]] = {name: [] for name in sources}
    failures: list[WhisperAdaptError] = []
    for name, entries in sources.items():
        for item_id, path, reference in entries:
            try:
                items[name].append(Item(item_id, Path(path), reference, decode_audio(path)))
            except WhisperAdaptError as e:
                failures.append(e)
    if longform is not None:
        items["longform"] = _longform_items(longform, failures)
    if failures:
        listing = "\n  ".join(str(f) for f in failures)
        raise WhisperAdaptError(f"{len(failures)} inputs cannot be used:\n  {listing}")
    return items


def _longform_items(folder: Path, failures: list[WhisperAdaptError]) -> list[Item]:
    from whisper_adapt.longform import check_duration, load_longform_set

    try:
        recordings = load_longform_set(folder)
    except WhisperAdaptError as e:
        failures.append(e)
        return []
    items = []
    for recording in recordings:
        try:
            audio = decode_audio(recording.audio_path)
            check_duration(recording, len(audio) / SAMPLE_RATE)
            items.append(Item(recording.name, recording.audio_path, recording.text, audio, recording))
        except WhisperAdaptError as e:
            failures.append(e)
    return items


def shifted_items(items: list[Item], seed: int) -> tuple[list[Item], dict[str, str]]:
    """The test clips through the augmentation chain (the packaged general set's voices as babble), and
    each clip's chain described."""
    from whisper_adapt.augment import perturb
    from whisper_adapt.train.assemble import shipped_general_set

    babble = [(c.clip_id, c.text, c.audio_path) for c in shipped_general_set()]
    rendered = perturb([(i.item_id, i.reference or "", i.audio) for i in items], seed, babble=babble)
    shifted = [replace(item, audio=audio) for item, (audio, _) in zip(items, rendered)]
    return shifted, {item.item_id: describe(chain) for item, (_, chain) in zip(items, rendered)}


def _nonspeech_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise WhisperAdaptError("the non-speech set must be a folder of audio files", folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in NONSPEECH_SUFFIXES)
    if not files:
        raise WhisperAdaptError(f"no audio files ({', '.join(NONSPEECH_SUFFIXES)}) in the non-speech folder", folder)
    return files


@dataclass
class Decoded:
    transcripts: dict[tuple[tuple, str], list[Transcript]]  # (decode key, set name) -> one per item
    decode_s: dict[str, float]  # str(decode key) -> seconds spent decoding all sets
    runtime: dict[str, str]  # the device and compute type "auto" resolved to: they change the scores


def decode_all(systems: Sequence[System], items: dict[str, list[Item]], options: EvalOptions,
               on_progress: ProgressFn = ignore) -> Decoded:
    """Every set decoded once per decode key, each model loaded once."""
    from whisper_adapt.transcribe import load_model, transcribe_audio

    keys = list(dict.fromkeys(s.decode_key for s in systems))
    total = len(keys) * sum(len(v) for v in items.values())
    done, results, seconds, runtime = 0, {}, {}, {}
    for model_spec in dict.fromkeys(k[0] for k in keys):
        model = load_model(model_spec, device=options.device, compute_type=options.compute_type)
        runtime = {"device": model.model.device, "compute_type": model.model.compute_type}
        for key in (k for k in keys if k[0] == model_spec):
            started = time.perf_counter()
            for set_name, set_items in items.items():
                settings = replace(decoding_settings(options, vad=set_name in ("nonspeech", "longform")),
                                   initial_prompt=key[1], hotwords=key[2])
                transcripts = []
                for item in set_items:
                    transcripts.append(transcribe_audio(model, item.audio, settings, str(item.path)))
                    done += 1
                    on_progress(Progress(f"{set_name} · {_key_label(key, systems)}", done, total, "clips"))
                results[key, set_name] = transcripts
            seconds[str(key)] = time.perf_counter() - started
        del model  # free its memory before the next model loads
    return Decoded(results, seconds, runtime)


def _key_label(key: tuple, systems: Sequence[System]) -> str:
    return next(s.name for s in systems if s.decode_key == key)


def system_text(system: System, transcript: Transcript, glossary: Glossary) -> str:
    """The system's output text: the dictionary is applied per segment, exactly as `transcribe` does."""
    return "".join(segment.text for segment in system_segments(system, transcript, glossary))


def system_segments(system: System, transcript: Transcript, glossary: Glossary) -> list[Segment]:
    """The system's output segments, with the dictionary applied to each if the system uses it."""
    if not system.dictionary:
        return list(transcript.segments)
    return [replace(segment, text=apply_replacements(segment.text, glossary)) for segment in transcript.segments]


def run_evaluation(
    test: Path, glossary_path: Path, systems: Sequence[System], general: Path | None = None,
    nonspeech: Path | None = None, options: EvalOptions = EvalOptions(), on_progress: ProgressFn = ignore,
    longform: Path | None = None,
) -> dict:
    """Decode every set with every system, score them, and return the report (see report.py for files)."""
    glossary = load_glossary(glossary_path)
    items = load_items(test, general, nonspeech, longform)
    chains = {}
    if options.perturb_seed is not None:
        items["shifted"], chains = shifted_items(items["test"], options.perturb_seed)
    decoded = decode_all(systems, items, options, on_progress)
    segments = {(s.name, set_name): [system_segments(s, t, glossary) for t in decoded.transcripts[s.decode_key, set_name]]
                for s in systems for set_name in items}
    texts = {key: ["".join(seg.text for seg in item) for item in per_item] for key, per_item in segments.items()}
    context = _Context(texts, items, glossary, options, decoded.decode_s, systems[0],
                       {spec: _model_sha256(spec) for spec in dict.fromkeys(s.model for s in systems)}, segments)
    clips = {name: _clip_rows(items[name], systems, texts, name, options) for name in items}
    if "longform" in items:
        _add_longform_rows(clips["longform"], items["longform"], systems, context)
    paths = (("test", test), ("general", general), ("nonspeech", nonspeech), ("longform", longform))
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": _settings(options, decoded.runtime),
        "glossary": {"path": str(glossary_path), "sha256": file_sha256(glossary_path), "terms": len(glossary.terms)},
        "datasets": {name: _dataset_info(path, items[name]) for name, path in paths if name in items}
        | ({"shifted": {**_dataset_info(test, items["shifted"]), "perturbation": {
            "seed": options.perturb_seed, "options": asdict(AugmentOptions()), "chains": chains}}} if chains else {}),
        "systems": [_score_system(s, context) for s in systems],
        "clips": clips,
    }


def _settings(options: EvalOptions, runtime: dict[str, str]) -> dict:
    from importlib.metadata import version

    def described(o: TranscribeOptions) -> dict:
        return {k: v for k, v in asdict(o).items() if k not in ("initial_prompt", "hotwords")}

    return {
        "decoding_clips": described(decoding_settings(options, vad=False)),
        "decoding_nonspeech": described(decoding_settings(options, vad=True)),
        "decoding_longform": described(decoding_settings(options, vad=True)),
        "device": options.device, "compute_type": options.compute_type, "resolved": runtime,
        "normalization": {"nfkc": True, "removed_categories": ["P*", "S*", "Z*", "C*"], "numerals": options.numerals},
        "bootstrap": {"samples": options.bootstrap_samples, "seed": options.seed, "interval": 0.95},
        "versions": {p: version(p) for p in ("whisper-adapt", "faster-whisper", "ctranslate2", "jiwer",
                                             "fugashi", "unidic-lite")},
    }


def _dataset_info(path: Path, items: list[Item]) -> dict:
    """What identifies a set: a hash of every clip id, reference text and audio file's bytes."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.item_id):
        spans = file_sha256(item.recording.reference_path) if item.recording else ""  # the times, too
        digest.update(f"{item.item_id}\0{item.reference or ''}\0{file_sha256(item.path)}\0{spans}\n".encode())
    return {"path": str(path), "sha256": digest.hexdigest(), "items": len(items),
            "audio_s": round(sum(i.duration_s for i in items), 3)}


def _model_sha256(spec: str) -> str:
    from whisper_adapt.models import model_sha256, resolve_model

    return model_sha256(resolve_model(spec, "ct2"))


@dataclass(frozen=True)
class _Context:
    """Everything a system is scored with."""

    texts: dict[tuple[str, str], list[str]]  # (system name, set name) -> output text per item
    items: dict[str, list[Item]]
    glossary: Glossary
    options: EvalOptions
    decode_s: dict[str, float]
    unadapted: System
    model_sha256: dict[str, str]
    segments: dict[tuple[str, str], list[list[Segment]]]  # (system name, set name) -> segments per item


def _score_system(system: System, context: _Context) -> dict:
    texts, items, options, unadapted = context.texts, context.items, context.options, context.unadapted
    out = {**asdict(system), "model_sha256": context.model_sha256[system.model],
           "decode_s": round(context.decode_s[str(system.decode_key)], 2)}
    for set_name in ("test", "general", "shifted"):
        if set_name in items:
            references = [i.reference for i in items[set_name]]
            out[set_name] = _speech_scores(references, texts[system.name, set_name], context.glossary, options)
    if "general" in items and system.name != unadapted.name:
        references = [i.reference for i in items["general"]]
        delta, low, high = evaluate.paired_bootstrap(
            references, texts[unadapted.name, "general"], texts[system.name, "general"],
            n=options.bootstrap_samples, seed=options.seed, numerals=options.numerals)
        out["forgetting"] = {"delta_cer": delta, "low": low, "high": high, "verdict": _verdict(low, high)}
    if "nonspeech" in items:
        figures = evaluate.hallucination(texts[system.name, "nonspeech"], [i.duration_s for i in items["nonspeech"]])
        out["nonspeech"] = {"minutes": figures.minutes, "chars": figures.chars,
                            "chars_per_minute": figures.chars_per_minute, "loops": figures.loops}
    if "longform" in items:
        out["longform"] = _longform_scores(items["longform"], context.segments[system.name, "longform"], context)
    return out


def _longform_scores(items: list[Item], segments: list[list[Segment]], context: _Context) -> dict:
    from whisper_adapt.longform import score_longform

    scores = score_longform([(item.recording, item.duration_s, segs) for item, segs in zip(items, segments)],
                            context.glossary, context.options.numerals)
    return {
        "cer": scores.cer, "char_edits": scores.char_edits.edits, "ref_chars": scores.char_edits.reference_length,
        "terms": _term_dict(scores.terms.total),
        "nonspeech_minutes": scores.nonspeech_minutes, "invented_chars": scores.invented_chars,
        "invented_chars_per_minute": scores.invented_chars_per_minute, "loops": scores.loops,
        "spans": scores.spans, "matched_spans": len(scores.timestamp_errors),
        "mean_start_error_s": scores.mean_start_error_s, "mean_end_error_s": scores.mean_end_error_s,
        "segments": len(scores.silence_covered_s), "max_silence_covered_s": scores.max_silence_covered_s,
        "segments_over_silence_limit": scores.segments_over_silence_limit,
    }


def _add_longform_rows(rows: list[dict], items: list[Item], systems: Sequence[System], context: _Context) -> None:
    """Each recording's spans, every system's segments with their times, and its figures on that recording."""
    for index, (row, item) in enumerate(zip(rows, items)):
        row["spans"] = [asdict(span) for span in item.recording.spans]
        row["segments"] = {s.name: [[seg.start_s, seg.end_s, seg.text] for seg in context.segments[s.name, "longform"][index]]
                           for s in systems}
        row["scores"] = {s.name: _longform_scores([item], [context.segments[s.name, "longform"][index]], context)
                         for s in systems}


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return "worse"
    if high < 0:
        return "better"
    return "no significant change"


def _speech_scores(references: list[str], hypotheses: list[str], glossary: Glossary, options: EvalOptions) -> dict:
    chars = evaluate.pooled_char_edits(references, hypotheses, options.numerals)
    tokens = evaluate.pooled_token_edits(references, hypotheses, options.numerals)
    terms = evaluate.term_scores(references, hypotheses, glossary)
    return {
        "cer": chars.rate, "char_edits": chars.edits, "ref_chars": chars.reference_length,
        "wer": tokens.rate, "token_edits": tokens.edits, "ref_tokens": tokens.reference_length,
        "terms": {**_term_dict(terms.total),
                  "per_term": {term: _term_dict(score) for term, score in terms.per_term.items()}},
    }


def _term_dict(score: evaluate.TermScore) -> dict:
    return {"said": score.said, "written": score.written, "recognized": score.recognized,
            "false_alarms": score.false_alarms, "recall": score.recall, "precision": score.precision}


def _clip_rows(items: list[Item], systems: Sequence[System], texts: dict, set_name: str, options: EvalOptions) -> list[dict]:
    rows = []
    for index, item in enumerate(items):
        row = {"id": item.item_id, "audio_path": str(item.path), "duration_s": round(item.duration_s, 3),
               "reference": item.reference, "hypotheses": {s.name: texts[s.name, set_name][index] for s in systems}}
        if item.reference is not None:
            row["ref_chars"] = len(evaluate.normalize_text(item.reference, options.numerals))
            row["char_edits"] = {s.name: evaluate.char_edits(item.reference, row["hypotheses"][s.name], options.numerals).edits
                                 for s in systems}
        rows.append(row)
    return rows
