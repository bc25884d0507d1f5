"""Synthesized training clips for glossary terms: sentences (or templates × terms) spoken by the TTS,
written into a corpus as reviewed clips.

- Sentences come from a file (one per line) or from templates, where every template line holding
  `{term}` is filled with every glossary term, in file order (templates × terms, no sampling: a
  glossary is tens of terms, and every term should be heard in every context).
  In both files blank lines and lines starting with `#` are skipped.
- The TTS hears each term's reading (`上期 (かみき)` is spoken as かみき), because it would misread rare
  kanji; the clip's transcript keeps the term, which is what Whisper must learn to write.
- Voices are cycled over the sentences. Each voice is its own recording, `synthetic-<voice>`, so that
  splitting train from validation by recording keeps a voice out of training, as it does for people.
- Light, seeded augmentation: a level change of ±6 dB and Gaussian noise at 30–40 dB SNR, drawn per
  clip from (seed, clip id) so a clip sounds the same whatever else is in the run.
- Clips are reviewed, with revision origin `synthetic:<voice>`. The clip id is a hash of voice and
  text, so a second run adds nothing (and skips the TTS for clips already there). Because voices are
  cycled by position, inserting a sentence in the middle of the file shifts the voices of those after
  it, and the next run adds them again in their new voices; append new sentences at the end instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.corpus import Corpus, Recording, writing_corpus
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, Term, find_matches
from whisper_adapt.progress import Progress, ProgressFn, ignore
from whisper_adapt.segment import WHISPER_WINDOW_S
from whisper_adapt.synth import VOICES, synthesize_speech

DEFAULT_VOICES = ("jf_alpha", "jm_kumo")
TERM_SLOT = "{term}"
GAIN_DB = 6.0
SNR_DB = (30.0, 40.0)


@dataclass
class SynthResult:
    added: int = 0
    already_present: int = 0
    without_terms: int = 0  # sentences in which no glossary term was found (still added)


# (sentence as written, voice) → mono float32 speech at 16 kHz.
Speaker = Callable[[str, str], np.ndarray]


def synthesize_corpus(corpus_dir: Path, glossary: Glossary, sentences: Sequence[str],
                      voices: Sequence[str] = DEFAULT_VOICES, seed: int = 0,
                      on_progress: ProgressFn = ignore,
                      speak: Speaker | None = None) -> SynthResult:
    """Speak `sentences` (voices cycled) into the corpus at `corpus_dir` (created if missing). `speak`
    defaults to the TTS reading terms by their glossary reading (the demo passes its shipped recordings)."""
    check_voices(voices)
    speak = speak or (lambda sentence, voice: synthesize_speech(spoken_text(sentence, glossary), voice))
    if not sentences:
        raise WhisperAdaptError("no sentences to synthesize")
    result = SynthResult()
    with writing_corpus(corpus_dir) as corpus:
        recordings: dict[str, Recording] = {}
        for index, sentence in enumerate(sentences):
            voice = voices[index % len(voices)]
            _add_sentence(corpus, glossary, sentence, voice, seed, recordings, result, speak)
            on_progress(Progress("synthesizing", index + 1, len(sentences), "sentences"))
    return result


def _add_sentence(corpus: Corpus, glossary: Glossary, sentence: str, voice: str, seed: int,
                  recordings: dict[str, Recording], result: SynthResult, speak: Speaker) -> None:
    clip_id = synthetic_clip_id(sentence, voice)
    if corpus.has_clip(clip_id):
        result.already_present += 1
        return
    if not find_matches(sentence, _terms_only(glossary)):
        result.without_terms += 1
    samples = augment(speak(sentence, voice), _clip_rng(seed, clip_id))
    if len(samples) > WHISPER_WINDOW_S * SAMPLE_RATE:
        raise WhisperAdaptError(f"sentence {sentence!r} takes {len(samples) / SAMPLE_RATE:.1f} s; Whisper takes "
                                f"clips of at most {WHISPER_WINDOW_S:g} s (split it)")
    if voice not in recordings:
        # A name without a file: the synthetic recording has no sha256, so it is found again by name.
        recordings[voice] = corpus.add_recording(Path(f"synthetic:{voice}"), None, name=f"synthetic-{voice}")
    corpus.add_clip(recordings[voice], clip_id, samples, text=sentence, origin=f"synthetic:{voice}",
                    status="reviewed", speaker=voice)
    result.added += 1


def check_voices(voices: Sequence[str]) -> None:
    """Reject an empty or unknown voice before any speech is made."""
    if not voices:
        raise WhisperAdaptError("no voices given")
    unknown = [voice for voice in voices if voice not in VOICES]
    if unknown:
        raise WhisperAdaptError(f"unknown voice {', '.join(unknown)}; choose from {', '.join(VOICES)}")


def synthetic_clip_id(sentence: str, voice: str) -> str:
    """Stable id from voice and text: the same sentence in the same voice is the same clip on every run."""
    digest = hashlib.sha256(f"{voice}\n{sentence}".encode()).hexdigest()[:16]
    return f"synthetic-{voice}-{digest}"


def spoken_text(sentence: str, glossary: Glossary) -> str:
    """`sentence` with every glossary term that has a reading replaced by that reading, for the TTS."""
    readings = {term.text: term.reading for term in glossary.terms if term.reading}
    pieces, position = [], 0
    # Terms only: a misrecognition written in a sentence is spoken as written, not as its term's reading.
    for start, end, term in find_matches(sentence, _terms_only(glossary)):
        pieces += [sentence[position:start], readings.get(term, term)]
        position = end
    return "".join(pieces) + sentence[position:]


def _terms_only(glossary: Glossary) -> Glossary:
    return Glossary(tuple(Term(term.text, term.reading) for term in glossary.terms))


def augment(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random level change (±GAIN_DB) and Gaussian noise at a random SNR in SNR_DB, clipped to [-1, 1]."""
    louder = samples * 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
    power = float(np.mean(louder.astype(np.float64) ** 2))
    noise_std = np.sqrt(power / 10 ** (rng.uniform(*SNR_DB) / 10))
    noisy = louder + rng.normal(0.0, noise_std, louder.size)
    return np.clip(noisy, -1.0, 1.0).astype(np.float32)


def _clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(hashlib.sha256(clip_id.encode()).hexdigest()[:15], 16)])


def read_sentences(path: Path) -> list[str]:
    """The sentences of a file: one per line, blank lines and `#` lines skipped."""
    return [line for _, line in _lines(path)]


def expand_templates(path: Path, glossary: Glossary) -> list[str]:
    """Every template of the file filled with every glossary term (templates × terms, in file order)."""
    templates = _lines(path)
    if not templates:
        raise WhisperAdaptError("no templates in the file", path)
    for number, template in templates:
        if TERM_SLOT not in template:
            raise WhisperAdaptError(f"line {number}: template without {TERM_SLOT}", path)
    if not glossary.terms:
        raise WhisperAdaptError("the glossary has no terms to fill the templates with")
    return [template.replace(TERM_SLOT, term.text) for _, template in templates for term in glossary.terms]


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped text) of the file's non-blank, non-comment lines."""
    try:
        text = Path(path).read_bytes().decode("utf-8").removeprefix("\ufeff")
    except FileNotFoundError as e:
        raise WhisperAdaptError("file not found", path) from e
    except UnicodeDecodeError as e:
        raise WhisperAdaptError("not UTF-8 text (save the file as UTF-8)", path) from e
    except OSError as e:
        raise WhisperAdaptError(f"cannot read the file: {e.strerror}", path) from e
    stripped = ((number, line.strip()) for number, line in enumerate(text.split("\n"), start=1))
    return [(number, line) for number, line in stripped if line and not line.startswith("#")]
