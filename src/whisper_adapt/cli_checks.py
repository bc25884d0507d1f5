"""Parse-time checks of the CLI's option values: a bad value fails as a usage error before any work starts.

Ranges that click can state (`min=`, `max=`) are given on the options themselves in cli.py; these callbacks
cover the rest: open bounds, language codes, lists inside one option, and names that become file names.
Each returns the value (normalized) or raises `typer.BadParameter`, which the CLI prints as one line.
"""

from __future__ import annotations

import re

import typer

from whisper_adapt.errors import WhisperAdaptError

# Names that become one folder or file name: no separators, no "..", nothing hidden.
_PLAIN_NAME = re.compile(r"[\w][\w.-]*")


def above_zero(value: float | None) -> float | None:
    if value is not None and not value > 0:  # `not >`: NaN is refused too
        raise typer.BadParameter(f"must be above 0, not {value:g}")
    return value


def language_or_auto(value: str) -> str:
    return _language(value, allow_auto=True)


def language(value: str) -> str:
    return _language(value, allow_auto=False)


def _language(value: str, allow_auto: bool) -> str:
    from whisper_adapt.languages import AUTO, parse_language

    try:
        return parse_language(value, allow_auto) or AUTO
    except WhisperAdaptError as e:
        raise typer.BadParameter(e.problem) from e


def output_formats(value: str) -> str:
    """A comma-separated list of transcript formats, at least one, all known."""
    from whisper_adapt.writers import FORMATS

    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        what = f"unknown format {', '.join(unknown)}" if unknown else "no format given"
        raise typer.BadParameter(f"{what}; choose from {', '.join(FORMATS)} (comma-separated)")
    return ",".join(dict.fromkeys(chosen))


def plain_name(value: str) -> str:
    """A name used as one folder inside an output directory: it must not lead outside it."""
    if not _PLAIN_NAME.fullmatch(value) or ".." in value:
        raise typer.BadParameter(f"{value!r} must be a plain folder name (letters, digits, '.', '_', '-'; "
                                 "no path separators or '..')")
    return value


def system_specs(values: list[str] | None) -> list[str] | None:
    """`NAME=MODEL` items, each model a spec that exists here (checked now, not after decoding the baselines)."""
    from whisper_adapt.models import check_model_spec

    for item in values or []:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise typer.BadParameter(f"{item!r}: expected NAME=MODEL, e.g. adapted=out/model-ct2")
        try:
            check_model_spec(spec.strip())
        except WhisperAdaptError as e:
            raise typer.BadParameter(f"{item!r}: {e}") from e
    return values


def model_spec(value: str) -> str:
    from whisper_adapt.models import check_model_spec

    try:
        check_model_spec(value)
    except WhisperAdaptError as e:
        raise typer.BadParameter(str(e)) from e
    return value


def export_layout(value: str) -> str:
    from whisper_adapt.transfer import EXPORT_LAYOUTS

    return _one_of(value, EXPORT_LAYOUTS)


def clip_status(value: str) -> str:
    from whisper_adapt.corpus import STATUSES

    return _one_of(value, STATUSES)


def _one_of(value: str, choices) -> str:
    if value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value
