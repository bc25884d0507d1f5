"""The `whisper-adapt` command: parses options, calls one public function per subcommand, prints with rich.

One module per command family (transcribe, corpus, train, evaluate) holds the handlers; this one builds the
typer app from them and runs it. Heavy libraries (torch, transformers, faster-whisper) are imported inside
the handlers so `--help` is instant. An option left out arrives as None and takes the default of the
dataclass field or function parameter it feeds (`common.given`), so defaults are stated once; `--help`
reads them from there (`common.defaults_from`).
"""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.markup import escape

from whisper_adapt.cli import corpus, evaluate, train, transcribe
from whisper_adapt.cli.common import ShowsDefaults, console
from whisper_adapt.errors import WhisperAdaptError

app = typer.Typer(
    help="Teach Whisper your organization's words, then transcribe its meetings — on this machine only.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _commands() -> None:
    """Teach Whisper your organization's words, then transcribe its meetings — on this machine only."""


# ShowsDefaults: each option's help notes the default its dataclass field or function parameter holds.
app.command(cls=ShowsDefaults)(transcribe.transcribe)
app.command(cls=ShowsDefaults)(corpus.prepare)
corpus_app = typer.Typer(help="Inspect, select from, import into and export a corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
corpus_app.command("stats", cls=ShowsDefaults)(corpus.corpus_stats)
corpus_app.command("select", cls=ShowsDefaults)(corpus.corpus_select)
corpus_app.command("import", cls=ShowsDefaults)(corpus.corpus_import)
corpus_app.command("export", cls=ShowsDefaults)(corpus.corpus_export)
app.command(cls=ShowsDefaults)(train.train)
app.command(cls=ShowsDefaults)(corpus.review)
app.command(cls=ShowsDefaults)(transcribe.serve)
app.command(cls=ShowsDefaults)(corpus.synth)
app.command(cls=ShowsDefaults)(evaluate.export)
app.command("eval", cls=ShowsDefaults)(evaluate.eval_)
app.command(cls=ShowsDefaults)(evaluate.demo)


def _quiet_libraries() -> None:
    """Our progress bars say what is happening; the libraries' own weight-loading bars and deprecation
    notices (about their internals, not the user's input) would bury them. Set the variables to override."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status so tests can call it in-process."""
    _quiet_libraries()
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of calling sys.exit.
        code = app(args=argv, standalone_mode=False)
    except WhisperAdaptError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        return 2
    except (KeyboardInterrupt, typer.Abort):  # click turns Ctrl+C into Abort
        console.print("[yellow]interrupted[/yellow]")
        return 130
    except Exception as e:  # with standalone_mode=False click's usage errors arrive here
        if isinstance(e, _usage_error_types()):
            return _show_usage_error(e, sys.argv[1:] if argv is None else argv)
        raise
    return code if isinstance(code, int) else 0


def _usage_error_types() -> tuple[type[Exception], ...]:
    """The base class of click's usage errors in whichever click typer runs on: typer up to 0.2x raises
    click's own classes; later ones raise those of a copy they vendor (typer._click), which derive from
    typer.TyperException. Both are caught, so neither form of typer ends a typo in a traceback."""
    types: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click
    except ImportError:
        pass
    else:
        types.append(click.ClickException)
    return tuple(types)


def _show_usage_error(error: Exception, argv: list[str]) -> int:
    """One line naming the problem (click's "Did you mean …" included) and where to look, exit status 2."""
    if type(error).__name__ == "NoArgsIsHelpError":  # a command given without arguments shows its help
        error.show()
        return error.exit_code
    console.print(f"[red]error:[/red] {escape(error.format_message())}  (try '{_command_path(argv)} --help')",
                  highlight=False, soft_wrap=True)
    return getattr(error, "exit_code", 2)


def _command_path(argv: list[str]) -> str:
    """'whisper-adapt corpus export' for argv starting with those words: click's parser leaves some usage
    errors (an option missing its value) without a context that would say it."""
    command, path = typer.main.get_command(app), ["whisper-adapt"]
    for word in argv:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            break
        path.append(word)
    return " ".join(path)


if __name__ == "__main__":
    sys.exit(main())
