"""One shape for progress: every long operation reports `Progress` events to a `ProgressFn`, and the CLI
draws them with one renderer. Library code never prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    stage: str  # what is being done, as a person reads it: "cut meeting.wav", "encoding clips"
    done: float
    total: float | None = None  # None: length unknown (drawn as a spinner)
    unit: str = "items"  # what done and total count: "s" (seconds of audio), "clips", "steps" …
    note: str = ""  # a short live detail: "loss 0.412", "31 clips"


ProgressFn = Callable[[Progress], None]


def ignore(event: Progress) -> None:
    """The ProgressFn for callers that do not show progress."""
