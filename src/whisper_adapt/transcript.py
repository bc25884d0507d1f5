"""What a transcription produces: segments with timings and the decoder's confidence figures, and who
spoke each segment and word when speakers were asked for (`speaker` None otherwise)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    words: tuple[Word, ...] = ()
    speaker: str | None = None


@dataclass(frozen=True)
class Transcript:
    """One recording's transcription; `dropped` keeps what the guards removed and why, for inspection."""

    source: str
    language: str
    duration_s: float
    segments: tuple[Segment, ...]
    dropped: tuple[tuple[Segment, str], ...] = field(default=())
    recorded_on: str | None = None  # ISO date of the recording, for the minutes' heading

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)

    @property
    def drop_counts(self) -> dict[str, int]:
        """How many segments each guard rule dropped; a reason starts with its rule's name and a colon."""
        return dict(Counter(reason.partition(":")[0] for _, reason in self.dropped))
