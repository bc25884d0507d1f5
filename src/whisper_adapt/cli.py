"""The `whisper-adapt` command: parses options, calls one public function per subcommand, prints with rich.

Heavy libraries (torch, transformers, faster-whisper) are imported inside the handlers so `--help` is instant.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from whisper_adapt.errors import WhisperAdaptError

app = typer.Typer(
    help="Teach Whisper your organization's words, then transcribe its meetings — on this machine only.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.callback()
def _commands() -> None:
    """Teach Whisper your organization's words, then transcribe its meetings — on this machine only."""


def sample_recording() -> Path:
    """The bundled 13-second Japanese sample (two voices) used by the quick start."""
    return Path(str(resources.files("whisper_adapt") / "data" / "sample_ja.m4a"))


ModelOpt = Annotated[
    str,
    typer.Option(help="Model: 'base' (packaged, offline), a CTranslate2 or Hugging Face directory, "
                      "an OpenAI .pt file, or a hub id (downloaded only when online)."),
]


@app.command()
def transcribe(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Audio or video files (wav, mp3, m4a, mp4, …).")] = None,
    model: ModelOpt = "base",
    language: Annotated[str, typer.Option(help="Spoken language code; 'auto' to detect per file.")] = "ja",
    formats: Annotated[str, typer.Option("--format", help="Comma-separated outputs: txt, srt, vtt, json.")] = "txt,srt,vtt,json",
    out: Annotated[Path, typer.Option(help="Directory for the transcripts (created if missing).")] = Path("transcripts"),
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary file: its misrecognitions are replaced by the terms.")] = None,
    prompt_glossary: Annotated[bool, typer.Option(help="Also give the glossary terms to Whisper as its initial prompt.")] = False,
    beam_size: Annotated[int, typer.Option(help="Beam width; 1 is greedy (fastest).")] = 5,
    batch_size: Annotated[int, typer.Option(help="0: sequential decoding; N: faster-whisper's batched pipeline, N windows at once.")] = 0,
    vad: Annotated[bool, typer.Option(help="Skip non-speech with Silero VAD before decoding (guards against hallucination).")] = True,
    word_timestamps: Annotated[bool, typer.Option(help="Add per-word times and probabilities to the JSON output.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    compute_type: Annotated[str, typer.Option(help="CTranslate2 compute type: auto (int8 on CPU, float16 on GPU), int8, float16, float32 …")] = "auto",
    sample: Annotated[bool, typer.Option("--sample", help="Also transcribe the bundled Japanese sample recording.")] = False,
) -> None:
    """Transcribe recordings to txt / srt / vtt / json, with guards against loops and silence hallucinations."""
    from whisper_adapt.glossary import load_glossary, prompt_text
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_files
    from whisper_adapt.writers import FORMATS

    inputs = list(files or []) + ([sample_recording()] if sample else [])
    if not inputs:
        raise WhisperAdaptError("no input files (give some, or --sample for the bundled recording)")
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise WhisperAdaptError(f"unknown format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    terms = load_glossary(glossary) if glossary else None
    options = TranscribeOptions(
        language=None if language == "auto" else language, beam_size=beam_size, batch_size=batch_size, vad=vad,
        word_timestamps=word_timestamps, initial_prompt=prompt_text(terms) if terms and prompt_glossary else None,
    )
    with console.status(f"loading model {model} …"):
        whisper = load_model(model, device=device, compute_type=compute_type)
    with _progress() as progress:
        result = transcribe_files(inputs, out, chosen, whisper, options, terms, _progress_callback(progress))
    for path in result.written:
        console.print(f"wrote {path}")
    _report_failures(result.failures, len(inputs))


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:>6.0f}/{task.total:.0f} s audio"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )


def _progress_callback(progress):
    tasks: dict[str, int] = {}

    def update(name: str, done_s: float, total_s: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(Path(name).name, total=total_s)
        progress.update(tasks[name], completed=done_s)

    return update


def _report_failures(failures: list[WhisperAdaptError], total: int) -> None:
    if not failures:
        return
    console.print(f"[red]{len(failures)} of {total} inputs failed:[/red]")
    for failure in failures:
        console.print(f"  [red]✗[/red] {failure}")
    raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status so tests can call it in-process."""
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of calling sys.exit.
        code = app(args=argv, standalone_mode=False)
    except WhisperAdaptError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    except Exception as e:  # click's usage errors arrive here with standalone_mode=False
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            console.print("[yellow]interrupted[/yellow]")
            return 130
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
