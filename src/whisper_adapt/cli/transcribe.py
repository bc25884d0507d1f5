"""The commands that transcribe: `transcribe` (files) and `serve` (OpenAI's transcription API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from whisper_adapt import cli_checks as check
from whisper_adapt.cli.common import (ComputeTypeOpt, DeviceOpt, ModelOpt, console, defaults_from, given,
                                      report_failures, showing_progress)
from whisper_adapt.errors import WhisperAdaptError

OPTIONS = "whisper_adapt.transcribe:TranscribeOptions"
LIMITS = "whisper_adapt.serve:Limits"


@defaults_from(model="whisper_adapt.models:PACKAGED_BASE", language=f"{OPTIONS}.language",
               beam_size=f"{OPTIONS}.beam_size", batch_size=f"{OPTIONS}.batch_size", vad=f"{OPTIONS}.vad",
               word_timestamps=f"{OPTIONS}.word_timestamps", device="whisper_adapt.transcribe:load_model.device",
               compute_type="whisper_adapt.transcribe:load_model.compute_type")
def transcribe(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Audio or video files (wav, mp3, m4a, mp4, …).")] = None,
    model: ModelOpt = None,
    language: Annotated[Optional[str], typer.Option(help="Spoken language code; 'auto' to detect per file.", callback=check.language_or_auto)] = None,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated outputs: txt, srt, vtt, json, md (minutes).", callback=check.output_formats)] = "txt,srt,vtt,json",
    out: Annotated[Path, typer.Option(help="Directory for the transcripts (created if missing).")] = Path("transcripts"),
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary file: its misrecognitions are replaced by the terms.")] = None,
    prompt_glossary: Annotated[bool, typer.Option(help="Also give the glossary terms to Whisper as its initial prompt (faster-whisper conditions only the first stretch of speech of each 5-minute window on it).")] = False,
    beam_size: Annotated[Optional[int], typer.Option(help="Beam width; 1 is greedy (fastest).", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="0: sequential decoding; N: faster-whisper's batched pipeline, N windows at once.", min=0)] = None,
    vad: Annotated[Optional[bool], typer.Option(help="Skip non-speech with Silero VAD before decoding (guards against hallucination).")] = None,
    word_timestamps: Annotated[Optional[bool], typer.Option(help="Add per-word times and probabilities to the JSON output.")] = None,
    device: DeviceOpt = None,
    compute_type: ComputeTypeOpt = None,
    sample: Annotated[bool, typer.Option("--sample", help="Also transcribe the bundled Japanese sample recording.")] = False,
    speakers: Annotated[bool, typer.Option("--speakers", help="Label who speaks (S1, S2, … in order of first appearance), offline; turns on word timestamps so a segment is split where the speaker changes.")] = False,
    num_speakers: Annotated[Optional[int], typer.Option(help="The number of speakers, when known (implies --speakers).")] = None,
    min_speakers: Annotated[Optional[int], typer.Option(help="At least this many speakers when the count is estimated (default 1; implies --speakers).")] = None,
    max_speakers: Annotated[Optional[int], typer.Option(help="At most this many speakers when the count is estimated (default 10; implies --speakers).")] = None,
    speaker_names: Annotated[Optional[Path], typer.Option(help="File of 'S1: name' lines naming the labels (implies --speakers).")] = None,
    voices: Annotated[Optional[Path], typer.Option(help="Folder with one short recording per person, file name = name: speakers whose voice matches are named (implies --speakers).")] = None,
    voice_similarity: Annotated[Optional[float], typer.Option(help="Cosine similarity a speaker's voice needs to a reference voice to take its name (default 0.65).")] = None,
) -> None:
    """Transcribe recordings to txt / srt / vtt / json / md minutes, with guards against loops and silence
    hallucinations, and optionally who spoke."""
    from whisper_adapt.glossary import load_glossary, prompt_text
    from whisper_adapt.models import PACKAGED_BASE
    from whisper_adapt.resources import sample_recording
    from whisper_adapt.speakers import DiarizeOptions, SpeakerOptions
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_files

    inputs = list(files or []) + ([sample_recording()] if sample else [])
    if not inputs:
        raise WhisperAdaptError("no input files (give some, or --sample for the bundled recording)")
    terms = load_glossary(glossary) if glossary else None
    labeller = None
    if speakers or any(o is not None for o in (num_speakers, min_speakers, max_speakers, speaker_names, voices)):
        counts = DiarizeOptions(**given(num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers))
        labeller = _load_labeller(SpeakerOptions(**given(diarize=counts, names_file=speaker_names, voices_dir=voices,
                                                         min_voice_similarity=voice_similarity)))
    options = TranscribeOptions(**_language(language), **given(
        beam_size=beam_size, batch_size=batch_size, vad=vad, word_timestamps=True if labeller is not None else word_timestamps,
        initial_prompt=prompt_text(terms) if terms and prompt_glossary else None))
    spec = model or PACKAGED_BASE
    with console.status(f"loading model {escape(spec)} …"):
        whisper = load_model(spec, **given(device=device, compute_type=compute_type))
    with showing_progress() as progress:
        result = transcribe_files(inputs, out, formats.split(","), whisper, options, terms, progress, labeller)
    for path in result.written:
        console.print(f"wrote {escape(str(path))}")
    report_failures(result.failures, len(inputs))


def _load_labeller(options):
    from whisper_adapt.speakers import load_labeller

    with console.status("loading the speaker model …"):
        return load_labeller(options)


def _language(value: str | None) -> dict:
    """TranscribeOptions' language as given: 'auto' detects (None), absent keeps the field's default."""
    from whisper_adapt.languages import AUTO

    return {} if value is None else {"language": None if value == AUTO else value}


@defaults_from(model="whisper_adapt.models:PACKAGED_BASE", beam_size=f"{OPTIONS}.beam_size",
               max_upload_mb=(f"{LIMITS}.max_upload_bytes", lambda size: size / 1e6),
               max_audio_minutes=(f"{LIMITS}.max_audio_s", lambda seconds: seconds / 60),
               max_pending=f"{LIMITS}.max_pending", request_deadline_s=f"{LIMITS}.request_deadline_s",
               device="whisper_adapt.serve:create_app.device", compute_type="whisper_adapt.serve:create_app.compute_type")
def serve(
    model: Annotated[Optional[list[str]], typer.Option(help="Model to serve: SPEC (as for transcribe) or NAME=SPEC; repeat for several. The first is the default, also answering to 'whisper-1'.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    token: Annotated[Optional[str], typer.Option(envvar="WHISPER_ADAPT_TOKEN", help="API key clients must send as 'Authorization: Bearer …' (prefer the environment variable: a command line is visible to other users).")] = None,
    language: Annotated[str, typer.Option(help="Language when a request names none; 'auto' detects it (as OpenAI does).", callback=check.language_or_auto)] = "auto",
    beam_size: Annotated[Optional[int], typer.Option(help="Beam width; 1 is greedy (fastest).", min=1)] = None,
    max_upload_mb: Annotated[Optional[float], typer.Option(help="Largest accepted upload in MB (10^6 bytes); larger ones get 413.", callback=check.above_zero)] = None,
    max_audio_minutes: Annotated[Optional[float], typer.Option(help="Longest accepted audio in minutes, found while decoding (a small file can hold hours of silence); longer gets 413.", callback=check.above_zero)] = None,
    max_pending: Annotated[Optional[int], typer.Option(help="Requests transcribing or waiting at once; more get 429 with Retry-After.", min=1)] = None,
    request_deadline_s: Annotated[Optional[float], typer.Option(help="Seconds a client has to send its upload; a slower one gets 408 and frees its place.", callback=check.above_zero)] = None,
    device: DeviceOpt = None,
    compute_type: ComputeTypeOpt = None,
    speaker_names: Annotated[Optional[Path], typer.Option(help="File of 'S1: name' lines naming the speakers of diarized_json answers.")] = None,
    voices: Annotated[Optional[Path], typer.Option(help="Folder with one short recording per person (file name = name) naming the speakers of diarized_json answers.")] = None,
) -> None:
    """Serve OpenAI's audio transcription API (POST /v1/audio/transcriptions) on this machine; the
    diarized_json format labels speakers, offline."""
    from whisper_adapt.access import check_bind
    from whisper_adapt.models import PACKAGED_BASE
    from whisper_adapt.serve import Limits, create_app, model_specs, preload, run_server
    from whisper_adapt.speakers import SpeakerOptions
    from whisper_adapt.transcribe import TranscribeOptions

    check_bind(host, token)
    specs = model_specs(model or [PACKAGED_BASE])
    options = TranscribeOptions(**_language(language), **given(beam_size=beam_size))
    limits = Limits(**given(
        max_upload_bytes=None if max_upload_mb is None else round(max_upload_mb * 1e6),
        max_audio_s=None if max_audio_minutes is None else max_audio_minutes * 60,
        request_deadline_s=request_deadline_s, max_pending=max_pending))
    server = create_app(specs, next(iter(specs)), options, token, limits,
                        speakers=SpeakerOptions(**given(names_file=speaker_names, voices_dir=voices)),
                        **given(device=device, compute_type=compute_type))
    with console.status(f"loading model {escape(next(iter(specs)))} …"):
        preload(server)
    console.print(f"serving {escape(', '.join(specs))} at http://{host}:{port}/v1"
                  + ("" if token else " (no token: loopback only)"))
    run_server(server, host, port)
