"""The `whisper-adapt` command: parses options, calls one public function per subcommand, prints with rich.

Heavy libraries (torch, transformers, faster-whisper) are imported inside the handlers so `--help` is instant.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from whisper_adapt import cli_checks as check
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.resources import sample_recording

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


DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or auto.")]
ComputeTypeOpt = Annotated[
    str, typer.Option(help="CTranslate2 compute type: auto (int8 on CPU, float16 on GPU), int8, float16, float32 …")
]
ModelOpt = Annotated[
    str,
    typer.Option(help="Model: 'base' (packaged, offline), a CTranslate2 or Hugging Face directory, "
                      "an OpenAI .pt file, or a hub id (downloaded only when online)."),
]


@app.command()
def transcribe(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Audio or video files (wav, mp3, m4a, mp4, …).")] = None,
    model: ModelOpt = "base",
    language: Annotated[str, typer.Option(help="Spoken language code; 'auto' to detect per file.", callback=check.language_or_auto)] = "ja",
    formats: Annotated[str, typer.Option("--format", help="Comma-separated outputs: txt, srt, vtt, json, md (minutes).", callback=check.output_formats)] = "txt,srt,vtt,json",
    out: Annotated[Path, typer.Option(help="Directory for the transcripts (created if missing).")] = Path("transcripts"),
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary file: its misrecognitions are replaced by the terms.")] = None,
    prompt_glossary: Annotated[bool, typer.Option(help="Also give the glossary terms to Whisper as its initial prompt.")] = False,
    beam_size: Annotated[int, typer.Option(help="Beam width; 1 is greedy (fastest).", min=1)] = 5,
    batch_size: Annotated[int, typer.Option(help="0: sequential decoding; N: faster-whisper's batched pipeline, N windows at once.", min=0)] = 0,
    vad: Annotated[bool, typer.Option(help="Skip non-speech with Silero VAD before decoding (guards against hallucination).")] = True,
    word_timestamps: Annotated[bool, typer.Option(help="Add per-word times and probabilities to the JSON output.")] = False,
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
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
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_files
    inputs = list(files or []) + ([sample_recording()] if sample else [])
    if not inputs:
        raise WhisperAdaptError("no input files (give some, or --sample for the bundled recording)")
    chosen = formats.split(",")  # checked at parse time
    terms = load_glossary(glossary) if glossary else None
    labeller = None
    if speakers or any(o is not None for o in (num_speakers, min_speakers, max_speakers, speaker_names, voices)):
        from whisper_adapt.speakers import DiarizeOptions, SpeakerOptions, load_labeller

        bounds = DiarizeOptions()
        counts = DiarizeOptions(num_speakers, bounds.min_speakers if min_speakers is None else min_speakers,
                                bounds.max_speakers if max_speakers is None else max_speakers)
        with console.status("loading the speaker model …"):
            labeller = load_labeller(SpeakerOptions(counts, speaker_names, voices, voice_similarity))
    options = TranscribeOptions(
        language=None if language == "auto" else language, beam_size=beam_size, batch_size=batch_size, vad=vad,
        word_timestamps=word_timestamps or labeller is not None,
        initial_prompt=prompt_text(terms) if terms and prompt_glossary else None,
    )
    with console.status(f"loading model {escape(model)} …"):
        whisper = load_model(model, device=device, compute_type=compute_type)
    with _progress() as progress:
        result = transcribe_files(inputs, out, chosen, whisper, options, terms, _progress_callback(progress), labeller)
    for path in result.written:
        console.print(f"wrote {escape(str(path))}")
    _report_failures(result.failures, len(inputs))


@app.command()
def prepare(
    corpus: Annotated[Path, typer.Option(help="Corpus directory (created if missing).")],
    recordings: Annotated[Optional[list[Path]], typer.Argument(help="Recordings to cut into clips (any audio or video file).")] = None,
    model: ModelOpt = "base",
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary file: its terms are given to Whisper as the drafts' initial prompt.")] = None,
    redraft: Annotated[bool, typer.Option(help="Re-draft the unreviewed, unedited clips with --model (e.g. an adapted model).")] = False,
    draft: Annotated[bool, typer.Option(help="Draft transcripts after cutting (--no-draft: only cut clips).")] = True,
    beam_size: Annotated[int, typer.Option(help="Beam width for drafts; 1 is greedy (fastest).", min=1)] = 5,
    language: Annotated[str, typer.Option(help="Spoken language code of the recordings.", callback=check.language)] = "ja",
    min_clip_s: Annotated[float, typer.Option(help="Shortest clip, seconds.", callback=check.above_zero)] = 1.0,
    max_clip_s: Annotated[float, typer.Option(help="Longest clip, seconds (at most 30).", callback=check.above_zero, max=30.0)] = 30.0,
    min_silence_ms: Annotated[int, typer.Option(help="Shortest pause at which a clip may be cut, ms.", min=0)] = 300,
    pad_ms: Annotated[int, typer.Option(help="Silence kept before and after speech, ms.", min=0)] = 200,
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
) -> None:
    """Cut recordings into clips at pauses and draft their transcripts into a corpus (resumable)."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.prepare import DraftOptions, prepare as run_prepare
    from whisper_adapt.segment import SegmentOptions

    if not recordings and not redraft:
        raise WhisperAdaptError("no recordings given (or use --redraft to re-draft the corpus's clips)")
    segment = SegmentOptions(min_clip_s=min_clip_s, max_clip_s=max_clip_s, min_silence_ms=min_silence_ms, pad_ms=pad_ms)
    drafting = DraftOptions(model=model, language=language, beam_size=beam_size, device=device, compute_type=compute_type)
    terms = load_glossary(glossary) if glossary else None
    with _progress() as progress:
        result = run_prepare(list(recordings or []), corpus, segment, drafting if draft or redraft else None, terms,
                             redraft, _prepare_callback(progress))
    console.print(f"{result.clips_added} clips added from {result.recordings_added} new recordings, "
                  f"{result.clips_drafted} drafted; corpus: {escape(str(corpus))}")
    for line in [f"{path}: already in the corpus" for path in result.recordings_skipped] + result.notes:
        console.print(f"  [yellow]•[/yellow] {escape(line)}")
    if result.draft_failures:
        console.print(f"[red]{len(result.draft_failures)} clips could not be drafted:[/red]")
        for failure in result.draft_failures:
            console.print(f"  [red]✗[/red] {escape(str(failure))}")
    _report_failures(result.failures, len(recordings or []))
    if result.draft_failures:
        raise typer.Exit(1)


def _prepare_callback(progress):
    """Progress of prepare in audio seconds: one bar per recording being cut, one for drafting; the
    description counts clips and hours."""
    tasks: dict[str, int] = {}

    def update(task: str, done: float, total: float, note: str) -> None:
        name = f"cut {escape(task[4:])}" if task.startswith("cut:") else "draft"
        description = f"{name} · {note} · {done / 3600:.2f} h"
        if task not in tasks:
            tasks[task] = progress.add_task(description, total=total)
        progress.update(tasks[task], completed=done, total=total, description=description)

    return update


corpus_app = typer.Typer(help="Inspect, select from, import into and export a corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
CorpusArg = Annotated[Path, typer.Argument(help="Corpus directory.")]


@corpus_app.command("stats")
def corpus_stats(
    corpus: CorpusArg,
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary: count the reviewed clips that hold each term.")] = None,
) -> None:
    """Clips, hours and recordings by status, and glossary term coverage of the reviewed clips."""
    from rich.table import Table

    from whisper_adapt.corpus import open_corpus
    from whisper_adapt.glossary import load_glossary

    terms = load_glossary(glossary) if glossary else None
    with open_corpus(corpus) as store:
        stats = store.stats(terms)
    table = Table("status", "clips", "hours", title=f"{escape(str(corpus))}: {stats.recordings} recordings, {stats.drafted} clips drafted")
    for status, (count, hours) in stats.by_status.items():
        table.add_row(status, str(count), f"{hours:.2f}")
    table.add_row("all", str(stats.clips), f"{stats.hours:.2f}")
    Console().print(table)
    if terms is not None:
        coverage = Table("term", "reviewed clips", title="glossary term coverage")
        for term, count in stats.term_coverage.items():
            coverage.add_row(term, str(count))
        Console().print(coverage)


@corpus_app.command("select")
def corpus_select(
    corpus: CorpusArg,
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary for --general-share: which clips hold a term.")] = None,
    general_share: Annotated[Optional[float], typer.Option(help="With --glossary: only clips holding a term, plus this share of general clips (e.g. 0.3).", min=0.0, max=1.0)] = None,
    validation_share: Annotated[float, typer.Option(help="Share of clips held out for validation, whole recordings at a time.", min=0.0, max=1.0)] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed for the general clips and the split.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write the selection as audiofolder OUT/train and OUT/validation.")] = None,
) -> None:
    """Choose the training set: reviewed clips, optionally focused on glossary terms; split by recording."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.labeled import write_audiofolder
    from whisper_adapt.selection import select_training

    if general_share is not None and glossary is None:
        raise WhisperAdaptError("--general-share needs --glossary (general means: holding no term)")
    terms = load_glossary(glossary) if glossary else None
    selection = select_training(corpus, terms, general_share, validation_share, seed)
    console.print(f"train {len(selection.train)} clips, validation {len(selection.validation)} clips "
                  f"({selection.term_clips} with a glossary term, {selection.general_clips} general)")
    if validation_share and not selection.validation:
        console.print("[yellow]validation is empty: too few recordings to hold one out without leaking[/yellow]")
    if out is not None:
        for name, clips in (("train", selection.train), ("validation", selection.validation)):
            if clips:
                console.print(f"wrote {escape(str(write_audiofolder(clips, out / name)))}")


@corpus_app.command("import")
def corpus_import(
    corpus: CorpusArg,
    sources: Annotated[list[Path], typer.Argument(help="Labelled sets: JVS folders, audiofolders (metadata.csv), name.wav + name.txt folders, or corpora.")],
) -> None:
    """Import labelled sets as reviewed clips (audio resampled to 16 kHz mono); repeats add nothing."""
    from whisper_adapt.transfer import import_sets

    with console.status("importing …") as status:

        def update(source: str, done: int, total: int) -> None:
            status.update(f"import {Path(source).name}: {done}/{total} clips")

        result = import_sets(corpus, sources, update)
    console.print(f"{result.added} clips imported, {result.already_present} already in {escape(str(corpus))}")
    _report_failures(result.failures, len(sources))


@corpus_app.command("export")
def corpus_export(
    corpus: CorpusArg,
    out: Annotated[Path, typer.Option(help="Directory to write the set into.")],
    layout: Annotated[str, typer.Option("--format", help="jvs (OUT/GROUP/transcripts_utf8.txt + wav/) or audiofolder (metadata.csv).", callback=check.export_layout)] = "jvs",
    status: Annotated[str, typer.Option(help="Which clips: reviewed, draft or rejected.", callback=check.clip_status)] = "reviewed",
    group: Annotated[str, typer.Option(help="JVS group folder name (a plain name: it is made inside OUT).", callback=check.plain_name)] = "corpus",
) -> None:
    """Export the corpus's clips (by default the reviewed ones) as JVS or Hugging Face audiofolder."""
    from whisper_adapt.transfer import export_corpus

    written, count = export_corpus(corpus, out, layout, status, group)
    console.print(f"wrote {count} clips to {escape(str(written))}")


@app.command()
def train(
    corpus: Annotated[Path, typer.Option(help="Training clips: a corpus directory (its reviewed clips), a JVS folder, an audiofolder or name.wav+name.txt pairs.")],
    out: Annotated[Path, typer.Option(help="Run directory: the adapter goes to OUT/adapter, checkpoints and TensorBoard logs beside it.")],
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary: picks the clips holding terms and scores term recall each epoch.")] = None,
    model: ModelOpt = "base",
    method: Annotated[str, typer.Option(help="xattn (cross-attention k/v/out of chosen layers), lora, decoder or full.")] = "xattn",
    layers: Annotated[str, typer.Option(help="Decoder layers to adapt, negative from the end: '-1' is the last, '-1,-2' the last two (default, measured better than the last alone).")] = "-1,-2",
    preset: Annotated[Optional[str], typer.Option(help="'original': the published recipe (lr 5e-4, batch 2, 10 epochs, warmup 2), for comparison.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default 10). The default lr is tuned for 10: on the demo, 4 epochs forgot beyond the budget after the first, so only epoch 1 was kept.", min=1)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Clips per step (default 8).", min=1)] = None,
    grad_accum: Annotated[int, typer.Option(help="Steps to accumulate before each optimizer update.", min=1)] = 1,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW, linear decay), above 0 (default 5e-4).", callback=check.above_zero)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (default 0.01).", min=0.0)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Linear warm-up steps (default 2).", min=0)] = None,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank (method lora).", min=1)] = 8,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha (method lora).", min=1)] = 16,
    replay_share: Annotated[Optional[float], typer.Option(help="Share of the training set that is replayed general speech (limits forgetting) (default 0.5).", min=0.0, max=1.0)] = None,
    sound_alike_share: Annotated[Optional[float], typer.Option(help="Share of the replay chosen because it sounds like your terms (needs readings in the glossary); the rest is random (default 0).", min=0.0, max=1.0)] = None,
    distill: Annotated[Optional[float], typer.Option(help="Weight of self-distillation: wherever the unadapted model already predicts the right token, keep its distribution (limits forgetting); 0 turns it off (default 1).", min=0.0)] = None,
    general: Annotated[Optional[Path], typer.Option(help="General (glossary-free) speech for the forgetting check and the replay (default: the packaged set).")] = None,
    replay_rotation: Annotated[Optional[int], typer.Option(help="Distinct general clips replayed over the run, in epochs' worth: each epoch draws its replay anew from them; 1 replays the same clips every epoch (default 4).", min=1)] = None,
    replay_own: Annotated[bool, typer.Option("--replay-own", help="Also replay your reviewed clips that hold no term, drawn alongside the general speech (on the benchmark this protected everyday speech less, so it is off by default).")] = False,
    validation_share: Annotated[Optional[float], typer.Option(help="Share of your clips held out (whole recordings) to score each epoch (default 0.15).", min=0.0, max=1.0)] = None,
    all_clips: Annotated[bool, typer.Option("--all-clips", help="Train on every clip, not only those holding a glossary term.")] = False,
    forgetting_budget: Annotated[float, typer.Option(help="Largest everyday-speech CER rise an epoch (or the average) may cost to be kept (0.005 = 0.5 points).", min=0.0)] = 0.005,
    average_share: Annotated[Optional[float], typer.Option(help="Share of the last epochs whose weights are averaged into the model kept in preference to any single epoch (forgets less); 0 keeps the best single epoch (default 0.8).", min=0.0, max=1.0)] = None,
    term_weight: Annotated[Optional[float], typer.Option(help="Weight of the loss at the tokens that spell a glossary term, against 1 for every other token; 1 is plain cross-entropy (default 1).", callback=check.above_zero)] = None,
    timestamp_share: Annotated[float, typer.Option(help="Share of targets trained with timestamps (keeps long-form timing intact).", min=0.0, max=1.0)] = 0.5,
    augment: Annotated[bool, typer.Option(help="Also train on each clip as heard in other rooms (reverberation, other voices, noise, speed, band limit, codecs) and on clips where nobody speaks (--no-augment: the clips as they are).")] = True,
    variants: Annotated[Optional[int], typer.Option(help="Room variants rendered per clip (into OUT/variants); each epoch trains on the clean clip and one of them (default 2).", min=0)] = None,
    rir_dir: Annotated[Optional[Path], typer.Option(help="Folder of measured room impulse responses (WAV …) to use instead of synthetic rooms.", exists=True, file_okay=False)] = None,
    nonspeech_share: Annotated[Optional[float], typer.Option(help="Share of each epoch that is non-speech (room noise, murmur, typing, tones, near-silence) trained to Whisper's no-speech answer; 0 turns it off (default 0.1).", min=0.0, max=0.9)] = None,
    stack_on: Annotated[Optional[list[Path]], typer.Option(help="Adapters trained earlier, applied (frozen) before this one: a corpus per layer.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, the replay draw, the room variants and the shuffle.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last complete epoch in OUT after an interruption.")] = False,
    language: Annotated[str, typer.Option(help="Language of the speech.", callback=check.language)] = "ja",
) -> None:
    """Adapt Whisper to your words: a small adapter holding the last epochs' average, or the best epoch, within a forgetting budget."""
    from whisper_adapt.augment import AugmentOptions
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.train.assemble import AssembleOptions
    from whisper_adapt.train.methods import MethodOptions
    from whisper_adapt.train.recipe import Recipe, train_from_clips
    from whisper_adapt.train.trainer import PRESETS, TrainOptions
    from whisper_adapt.transfer import load_labeled_set

    if preset is not None and preset not in PRESETS:
        raise WhisperAdaptError(f"unknown preset '{preset}'; choose from {', '.join(PRESETS)}")
    given = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
                 distill=distill, average_share=average_share, term_weight=term_weight)
    settings = {**PRESETS.get(preset or "", {}), **{k: v for k, v in given.items() if v is not None}}
    acoustics = dict(variants=variants, nonspeech_share=nonspeech_share, rir_dir=str(rir_dir) if rir_dir else None)
    options = TrainOptions(method=method, method_options=MethodOptions(_layers(layers), lora_rank, lora_alpha),
                           grad_accum=grad_accum, forgetting_budget=forgetting_budget,
                           timestamp_share=timestamp_share, seed=seed, language=language,
                           augment=AugmentOptions(**{k: v for k, v in acoustics.items() if v is not None})
                           if augment else None, **settings)
    assembly = dict(replay_share=replay_share, validation_share=validation_share, sound_alike_share=sound_alike_share,
                    replay_rotation=replay_rotation)
    recipe = Recipe(options, AssembleOptions(terms_only=not all_clips, replay_own=replay_own, seed=seed,
                                             **{k: v for k, v in assembly.items() if v is not None}))
    terms = load_glossary(glossary) if glossary else None
    with _progress("{task.completed:>5.0f}/{task.total:.0f}") as progress:
        result = train_from_clips(model, load_labeled_set(corpus), terms, recipe, out,
                                  load_labeled_set(general) if general else None, tuple(stack_on or ()), resume,
                                  _train_callback(progress))
    _print_history(result.history + ([result.average] if result.average else []))
    if result.adapter_dir is None:
        console.print("[yellow]no epoch changed the model and beat the unadapted one within the forgetting budget: "
                      "no adapter written[/yellow]")
        raise typer.Exit(1)
    console.print(f"kept {_epochs_text(result.kept_epochs)}; adapter written to {escape(str(result.adapter_dir))}")


@app.command()
def review(
    corpus: Annotated[Path, typer.Option(help="Corpus directory whose clips to review.")],
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary: highlights terms and marks known misrecognitions with a one-key fix.")] = None,
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback requires a token.")] = "127.0.0.1",
    token: Annotated[Optional[str], typer.Option(envvar="WHISPER_ADAPT_TOKEN", help="Token every request must carry (generated when --host is not loopback; prefer the environment variable: a command line is visible to other users).")] = None,
    reviewer: Annotated[Optional[str], typer.Option(help="Name recorded with each correction (default: the OS user).")] = None,
) -> None:
    """Correct draft transcripts in the browser, keyboard only; every edit is saved as a revision."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.access import resolve_token
    from whisper_adapt.review.app import review_url, serve_review

    terms = load_glossary(glossary) if glossary else None
    required = resolve_token(host, token)
    console.print(f"reviewing {escape(str(corpus))}; open this address (Ctrl+C stops the server):")
    console.print(review_url(host, port, required), soft_wrap=True, highlight=False)  # one line, to copy whole
    serve_review(corpus, terms, host, port, required, reviewer)


@app.command()
def serve(
    model: Annotated[list[str], typer.Option(help="Model to serve: SPEC (as for transcribe) or NAME=SPEC; repeat for several. The first is the default, also answering to 'whisper-1'.")] = ["base"],
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    token: Annotated[Optional[str], typer.Option(envvar="WHISPER_ADAPT_TOKEN", help="API key clients must send as 'Authorization: Bearer …' (prefer the environment variable: a command line is visible to other users).")] = None,
    language: Annotated[str, typer.Option(help="Language when a request names none; 'auto' detects it (as OpenAI does).", callback=check.language_or_auto)] = "auto",
    beam_size: Annotated[int, typer.Option(help="Beam width; 1 is greedy (fastest).", min=1)] = 5,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload in MB (10^6 bytes); larger ones get 413.", callback=check.above_zero)] = 100.0,
    max_audio_minutes: Annotated[float, typer.Option(help="Longest accepted audio in minutes, found while decoding (a small file can hold hours of silence); longer gets 413.", callback=check.above_zero)] = 120.0,
    max_pending: Annotated[int, typer.Option(help="Requests transcribing or waiting at once; more get 429 with Retry-After.", min=1)] = 4,
    request_deadline_s: Annotated[float, typer.Option(help="Seconds a client has to send its upload; a slower one gets 408 and frees its place.", callback=check.above_zero)] = 120.0,
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
    speaker_names: Annotated[Optional[Path], typer.Option(help="File of 'S1: name' lines naming the speakers of diarized_json answers.")] = None,
    voices: Annotated[Optional[Path], typer.Option(help="Folder with one short recording per person (file name = name) naming the speakers of diarized_json answers.")] = None,
) -> None:
    """Serve OpenAI's audio transcription API (POST /v1/audio/transcriptions) on this machine; the
    diarized_json format labels speakers, offline."""
    from whisper_adapt.access import check_bind
    from whisper_adapt.serve import Limits, create_app, model_specs, preload, run_server
    from whisper_adapt.speakers import SpeakerOptions
    from whisper_adapt.transcribe import TranscribeOptions

    check_bind(host, token)
    specs = model_specs(model)
    options = TranscribeOptions(language=None if language == "auto" else language, beam_size=beam_size)
    limits = Limits(round(max_upload_mb * 1e6), max_audio_minutes * 60, request_deadline_s, max_pending)
    server = create_app(specs, next(iter(specs)), options, token, limits, device, compute_type,
                        SpeakerOptions(names_file=speaker_names, voices_dir=voices))
    with console.status(f"loading model {escape(next(iter(specs)))} …"):
        preload(server)
    console.print(f"serving {escape(', '.join(specs))} at http://{host}:{port}/v1"
                  + ("" if token else " (no token: loopback only)"))
    run_server(server, host, port)


@app.command()
def synth(
    glossary: Annotated[Path, typer.Option(help="Glossary file: terms with a reading are spoken by their reading.")],
    corpus: Annotated[Path, typer.Option(help="Corpus directory to add the clips to (created if missing).")],
    sentences: Annotated[Optional[Path], typer.Option(help="Sentences holding glossary terms, one per line.")] = None,
    templates: Annotated[Optional[Path], typer.Option(help="Lines with {term}: each filled with every glossary term.")] = None,
    voices: Annotated[str, typer.Option(help="Comma-separated TTS voices, cycled over the sentences (one recording each).")] = "jf_alpha,jm_kumo",
    seed: Annotated[int, typer.Option(help="Seed of the level and noise augmentation.")] = 0,
) -> None:
    """Speak sentences holding glossary terms with the offline TTS and add them as reviewed clips; repeats add nothing."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.synthcorpus import check_voices, expand_templates, read_sentences, synthesize_corpus

    if (sentences is None) == (templates is None):
        raise WhisperAdaptError("give exactly one of --sentences and --templates")
    voice_list = [voice.strip() for voice in voices.split(",") if voice.strip()]
    check_voices(voice_list)  # before the TTS model loads: a typo should fail at once
    terms = load_glossary(glossary)
    texts = read_sentences(sentences) if sentences is not None else expand_templates(templates, terms)
    with console.status("synthesizing …") as status:
        result = synthesize_corpus(corpus, terms, texts, voice_list, seed,
                                   lambda done, total: status.update(f"synthesizing {done}/{total}"))
    console.print(f"{result.added} clips synthesized, {result.already_present} already in {escape(str(corpus))}")
    if result.without_terms:
        console.print(f"[yellow]{result.without_terms} new sentences hold no glossary term[/yellow]")


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as e:
        raise WhisperAdaptError(f"--layers takes comma-separated integers such as -1,-2, not '{text}'") from e


def _train_callback(progress):
    from whisper_adapt.train.trainer import CACHE_STAGES

    tasks: dict[str, int] = {}

    def update(kind: str, payload: dict) -> None:
        if kind in CACHE_STAGES:
            if kind not in tasks:
                tasks[kind] = progress.add_task(CACHE_STAGES[kind], total=payload["total"])
            progress.update(tasks[kind], completed=payload["done"])
        elif kind == "step":
            name = f"epoch {payload['epoch']}"
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=payload["steps"])
            progress.update(tasks[name], completed=payload["step"],
                            description=f"{name} loss {payload['loss']:.3f} {payload['clips_per_s']:.1f} clips/s")
        elif kind == "epoch":
            progress.console.print(_epoch_line(payload))
        elif kind == "data":
            progress.console.print(_data_line(payload))

    return update


def _data_line(description: dict) -> str:
    return (f"training on {description['train_clips']} clips + {description['replay_clips']} replayed (drawn each "
            f"epoch from {description['replay_pool']}), validating on {description['validation_clips']} + "
            f"{description['general_clips']} general")


def _epochs_text(epochs: list[int]) -> str:
    return f"epoch {epochs[0]}" if len(epochs) == 1 else f"the average of epochs {epochs[0]}–{epochs[-1]}"


def _epoch_line(metrics: dict) -> str:
    parts = [f"epoch {metrics['epoch']}" if "epoch" in metrics else _epochs_text(metrics["epochs"])]
    for key, label in (("train_loss", "loss"), ("validation_cer", "val CER"), ("validation_term_recall", "term recall"),
                       ("general_cer", "general CER"), ("validation_loops", "loops"),
                       ("nonspeech_chars_per_min", "invented chars/min"), ("nonspeech_prob", "no-speech prob")):
        if metrics.get(key) is not None:
            parts.append(f"{label} {metrics[key]:.3f}" if isinstance(metrics[key], float) else f"{label} {metrics[key]}")
    return "  ".join(parts)


def _print_history(history: list[dict]) -> None:
    for metrics in history:
        console.print(_epoch_line(metrics))


@app.command()
def export(
    adapter: Annotated[list[Path], typer.Option(help="Adapter directory (a train OUT or OUT/adapter); repeat to merge stacked adapters in order.")],
    out: Annotated[Path, typer.Option(help="Output: a CTranslate2 model directory (merged Hugging Face model in OUT/hf).")],
    model: ModelOpt = "base",
    quantization: Annotated[str, typer.Option(help="float16 (default; GPU and CPU), int8 (smallest, fastest on CPU), int8_float16, float32.")] = "float16",
) -> None:
    """Merge adapters into the base and write a model faster-whisper loads as is; checks both decode alike."""
    from whisper_adapt.export import export_model

    adapters = [a / "adapter" if (a / "adapter" / "adapter.json").is_file() else a for a in adapter]
    with console.status("merging and converting …"):
        result = export_model(model, adapters, out, quantization)
    console.print(f"check clip — merged: {escape(result.hf_text)}")
    console.print(f"check clip — export: {escape(result.ct2_text)}  (CER {result.check_cer:.3f})")
    console.print(f"wrote {escape(str(result.out_dir))}: transcribe with --model {escape(str(result.out_dir))}")


def _progress(counter: str | None = "{task.completed:>6.0f}/{task.total:.0f} s audio"):
    """Progress bars; `counter=None` counts items and allows tasks of unknown length."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn(counter) if counter else MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )


def _progress_callback(progress):
    tasks: dict[str, int] = {}

    def update(name: str, done_s: float, total_s: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(escape(Path(name).name), total=total_s)
        progress.update(tasks[name], completed=done_s)

    return update


def _report_failures(failures: list[WhisperAdaptError], total: int) -> None:
    if not failures:
        return
    console.print(f"[red]{len(failures)} of {total} inputs failed:[/red]")
    for failure in failures:
        console.print(f"  [red]✗[/red] {escape(str(failure))}")
    raise typer.Exit(1)


@app.command("eval")
def eval_(
    test: Annotated[Path, typer.Option(help="Test set: a corpus directory (reviewed clips), a JVS folder, an audiofolder or wav+txt pairs.")],
    glossary: Annotated[Path, typer.Option(help="Glossary file: terms scored for recall; used as prompt, hotwords and dictionary.")],
    general: Annotated[Optional[Path], typer.Option(help="Everyday-speech set (same layouts): forgetting is its CER change vs the unadapted model.")] = None,
    nonspeech: Annotated[Optional[Path], typer.Option(help="Folder of audio without speech: what each system invents there.")] = None,
    longform: Annotated[Optional[Path], typer.Option(help="Folder of whole recordings, each with a reference of time spans (NAME.json list of {start, end, text}, or NAME.srt / NAME.vtt): long-form CER, text invented where nobody speaks, timestamps.")] = None,
    model: Annotated[str, typer.Option(help="The unadapted model every system is compared with (as for transcribe).", callback=check.model_spec)] = "base",
    system: Annotated[Optional[list[str]], typer.Option(help="Adapted system NAME=MODEL (a CTranslate2 or Hugging Face directory …); repeatable.", callback=check.system_specs)] = None,
    compare: Annotated[str, typer.Option(help="No-training baselines and add-ons, comma-separated: prompt, hotwords, dictionary.")] = "prompt,hotwords,dictionary",
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")] = Path("eval-report"),
    beam_size: Annotated[int, typer.Option(help="Beam width used for every system (temperature is fixed at 0).", min=1)] = 5,
    numerals: Annotated[bool, typer.Option(help="Score 三 and 3 (十五 and 15 …) as equal.")] = False,
    bootstrap: Annotated[int, typer.Option(help="Paired bootstrap resamples for the forgetting interval.", min=1)] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    perturb: Annotated[bool, typer.Option("--perturb", help="Also score the test set heard through rooms, other talkers, noise and codecs (training's augmentation chain, its own seed): clean and shifted side by side.")] = False,
    perturb_seed: Annotated[int, typer.Option(help="Seed of the --perturb chains.")] = 1,
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
) -> None:
    """Score the unadapted model, prompt and hotword biasing, adapted models and the dictionary side by side."""
    from rich.console import Console as StdoutConsole
    from rich.progress import Progress

    from whisper_adapt.eval_run import EvalOptions, plan_systems, run_evaluation
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.report import summary_table, write_report

    adapted = [tuple(part.strip() for part in item.split("=", 1)) for item in system or []]  # checked at parse time
    systems = plan_systems(model, adapted, [c.strip() for c in compare.split(",") if c.strip()], load_glossary(glossary))
    options = EvalOptions(beam_size=beam_size, device=device, compute_type=compute_type, numerals=numerals,
                          bootstrap_samples=bootstrap, seed=seed, perturb_seed=perturb_seed if perturb else None)
    with Progress(console=console) as progress:
        task = progress.add_task("decoding", total=None)
        report = run_evaluation(test, glossary, systems, general, nonspeech, options,
                                lambda what, done, total: progress.update(task, description=escape(what), completed=done, total=total),
                                longform=longform)
    # Piped into a file or a README, an 80-column default would wrap every figure: print it at full width.
    StdoutConsole(width=None if sys.stdout.isatty() else 200).print(summary_table(report))
    for path in write_report(report, out):
        console.print(f"wrote {escape(str(path))}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for everything the demo makes (speech, corpus, adapter, model, report, minutes).")] = Path("whisper-adapt-demo"),
    model: ModelOpt = "base",
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: train's default).", min=1)] = None,
    share: Annotated[float, typer.Option(help="Share of the demo's training sentences and meeting lines to use (1 = all; less is quicker).", callback=check.above_zero, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the meeting's pauses, the augmentation and training.")] = 0,
) -> None:
    """Run the whole loop on a fictional company, offline: Whisper misses its words, a short adaptation fixes them."""
    from rich.console import Console as StdoutConsole

    from whisper_adapt.demo import DemoOptions, run_demo
    from whisper_adapt.report import summary_table

    with _progress(None) as progress:
        result = run_demo(out, DemoOptions(model, share, epochs, seed), _stage_callback(progress))
    StdoutConsole(width=None if sys.stdout.isatty() else 200).print(summary_table(result.report))
    for name, (right, said) in result.meeting_terms.items():
        console.print(f"meeting minutes ({escape(name)}): {right} of {said} glossary terms written right")
    figures = result.speakers
    if "der" in figures:
        console.print(f"speakers: {figures['speakers_found']} found of {figures['participants']}, diarization error "
                      f"{figures['der']:.1%}, {figures['lines_named_right']} of {figures['lines']} lines under the "
                      "right name")
    elif figures:
        console.print(f"[yellow]speakers skipped: {escape(str(figures['skipped']))}[/yellow]")
    if result.adapter_dir is None:
        console.print("[yellow]no epoch beat the unadapted model within the forgetting budget: no adapter[/yellow]")
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.seconds.items())
    console.print(f"took {sum(result.seconds.values()) / 60:.1f} min ({stages})")
    console.print(escape(f"report: {out / 'report' / 'report.html'}   minutes: {out / 'minutes'}   model: {result.model_dir}"))


def _stage_callback(progress):
    """One bar per stage of the demo; a stage of unknown length shows as a spinner."""
    tasks: dict[str, int] = {}

    def update(what: str, done: int, total: int | None) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], completed=done, total=total)

    return update


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
