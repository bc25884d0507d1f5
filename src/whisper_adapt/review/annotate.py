"""What the review page points out in a clip, and the order in which clips are offered.

Spans are computed on the server, from the same glossary file the other stages read, so the page and
`transcribe --glossary` agree on what counts as a term and what a misrecognition replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from whisper_adapt.corpus import Clip
# The glossary's own matcher (longest first, ASCII word boundaries): reused so that a span marked here
# is exactly what apply_replacements would replace.
from whisper_adapt.glossary import Glossary, find_matches

# A word the decoder gave less than this probability is tinted and makes the clip "unsure". Whisper's
# word probabilities on clean speech sit mostly above 0.8; below one half a person should listen.
UNSURE_PROBABILITY = 0.5


@dataclass(frozen=True)
class Span:
    start: int  # character offsets into the text, end exclusive
    end: int
    kind: str  # "term" or "misrecognition"
    term: str  # the glossary term (for a misrecognition: what it should read)


@dataclass(frozen=True)
class QueueEntry:
    clip: Clip
    terms: tuple[str, ...]  # glossary terms this clip is about (written right or as a known misrecognition)
    fixes: int  # known misrecognitions in the current text
    unsure: int  # draft words below UNSURE_PROBABILITY

    @property
    def flagged(self) -> bool:
        return bool(self.terms or self.fixes or self.unsure)


def find_spans(text: str, glossary: Glossary | None) -> list[Span]:
    """Every glossary term and known misrecognition in `text`, left to right, never overlapping."""
    if glossary is None:
        return []
    return [Span(start, end, "term" if text[start:end] == term else "misrecognition", term)
            for start, end, term in find_matches(text, glossary)]


def queue_entry(clip: Clip, glossary: Glossary | None) -> QueueEntry:
    spans = find_spans(clip.text, glossary)
    terms = tuple(dict.fromkeys(span.term for span in spans))
    fixes = sum(span.kind == "misrecognition" for span in spans)
    unsure = sum(word.probability < UNSURE_PROBABILITY for word in clip.draft_words)
    return QueueEntry(clip, terms, fixes, unsure)


def order_queue(entries: list[QueueEntry]) -> list[QueueEntry]:
    """Drafts first, flagged drafts (terms, misrecognitions, unsure words) before the rest, then reviewed,
    then rejected; recording order within each group, so a person hears a meeting in sequence."""
    return sorted(entries, key=_group)  # stable: recording order is kept within a group


def _group(entry: QueueEntry) -> int:
    if entry.clip.status == "draft":
        return 0 if entry.flagged else 1
    return 2 if entry.clip.status == "reviewed" else 3
