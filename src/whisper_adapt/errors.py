"""Our exceptions: each names the file (or thing) at fault and the problem, so the CLI can print one line."""

from __future__ import annotations

from pathlib import Path


class WhisperAdaptError(Exception):
    """A problem the user can fix; printed without a traceback."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class AudioError(WhisperAdaptError):
    """An input that cannot be decoded as audio."""


class TooLongError(AudioError):
    """Audio longer than the caller accepts (a server's limit): found while decoding, before the rest is."""


class ModelError(WhisperAdaptError):
    """A model spec that cannot be resolved, loaded or converted."""


class GlossaryError(WhisperAdaptError):
    """A glossary file with a malformed line."""


class CorpusError(WhisperAdaptError):
    """A corpus directory that is not ours, is busy, or is asked for something it does not hold."""


class ConflictError(CorpusError):
    """A clip changed since the caller read it (optimistic concurrency): reload and apply the edit again."""

    def __init__(self, problem: str, path: str | Path | None = None, current_version: int = 0):
        self.current_version = current_version
        super().__init__(problem, path)
