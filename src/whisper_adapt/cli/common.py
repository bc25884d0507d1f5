"""What the command modules share: the console, the options several commands take, progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from whisper_adapt.errors import WhisperAdaptError

console = Console(stderr=True)

DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu, cuda or auto.")]
ComputeTypeOpt = Annotated[
    Optional[str],
    typer.Option(help="CTranslate2 compute type: auto (int8 on CPU, float16 on GPU), int8, float16, float32 …"),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(help="Model: 'base' (packaged, offline), a CTranslate2 or Hugging Face directory, "
                      "an OpenAI .pt file, or a hub id (downloaded only when online)."),
]


def given(**values) -> dict:
    """The options the user gave: an absent one (None) is left out, so it takes the default of the dataclass
    field or function parameter it feeds."""
    return {name: value for name, value in values.items() if value is not None}


def progress_bars(counter: str | None = "{task.completed:>6.0f}/{task.total:.0f} s audio"):
    """Progress bars; `counter=None` counts items and allows tasks of unknown length."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn(counter) if counter else MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )


def file_progress(progress):
    """One bar per file, in audio seconds."""
    tasks: dict[str, int] = {}

    def update(name: str, done_s: float, total_s: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(escape(Path(name).name), total=total_s)
        progress.update(tasks[name], completed=done_s)

    return update


def report_failures(failures: list[WhisperAdaptError], total: int) -> None:
    if not failures:
        return
    console.print(f"[red]{len(failures)} of {total} inputs failed:[/red]")
    for failure in failures:
        console.print(f"  [red]✗[/red] {escape(str(failure))}")
    raise typer.Exit(1)
