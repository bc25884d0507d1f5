"""One shape for progress: every long operation reports `Progress` events to a `ProgressFn`, and the CLI
draws them with one renderer. Library code never prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace


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


def prefixed(on_progress: ProgressFn, prefix: str) -> ProgressFn:
    """`on_progress` with `prefix` before each event's stage: how a stage passes on the progress of the work it
    calls ("train: encoding clips")."""
    return lambda event: on_progress(replace(event, stage=f"{prefix}{event.stage}"))


def counter(on_progress: ProgressFn, stage: str, total: float | None, unit: str = "items") -> Callable[[float], None]:
    """A function that counts `n` more done of `total` and reports it: for loops that know only their step."""
    done = [0.0]

    def advance(n: float = 1) -> None:
        done[0] += n
        on_progress(Progress(stage, done[0], total, unit))

    return advance
