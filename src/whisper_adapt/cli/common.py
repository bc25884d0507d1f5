"""What the command modules share: the console, the options several commands take, progress bars, and the
command class whose --help shows the defaults that the dataclasses and functions hold."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Optional, Union

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.progress import Progress as ProgressEvent
from whisper_adapt.progress import ProgressFn

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


# Where an option's default lives: "module:Owner.name" (a dataclass field or a function parameter) or
# "module:NAME" (a constant), alone or with a function from that value to the option's (MB from bytes …).
Source = Union[str, tuple[str, Callable[[Any], Any]]]


def defaults_from(**sources: Source):
    """Marks a handler with the source of each option it leaves None; `ShowsDefaults` reads them for --help."""
    def mark(handler):
        handler.defaults_from = sources
        return handler

    return mark


def source_default(source: Source) -> Any:
    """The value at `source` now; a tuple (layers, voices …) as the comma-separated text the option takes."""
    reference, convert = (source, None) if isinstance(source, str) else source
    module, _, path = reference.partition(":")
    *outer, name = path.split(".")
    owner = importlib.import_module(module)
    for part in outer:
        owner = getattr(owner, part)
    if dataclasses.is_dataclass(owner):
        field = {field.name: field for field in dataclasses.fields(owner)}[name]
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    elif inspect.isfunction(owner):
        value = inspect.signature(owner).parameters[name].default
    else:
        value = getattr(owner, name)
    value = convert(value) if convert else value
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value


class ShowsDefaults(TyperCommand):
    """A command whose --help notes `[default: …]` for the options its handler leaves None, read from their
    sources only while help is formatted: train's, export's and eval's import torch, which a command not
    asked for help must not pay for at start."""

    def format_help(self, ctx, formatter) -> None:
        sources = getattr(inspect.unwrap(self.callback), "defaults_from", {})
        left_out = {param: param.show_default for param in self.params if param.default is None}
        # The value goes in as the default, not as a show_default text: typer prints a text as '(5)', and
        # names a flag's default (vad / no-vad) from the default alone.
        for param in left_out:
            param.default = source_default(sources[param.name]) if param.name in sources else None
            param.show_default = param.default is not None  # typer before 0.13 would print [default: None]
        try:
            super().format_help(ctx, formatter)
        finally:  # the help shown, the option is None again: absent, the source decides
            for param, shown in left_out.items():
                param.default, param.show_default = None, shown


@contextlib.contextmanager
def showing_progress() -> Iterator[ProgressFn]:
    """The one progress renderer: a bar per stage (a spinner while its length is unknown), its note beside
    its name and its count in the stage's unit. Every command hands the function it yields to the stage
    module it calls."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    tasks: dict[str, int] = {}

    def show(event: ProgressEvent) -> None:
        description = escape(f"{event.stage} · {event.note}" if event.note else event.stage)
        count = (f"{event.done:.0f}/{event.total:.0f} {event.unit}" if event.total is not None
                 else f"{event.done:.0f} {event.unit}" if event.done else "")
        if event.stage not in tasks:
            tasks[event.stage] = bars.add_task(description, total=event.total, count=count)
        bars.update(tasks[event.stage], completed=event.done, total=event.total, description=description, count=count)

    with bars:
        yield show


def report_failures(failures: list[WhisperAdaptError], total: int) -> None:
    if not failures:
        return
    console.print(f"[red]{len(failures)} of {total} inputs failed:[/red]")
    for failure in failures:
        console.print(f"  [red]✗[/red] {escape(str(failure))}")
    raise typer.Exit(1)
