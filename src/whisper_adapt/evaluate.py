"""Scoring Japanese transcripts: normalization, CER and WER, glossary term recall, hallucination, forgetting.

Normalization for scoring (`normalize_text`), applied to reference and hypothesis alike:

1. Unicode NFKC: full-width letters and digits become ASCII (ＡＩ → AI, ３ → 3), half-width katakana
   becomes full-width, compatibility characters are unfolded (㈱ → (株)).
2. Every character of Unicode category P* (punctuation: 。、「」・ー is *not* one, see below) or S*
   (symbols: ♪ ％ ＋ ¥) is removed, and so is every separator (Z*: spaces of any width) and control
   character (C*). The long vowel mark ー is a letter (Lm) and stays: ケーキ and ケキ are different words.
3. Optional numeral normalization (`numerals=True`): every run of kanji numerals, possibly mixed with
   ASCII digits, is replaced by its value in ASCII digits, so that 三 and 3, 十五 and 15, 二〇二五 and
   2025, 三百万 and 300万 and 3000000 compare equal. A run holds 〇零一二三四五六七八九 (digits), 十百千
   (units within a group of four) and 万億兆 (groups). A run without unit characters is read digit by
   digit (二〇二五 → 2025); otherwise positionally (二千二十五 → 2025, 3万 → 30000). The rule is
   lexical, so it also rewrites words that merely contain numerals (一緒 → 1緒, 十分 → 10分); since both
   sides are rewritten the same way this does not bias the score, and normalized text is never shown.

Kanji/kana variants (上期 / かみき) are deliberately not folded: that difference is what adaptation is for,
and it is scored separately as glossary term recall.

CER pooled over a corpus is Σ edits / Σ reference characters (not the mean of per-clip CERs, which lets
short clips dominate). WER counts edits over morphological tokens (MeCab via fugashi with UniDic-lite).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import Glossary, Term, count_terms
from whisper_adapt.guards import GuardOptions, count_loops

_DROPPED_CATEGORIES = ("P", "S", "Z", "C")
_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0} | {str(i): i for i in range(10)}
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG_UNITS = {"万": 10**4, "億": 10**8, "兆": 10**12}
_KANJI_NUMERALS = "〇零一二三四五六七八九" + "".join(_SMALL_UNITS) + "".join(_BIG_UNITS)
_NUMERAL_RUN = re.compile(f"[0-9{_KANJI_NUMERALS}]+")


def normalize_text(text: str, numerals: bool = False) -> str:
    """The text as it is scored (see the module docstring for the exact rules)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if unicodedata.category(char)[0] not in _DROPPED_CATEGORIES)
    if numerals:
        text = _NUMERAL_RUN.sub(_numeral_value, text)
    return text


def _numeral_value(match: re.Match[str]) -> str:
    run = match[0]
    if not any(char in _KANJI_NUMERALS for char in run):
        return run  # plain ASCII digits are already in the target form
    if not any(char in _SMALL_UNITS or char in _BIG_UNITS for char in run):
        return "".join(str(_DIGITS[char]) for char in run)
    total, group, digits = 0, 0, None
    for char in run:
        if char in _DIGITS:
            digits = (digits or 0) * 10 + _DIGITS[char]
        elif char in _SMALL_UNITS:
            group += (1 if digits is None else digits) * _SMALL_UNITS[char]
            digits = None
        else:
            total += (group + (digits or 0) or 1) * _BIG_UNITS[char]
            group, digits = 0, None
    return str(total + group + (digits or 0))


@dataclass(frozen=True)
class EditCounts:
    """Edit operations between a reference and a hypothesis (characters or tokens)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Edits per reference unit; an empty reference with an empty hypothesis is 0, with text inf."""
        if self.reference_length == 0:
            return 0.0 if self.edits == 0 else float("inf")
        return self.edits / self.reference_length

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                          self.insertions + other.insertions, self.reference_length + other.reference_length)


def char_edits(reference: str, hypothesis: str, numerals: bool = False) -> EditCounts:
    """Character edits between the normalized texts (jiwer's Levenshtein alignment)."""
    return _edits(list(normalize_text(reference, numerals)), list(normalize_text(hypothesis, numerals)))


def _edits(reference: list[str], hypothesis: list[str]) -> EditCounts:
    import jiwer

    if not reference:
        return EditCounts(insertions=len(hypothesis))
    # Units joined by spaces are what jiwer's word alignment splits on; normalized units hold no spaces.
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return EditCounts(out.substitutions, out.deletions, out.insertions, len(reference))


def pooled_char_edits(references: Sequence[str], hypotheses: Sequence[str], numerals: bool = False) -> EditCounts:
    """Character edits summed over paired clips, after normalization."""
    _check_paired(references, hypotheses)
    return sum((char_edits(r, h, numerals) for r, h in zip(references, hypotheses)), EditCounts())


def pooled_token_edits(references: Sequence[str], hypotheses: Sequence[str], numerals: bool = False) -> EditCounts:
    """Morpheme edits summed over paired clips, after normalization."""
    _check_paired(references, hypotheses)
    return sum((token_edits(r, h, numerals) for r, h in zip(references, hypotheses)), EditCounts())


def pooled_cer(references: Sequence[str], hypotheses: Sequence[str], numerals: bool = False) -> float:
    """Σ character edits / Σ reference characters over all clips, after normalization."""
    return pooled_char_edits(references, hypotheses, numerals).rate


def pooled_wer(references: Sequence[str], hypotheses: Sequence[str], numerals: bool = False) -> float:
    """Σ token edits / Σ reference tokens, tokens being MeCab (UniDic-lite) morphemes of the normalized text."""
    return pooled_token_edits(references, hypotheses, numerals).rate


def _check_paired(references: Sequence[str], *hypotheses: Sequence[str]) -> None:
    for hyps in hypotheses:
        if len(hyps) != len(references):
            raise WhisperAdaptError(f"{len(references)} references but {len(hyps)} hypotheses")


def token_edits(reference: str, hypothesis: str, numerals: bool = False) -> EditCounts:
    """Morpheme edits between the normalized texts."""
    return _edits(tokenize(normalize_text(reference, numerals)), tokenize(normalize_text(hypothesis, numerals)))


def tokenize(text: str) -> list[str]:
    """Morphemes (surface forms) by MeCab with the UniDic-lite dictionary."""
    return [word.surface for word in _tagger()(text)] if text else []


@lru_cache(maxsize=1)
def _tagger():
    try:
        import fugashi
        import unidic_lite
    except ImportError as e:
        raise WhisperAdaptError(f"WER needs fugashi and unidic-lite: pip install fugashi unidic-lite ({e})") from e
    # Name the dictionary explicitly, so an installed full UniDic cannot change the tokens (and the WER).
    return fugashi.Tagger(f'-d "{unidic_lite.DICDIR}" -r /dev/null')


def char_diff(reference: str, hypothesis: str, numerals: bool = False) -> list[tuple[str, str, str]]:
    """Aligned pieces of the normalized texts: (op, reference part, hypothesis part), op one of
    equal / substitute / delete / insert — what the report colours."""
    import jiwer

    ref, hyp = normalize_text(reference, numerals), normalize_text(hypothesis, numerals)
    if not ref:
        return [("insert", "", hyp)] if hyp else []
    out = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
    return [(chunk.type, ref[chunk.ref_start_idx:chunk.ref_end_idx], hyp[chunk.hyp_start_idx:chunk.hyp_end_idx])
            for chunk in out.alignments[0]]


@dataclass(frozen=True)
class TermScore:
    """One glossary term over a set of clips. A said occurrence counts as recognized when the clip's
    hypothesis holds the term at least as often as its reference: min(ref, hyp) per clip."""

    said: int = 0  # occurrences in the references
    written: int = 0  # occurrences in the hypotheses
    recognized: int = 0  # Σ min(ref, hyp) per clip

    @property
    def false_alarms(self) -> int:
        """Occurrences written beyond what was said in the same clip (including clips where it was not said)."""
        return self.written - self.recognized

    @property
    def recall(self) -> float | None:
        return self.recognized / self.said if self.said else None

    @property
    def precision(self) -> float | None:
        return self.recognized / self.written if self.written else None

    def __add__(self, other: TermScore) -> TermScore:
        return TermScore(self.said + other.said, self.written + other.written, self.recognized + other.recognized)


@dataclass(frozen=True)
class TermScores:
    """Every glossary term's score over a set of clips, and all terms together."""

    per_term: dict[str, TermScore]

    @property
    def total(self) -> TermScore:
        """All terms pooled: overall recall is Σ recognized / Σ said over every term."""
        return sum(self.per_term.values(), TermScore())

    @property
    def recall(self) -> float | None:
        return self.total.recall

    @property
    def precision(self) -> float | None:
        return self.total.precision


def term_scores(references: Sequence[str], hypotheses: Sequence[str], glossary: Glossary) -> TermScores:
    """Per-term counts over paired clips. Terms are matched in NFKC text with punctuation, symbols and
    spaces removed (numerals are never rewritten here: a term such as 第三期 must stay findable)."""
    _check_paired(references, hypotheses)
    normalized, originals = _normalized_glossary(glossary)
    scores = {term.text: TermScore() for term in glossary.terms}
    for reference, hypothesis in zip(references, hypotheses):
        said = count_terms(normalize_text(reference), normalized)
        written = count_terms(normalize_text(hypothesis), normalized)
        for key, original in originals.items():
            scores[original] += TermScore(said[key], written[key], min(said[key], written[key]))
    return TermScores(scores)


@lru_cache(maxsize=8)
def _normalized_glossary(glossary: Glossary) -> tuple[Glossary, dict[str, str]]:
    originals: dict[str, str] = {}
    for term in glossary.terms:
        key = normalize_text(term.text)
        if not key:
            raise WhisperAdaptError(f"glossary term {term.text!r} is empty once punctuation and symbols are removed")
        if key in originals:
            raise WhisperAdaptError(f"glossary terms {originals[key]!r} and {term.text!r} are the same when scored")
        originals[key] = term.text
    return Glossary(tuple(Term(key) for key in originals)), originals


@dataclass(frozen=True)
class Hallucination:
    """What a system wrote on audio that holds no speech: anything it wrote was invented."""

    minutes: float
    chars: int  # normalized characters written
    loops: int  # runs counted by guards.count_loops in the written text

    @property
    def chars_per_minute(self) -> float:
        return self.chars / self.minutes if self.minutes else 0.0


def hallucination(texts: Sequence[str], durations_s: Sequence[float], guards: GuardOptions = GuardOptions()) -> Hallucination:
    """Characters per minute of non-speech and loop count over the system's outputs on non-speech files."""
    if len(texts) != len(durations_s):
        raise WhisperAdaptError(f"{len(texts)} texts but {len(durations_s)} durations")
    chars = sum(len(normalize_text(text)) for text in texts)
    loops = sum(count_loops(text, guards) for text in texts)
    return Hallucination(sum(durations_s) / 60.0, chars, loops)


def paired_bootstrap(
    references: Sequence[str], hyp_a: Sequence[str], hyp_b: Sequence[str], n: int = 2000, seed: int = 0,
    numerals: bool = False,
) -> tuple[float, float, float]:
    """Pooled CER of B minus pooled CER of A on the same clips, with a 95% percentile interval from
    `n` resamplings of the clips (each resample scores A and B on the same clips, hence "paired").

    With A the unadapted model and B an adapted one on general speech, a positive delta whose interval
    lies above 0 is forgetting; an interval that contains 0 is no measurable change.
    """
    _check_paired(references, hyp_a, hyp_b)
    if not references:
        raise WhisperAdaptError("paired bootstrap needs at least one clip")
    a = [char_edits(r, h, numerals) for r, h in zip(references, hyp_a)]
    b = [char_edits(r, h, numerals) for r, h in zip(references, hyp_b)]
    edits_a, edits_b = np.array([c.edits for c in a]), np.array([c.edits for c in b])
    lengths = np.array([c.reference_length for c in a])
    if lengths.sum() == 0:
        raise WhisperAdaptError("paired bootstrap needs reference text (all references are empty)")
    delta = (edits_b.sum() - edits_a.sum()) / lengths.sum()
    picks = np.random.default_rng(seed).integers(0, len(references), size=(n, len(references)))
    sample_lengths = lengths[picks].sum(axis=1)
    # A resample of only empty references has no CER; it says nothing about the difference: leave it out.
    valid = sample_lengths > 0
    deltas = (edits_b[picks].sum(axis=1) - edits_a[picks].sum(axis=1))[valid] / sample_lengths[valid]
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(delta), float(low), float(high)
