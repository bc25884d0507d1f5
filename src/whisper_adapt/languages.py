"""Whisper's spoken-language codes, checked in one place: by the CLI at parse time and by `serve` per request.

The list is the one Whisper's tokenizer was trained with (transformers keeps it as `LANGUAGES`); faster-whisper
fails deep inside decoding on a code outside it, so a typo is caught here before any work is done.
"""

from __future__ import annotations

from whisper_adapt.errors import WhisperAdaptError

AUTO = "auto"  # detect the language from the audio (per file, or per request)


def language_codes() -> dict[str, str]:
    """Whisper's language codes and their English names ("ja" → "japanese")."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES


def parse_language(value: str, allow_auto: bool = True) -> str | None:
    """`value` as a Whisper language code, or None for "auto" (where allowed); WhisperAdaptError otherwise."""
    code = value.strip().lower()
    if code == AUTO and allow_auto:
        return None
    if code not in language_codes():
        choices = ", ".join(sorted(language_codes()))
        auto = f"'{AUTO}' (detect it) or " if allow_auto else ""
        raise WhisperAdaptError(f"unknown language {value!r}: give {auto}one of Whisper's codes ({choices})")
    return code


def language_name(code: str) -> str:
    """The English name Whisper's tokenizer gives `code` ("japanese"), or the code itself if it has none."""
    return language_codes().get(code, code)
