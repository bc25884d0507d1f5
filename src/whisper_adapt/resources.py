"""Files shipped inside the package (`data/`): the quick start's sample, the demo company, the general set.

Only this module knows where they lie, so any stage, test or benchmark may use them without importing the
stage that happens to use them most (the CLI, the demo, training). The packaged Whisper weights come from
other packages and are `models.py`'s business.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _data(*parts: str) -> Path:
    return Path(str(files("whisper_adapt") / "data")).joinpath(*parts)


def sample_recording() -> Path:
    """The bundled 12-second Japanese sample (two voices) used by the quick start."""
    return _data("sample_ja.m4a")


def demo_file(name: str) -> Path:
    """A file of the demo's fictional company (data/demo): its glossary, sentences, meeting script, and
    `speech`, the recordings of everything it says (scripts/make_demo_speech.py)."""
    return _data("demo", name)


def general_set_folder() -> Path:
    """The packaged general set: everyday sentences in four synthetic voices, as an audiofolder."""
    return _data("general_ja")
