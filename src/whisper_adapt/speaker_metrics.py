"""Scoring speaker labels against a reference: diarization error rate, speaker-attributed CER, and
whether the number of speakers came out right.

Reference spans are plain tuples `(start_s, end_s, speaker, text)`, as a long-form set's reference gives
them; hypotheses are `(start_s, end_s, speaker)` turns for DER and labelled transcript segments for CER.
Labels on the two sides need not agree (S1 may be 田中): both metrics map hypothesis speakers to reference
speakers first, one to one, the way that errs least.

DER is pyannote.metrics' `DiarizationErrorRate`, overlapped speech counted. `collar_s` follows NIST's
md-eval: that many seconds either side of each reference boundary are not scored (pyannote's `collar`
is the collar's total width, so it is given twice `collar_s`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.evaluate import char_edits
from whisper_adapt.transcript import Segment

ReferenceSpan = tuple[float, float, str | None, str]  # start_s, end_s, speaker (None: unknown), text
HypothesisTurn = tuple[float, float, str]
DEFAULT_COLLAR_S = 0.25


@dataclass(frozen=True)
class DiarizationScore:
    """Error shares of the scored reference speech (overlap counted once per speaker)."""

    error_rate: float
    missed: float
    false_alarm: float
    confusion: float
    scored_s: float
    reference_speakers: int
    hypothesis_speakers: int

    @property
    def count_right(self) -> bool:
        return self.reference_speakers == self.hypothesis_speakers


def diarization_error(reference: Sequence[ReferenceSpan], hypothesis: Sequence[HypothesisTurn],
                      collar_s: float = DEFAULT_COLLAR_S, duration_s: float | None = None) -> DiarizationScore:
    """DER of `hypothesis` turns against the reference spans (every span must name its speaker).
    `duration_s` bounds the scored time (default: from the first to the last turn of either side)."""
    from pyannote.core import Annotation, Segment as Span, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    if collar_s < 0:
        raise WhisperAdaptError(f"the collar cannot be negative, got {collar_s}")
    truth, guess = Annotation(), Annotation()
    for index, (start, end, speaker, _) in enumerate(_named(reference)):
        truth[Span(start, end), index] = speaker
    for index, (start, end, speaker) in enumerate(hypothesis):
        if end > start:
            guess[Span(start, end), index] = speaker
    extent = duration_s if duration_s is not None else max([0.0] + [s[1] for s in reference] + [t[1] for t in hypothesis])
    metric = DiarizationErrorRate(collar=2 * collar_s, skip_overlap=False)
    parts = metric(truth, guess, uem=Timeline([Span(0.0, max(extent, 1e-3))]), detailed=True)
    total = parts["total"] or 1.0
    return DiarizationScore(
        error_rate=parts["diarization error rate"] if parts["total"] else 0.0,
        missed=parts["missed detection"] / total, false_alarm=parts["false alarm"] / total,
        confusion=parts["confusion"] / total, scored_s=parts["total"],
        reference_speakers=len(truth.labels()), hypothesis_speakers=len(guess.labels()),
    )


def turns_of(segments: Sequence[Segment]) -> list[HypothesisTurn]:
    """Labelled transcript segments as hypothesis turns (by their words' times where they have words)."""
    turns = []
    for segment in segments:
        for piece in segment.words or (segment,):
            if piece.speaker is not None:
                turns.append((piece.start_s, piece.end_s, piece.speaker))
    return turns


def speaker_attributed_cer(reference: Sequence[ReferenceSpan], hypothesis: Sequence[Segment]) -> float:
    """Concatenated minimum-permutation CER (cpWER on characters): each speaker's words joined in time
    order on both sides, hypothesis speakers mapped one to one onto reference speakers so that the
    character edits are fewest; an unmatched speaker's text counts whole as deletions or insertions.
    Σ edits / Σ reference characters, after the normalization CER uses elsewhere."""
    from scipy.optimize import linear_sum_assignment

    truth = _texts_by_speaker([(s, e, who, text) for s, e, who, text in _named(reference)])
    guess = _texts_by_speaker([(s.start_s, s.end_s, s.speaker or "", s.text) for s in hypothesis])
    names, labels = list(truth), list(guess)
    size = max(len(names), len(labels))
    cost = [[_edits(truth.get(_at(names, i), ""), guess.get(_at(labels, j), "")) for j in range(size)]
            for i in range(size)]
    rows, columns = linear_sum_assignment(cost)
    characters = sum(char_edits(text, "").reference_length for text in truth.values())
    return sum(cost[r][c] for r, c in zip(rows, columns)) / max(characters, 1)


def speaker_count_accuracy(scores: Sequence[DiarizationScore]) -> float:
    """Share of recordings whose number of speakers was found exactly."""
    return sum(score.count_right for score in scores) / len(scores) if scores else 0.0


def _named(reference: Sequence[ReferenceSpan]) -> list[tuple[float, float, str, str]]:
    unnamed = [span for span in reference if not span[2]]
    if unnamed:
        start, end = unnamed[0][0], unnamed[0][1]
        raise WhisperAdaptError(f"{len(unnamed)} reference spans name no speaker (the first at {start:.1f}–{end:.1f} s); "
                                "speaker scores need every span's speaker")
    return [(float(s), float(e), str(who), text) for s, e, who, text in reference]


def _texts_by_speaker(spans: list[tuple[float, float, str, str]]) -> dict[str, str]:
    texts: dict[str, list[str]] = {}
    for _, _, speaker, text in sorted(spans, key=lambda span: span[0]):
        texts.setdefault(speaker, []).append(text)
    return {speaker: "".join(parts) for speaker, parts in texts.items()}


def _at(items: list[str], index: int) -> str | None:
    return items[index] if index < len(items) else None


def _edits(reference: str, hypothesis: str) -> int:
    return char_edits(reference, hypothesis).edits
