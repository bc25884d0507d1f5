"""Parse-time checks of the CLI's option values: a bad value fails as a usage error before any work starts.

Ranges that click can state (`min=`, `max=`) are given on the options themselves in the cli package; these callbacks
cover the rest: open bounds, language codes, lists inside one option, and names that become file names.
Each passes an absent value (None) through and returns the value (normalized) or raises `typer.BadParameter`, which the CLI prints as one line.
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


def language_or_auto(value: str | None) -> str | None:
    return _language(value, allow_auto=True)


def language(value: str | None) -> str | None:
    return _language(value, allow_auto=False)


def _language(value: str | None, allow_auto: bool) -> str | None:
    from whisper_adapt.languages import AUTO, parse_language

    if value is None:
        return None
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


def plain_name(value: str | None) -> str | None:
    """A name used as one folder inside an output directory: it must not lead outside it."""
    if value is not None and (not _PLAIN_NAME.fullmatch(value) or ".." in value):
        raise typer.BadParameter(f"{value!r} must be a plain folder name (letters, digits, '.', '_', '-'; "
                                 "no path separators or '..')")
    return value


def system_specs(values: list[str] | None) -> list[tuple[str, str]] | None:
    """`NAME=MODEL` items as (name, model) pairs, each model a spec that exists here (checked now, not after
    decoding the baselines)."""
    from whisper_adapt.models import check_model_spec

    pairs = []
    for item in values or []:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise typer.BadParameter(f"{item!r}: expected NAME=MODEL, e.g. adapted=out/model-ct2")
        try:
            check_model_spec(spec.strip())
        except WhisperAdaptError as e:
            raise typer.BadParameter(f"{item!r}: {e}") from e
        pairs.append((name.strip(), spec.strip()))
    return pairs if values is not None else None


def layers(value: str | None) -> tuple[int, ...] | None:
    """Decoder layers as comma-separated integers (`-1,-2`). Refused with WhisperAdaptError, not
    BadParameter: its message names the option itself."""
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as e:
        raise WhisperAdaptError(f"--layers takes comma-separated integers such as -1,-2, not '{value}'") from e


def comma_list(value: str | None) -> list[str] | None:
    """The non-empty items of a comma-separated list."""
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def model_spec(value: str | None) -> str | None:
    from whisper_adapt.models import check_model_spec

    if value is None:
        return None
    try:
        check_model_spec(value)
    except WhisperAdaptError as e:
        raise typer.BadParameter(str(e)) from e
    return value


def export_layout(value: str | None) -> str | None:
    from whisper_adapt.transfer import EXPORT_LAYOUTS

    return _one_of(value, EXPORT_LAYOUTS)


def clip_status(value: str | None) -> str | None:
    from whisper_adapt.corpus import STATUSES

    return _one_of(value, STATUSES)


def _one_of(value: str | None, choices) -> str | None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value
