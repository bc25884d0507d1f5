"""The commands that build a corpus: `prepare`, `review`, `synth` and the `corpus` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from whisper_adapt import cli_checks as check
from whisper_adapt.cli.common import (ComputeTypeOpt, DeviceOpt, ModelOpt, console, defaults_from, given,
                                      report_failures, showing_progress)
from whisper_adapt.errors import WhisperAdaptError

DRAFT = "whisper_adapt.prepare:DraftOptions"
SEGMENT = "whisper_adapt.segment:SegmentOptions"

CorpusArg = Annotated[Path, typer.Argument(help="Corpus directory.")]


@defaults_from(model=f"{DRAFT}.model", redraft="whisper_adapt.prepare:prepare.redraft",
               draft=("whisper_adapt.prepare:prepare.draft", lambda drafting: drafting is not None),
               beam_size=f"{DRAFT}.beam_size", language=f"{DRAFT}.language", min_clip_s=f"{SEGMENT}.min_clip_s",
               max_clip_s=f"{SEGMENT}.max_clip_s", min_silence_ms=f"{SEGMENT}.min_silence_ms",
               pad_ms=f"{SEGMENT}.pad_ms", device=f"{DRAFT}.device", compute_type=f"{DRAFT}.compute_type")
def prepare(
    corpus: Annotated[Path, typer.Option(help="Corpus directory (created if missing).")],
    recordings: Annotated[Optional[list[Path]], typer.Argument(help="Recordings to cut into clips (any audio or video file).")] = None,
    model: ModelOpt = None,
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary file: its terms are given to Whisper as the drafts' initial prompt.")] = None,
    redraft: Annotated[Optional[bool], typer.Option(help="Re-draft the unreviewed, unedited clips with --model (e.g. an adapted model).")] = None,
    draft: Annotated[Optional[bool], typer.Option(help="Draft transcripts after cutting (--no-draft: only cut clips).")] = None,
    beam_size: Annotated[Optional[int], typer.Option(help="Beam width for drafts; 1 is greedy (fastest).", min=1)] = None,
    language: Annotated[Optional[str], typer.Option(help="Spoken language code of the recordings.", callback=check.language)] = None,
    min_clip_s: Annotated[Optional[float], typer.Option(help="Shortest clip, seconds.", callback=check.above_zero)] = None,
    max_clip_s: Annotated[Optional[float], typer.Option(help="Longest clip, seconds (at most 30).", callback=check.above_zero, max=30.0)] = None,
    min_silence_ms: Annotated[Optional[int], typer.Option(help="Shortest pause at which a clip may be cut, ms.", min=0)] = None,
    pad_ms: Annotated[Optional[int], typer.Option(help="Silence kept before and after speech, ms.", min=0)] = None,
    device: DeviceOpt = None,
    compute_type: ComputeTypeOpt = None,
) -> None:
    """Cut recordings into clips at pauses and draft their transcripts into a corpus (resumable)."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.prepare import DraftOptions, prepare as run_prepare
    from whisper_adapt.segment import SegmentOptions

    if not recordings and not redraft:
        raise WhisperAdaptError("no recordings given (or use --redraft to re-draft the corpus's clips)")
    segment = SegmentOptions(**given(min_clip_s=min_clip_s, max_clip_s=max_clip_s, min_silence_ms=min_silence_ms,
                                     pad_ms=pad_ms))
    drafting = DraftOptions(**given(model=model, language=language, beam_size=beam_size, device=device,
                                    compute_type=compute_type))
    terms = load_glossary(glossary) if glossary else None
    with showing_progress() as progress:
        result = run_prepare(list(recordings or []), corpus, segment, drafting if draft is not False or redraft else None,
                             terms, **given(redraft=redraft), on_progress=progress)
    console.print(f"{result.clips_added} clips added from {result.recordings_added} new recordings, "
                  f"{result.clips_drafted} drafted; corpus: {escape(str(corpus))}")
    for line in [f"{path}: already in the corpus" for path in result.recordings_skipped] + result.notes:
        console.print(f"  [yellow]•[/yellow] {escape(line)}")
    if result.draft_failures:
        console.print(f"[red]{len(result.draft_failures)} clips could not be drafted:[/red]")
        for failure in result.draft_failures:
            console.print(f"  [red]✗[/red] {escape(str(failure))}")
    report_failures(result.failures, len(recordings or []))
    if result.draft_failures:
        raise typer.Exit(1)


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


@defaults_from(validation_share="whisper_adapt.selection:select_training.validation_share",
               seed="whisper_adapt.selection:select_training.seed")
def corpus_select(
    corpus: CorpusArg,
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary for --general-share: which clips hold a term.")] = None,
    general_share: Annotated[Optional[float], typer.Option(help="With --glossary: only clips holding a term, plus this share of general clips (e.g. 0.3).", min=0.0, max=1.0)] = None,
    validation_share: Annotated[Optional[float], typer.Option(help="Share of clips held out for validation, whole recordings at a time.", min=0.0, max=1.0)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed for the general clips and the split.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the selection as audiofolder OUT/train and OUT/validation.")] = None,
) -> None:
    """Choose the training set: reviewed clips, optionally focused on glossary terms; split by recording."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.labeled import write_audiofolder
    from whisper_adapt.selection import select_training

    if general_share is not None and glossary is None:
        raise WhisperAdaptError("--general-share needs --glossary (general means: holding no term)")
    terms = load_glossary(glossary) if glossary else None
    selection = select_training(corpus, terms, general_share, **given(validation_share=validation_share, seed=seed))
    console.print(f"train {len(selection.train)} clips, validation {len(selection.validation)} clips "
                  f"({selection.term_clips} with a glossary term, {selection.general_clips} general)")
    if validation_share != 0 and not selection.validation:  # absent: the default share, above 0
        console.print("[yellow]validation is empty: too few recordings to hold one out without leaking[/yellow]")
    if out is not None:
        for name, clips in (("train", selection.train), ("validation", selection.validation)):
            if clips:
                written = write_audiofolder(clips, out / name)
                console.print(f"wrote {escape(str(written))}")


def corpus_import(
    corpus: CorpusArg,
    sources: Annotated[list[Path], typer.Argument(help="Labelled sets: JVS folders, audiofolders (metadata.csv), name.wav + name.txt folders, or corpora.")],
) -> None:
    """Import labelled sets as reviewed clips (audio resampled to 16 kHz mono); repeats add nothing."""
    from whisper_adapt.transfer import import_sets

    with showing_progress() as progress:
        result = import_sets(corpus, sources, progress)
    console.print(f"{result.added} clips imported, {result.already_present} already in {escape(str(corpus))}")
    report_failures(result.failures, len(sources))


@defaults_from(layout="whisper_adapt.transfer:export_corpus.layout", status="whisper_adapt.transfer:export_corpus.status",
               group="whisper_adapt.transfer:export_corpus.group")
def corpus_export(
    corpus: CorpusArg,
    out: Annotated[Path, typer.Option(help="Directory to write the set into.")],
    layout: Annotated[Optional[str], typer.Option("--format", help="jvs (OUT/GROUP/transcripts_utf8.txt + wav/) or audiofolder (metadata.csv).", callback=check.export_layout)] = None,
    status: Annotated[Optional[str], typer.Option(help="Which clips: reviewed, draft or rejected.", callback=check.clip_status)] = None,
    group: Annotated[Optional[str], typer.Option(help="JVS group folder name (a plain name: it is made inside OUT).", callback=check.plain_name)] = None,
) -> None:
    """Export the corpus's clips (by default the reviewed ones) as JVS or Hugging Face audiofolder."""
    from whisper_adapt.transfer import export_corpus

    written, count = export_corpus(corpus, out, **given(layout=layout, status=status, group=group))
    console.print(f"wrote {count} clips to {escape(str(written))}")


def review(
    corpus: Annotated[Path, typer.Option(help="Corpus directory whose clips to review.")],
    glossary: Annotated[Optional[Path], typer.Option(help="Glossary: highlights terms and marks known misrecognitions with a one-key fix.")] = None,
    port: Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback requires a token.")] = "127.0.0.1",
    token: Annotated[Optional[str], typer.Option(envvar="WHISPER_ADAPT_TOKEN", help="Token every request must carry (generated when --host is not loopback; prefer the environment variable: a command line is visible to other users).")] = None,
    reviewer: Annotated[Optional[str], typer.Option(help="Name recorded with each correction (default: the OS user).")] = None,
) -> None:
    """Correct draft transcripts in the browser, keyboard only; every edit is saved as a revision."""
    from whisper_adapt.access import resolve_token
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.review.app import review_url, serve_review

    terms = load_glossary(glossary) if glossary else None
    required = resolve_token(host, token)
    console.print(f"reviewing {escape(str(corpus))}; open this address (Ctrl+C stops the server):")
    console.print(review_url(host, port, required), soft_wrap=True, highlight=False)  # one line, to copy whole
    serve_review(corpus, terms, host, port, required, reviewer)


@defaults_from(voices="whisper_adapt.synthcorpus:synthesize_corpus.voices",
               seed="whisper_adapt.synthcorpus:synthesize_corpus.seed")
def synth(
    glossary: Annotated[Path, typer.Option(help="Glossary file: terms with a reading are spoken by their reading.")],
    corpus: Annotated[Path, typer.Option(help="Corpus directory to add the clips to (created if missing).")],
    sentences: Annotated[Optional[Path], typer.Option(help="Sentences holding glossary terms, one per line.")] = None,
    templates: Annotated[Optional[Path], typer.Option(help="Lines with {term}: each filled with every glossary term.")] = None,
    voices: Annotated[Optional[str], typer.Option(help="Comma-separated TTS voices, cycled over the sentences (one recording each).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the level and noise augmentation.")] = None,
) -> None:
    """Speak sentences holding glossary terms with the offline TTS and add them as reviewed clips; repeats add nothing."""
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.synthcorpus import check_voices, expand_templates, read_sentences, synthesize_corpus

    if (sentences is None) == (templates is None):
        raise WhisperAdaptError("give exactly one of --sentences and --templates")
    voice_list = None if voices is None else [voice.strip() for voice in voices.split(",") if voice.strip()]
    if voice_list is not None:
        check_voices(voice_list)  # before the TTS model loads: a typo should fail at once
    terms = load_glossary(glossary)
    texts = read_sentences(sentences) if sentences is not None else expand_templates(templates, terms)
    with showing_progress() as progress:
        result = synthesize_corpus(corpus, terms, texts, **given(voices=voice_list, seed=seed), on_progress=progress)
    console.print(f"{result.added} clips synthesized, {result.already_present} already in {escape(str(corpus))}")
    if result.without_terms:
        console.print(f"[yellow]{result.without_terms} new sentences hold no glossary term[/yellow]")
