"""The commands that measure and ship: `eval`, `export` and `demo` (the whole loop on a fictional company)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from whisper_adapt import cli_checks as check
from whisper_adapt.cli.common import ComputeTypeOpt, DeviceOpt, ModelOpt, console, defaults_from, given, showing_progress

EVAL = "whisper_adapt.eval_run:EvalOptions"
DEMO = "whisper_adapt.demo:DemoOptions"


@defaults_from(model="whisper_adapt.models:PACKAGED_BASE", compare="whisper_adapt.eval_run:COMPARISONS",
               beam_size=f"{EVAL}.beam_size", numerals=f"{EVAL}.numerals", bootstrap=f"{EVAL}.bootstrap_samples",
               seed=f"{EVAL}.seed", perturb_seed="whisper_adapt.eval_run:PERTURB_SEED", device=f"{EVAL}.device",
               compute_type=f"{EVAL}.compute_type")
def eval_(
    test: Annotated[Path, typer.Option(help="Test set: a corpus directory (reviewed clips), a JVS folder, an audiofolder or wav+txt pairs.")],
    glossary: Annotated[Path, typer.Option(help="Glossary file: terms scored for recall; used as prompt, hotwords and dictionary.")],
    general: Annotated[Optional[Path], typer.Option(help="Everyday-speech set (same layouts): forgetting is its CER change vs the unadapted model.")] = None,
    nonspeech: Annotated[Optional[Path], typer.Option(help="Folder of audio without speech: what each system invents there.")] = None,
    longform: Annotated[Optional[Path], typer.Option(help="Folder of whole recordings, each with a reference of time spans (NAME.json list of {start, end, text}, or NAME.srt / NAME.vtt): long-form CER, text invented where nobody speaks, timestamps.")] = None,
    model: Annotated[Optional[str], typer.Option(help="The unadapted model every system is compared with (as for transcribe).", callback=check.model_spec)] = None,
    system: Annotated[Optional[list[str]], typer.Option(help="Adapted system NAME=MODEL (a CTranslate2 or Hugging Face directory …); repeatable.", callback=check.system_specs)] = None,
    compare: Annotated[Optional[str], typer.Option(help="No-training baselines and add-ons, comma-separated: prompt, hotwords, dictionary.", callback=check.comma_list)] = None,
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")] = Path("eval-report"),
    beam_size: Annotated[Optional[int], typer.Option(help="Beam width used for every system (temperature is fixed at 0).", min=1)] = None,
    numerals: Annotated[Optional[bool], typer.Option(help="Score 三 and 3 (十五 and 15 …) as equal.")] = None,
    bootstrap: Annotated[Optional[int], typer.Option(help="Paired bootstrap resamples for the forgetting interval.", min=1)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the bootstrap resampling.")] = None,
    perturb: Annotated[bool, typer.Option("--perturb", help="Also score the test set heard through rooms, other talkers, noise and codecs (training's augmentation chain, its own seed): clean and shifted side by side.")] = False,
    perturb_seed: Annotated[Optional[int], typer.Option(help="Seed of the --perturb chains.")] = None,
    device: DeviceOpt = None,
    compute_type: ComputeTypeOpt = None,
) -> None:
    """Score the unadapted model, prompt and hotword biasing, adapted models and the dictionary side by side."""
    from whisper_adapt.eval_run import COMPARISONS, PERTURB_SEED, EvalOptions, plan_systems, run_evaluation
    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.models import PACKAGED_BASE
    from whisper_adapt.report import write_report

    systems = plan_systems(model or PACKAGED_BASE, system or [], COMPARISONS if compare is None else compare,
                           load_glossary(glossary))
    shifted_seed = (PERTURB_SEED if perturb_seed is None else perturb_seed) if perturb else None
    options = EvalOptions(perturb_seed=shifted_seed, **given(
        beam_size=beam_size, device=device, compute_type=compute_type, numerals=numerals,
        bootstrap_samples=bootstrap, seed=seed))
    with showing_progress() as progress:
        report = run_evaluation(test, glossary, systems, general, nonspeech, options, progress, longform=longform)
    _print_summary(report)
    for path in write_report(report, out):
        console.print(f"wrote {escape(str(path))}")


def _print_summary(report: dict) -> None:
    """The summary table on stdout. Piped into a file or a README, an 80-column default would wrap every
    figure: it is printed at full width."""
    from rich.console import Console as StdoutConsole

    from whisper_adapt.report import summary_table

    StdoutConsole(width=None if sys.stdout.isatty() else 200).print(summary_table(report))


@defaults_from(model="whisper_adapt.models:PACKAGED_BASE", quantization="whisper_adapt.export:export_model.quantization")
def export(
    adapter: Annotated[list[Path], typer.Option(help="Adapter directory (a train OUT or OUT/adapter); repeat to merge stacked adapters in order.")],
    out: Annotated[Path, typer.Option(help="Output: a CTranslate2 model directory (merged Hugging Face model in OUT/hf).")],
    model: ModelOpt = None,
    quantization: Annotated[Optional[str], typer.Option(help="float16 (default; GPU and CPU), int8 (smallest, fastest on CPU), int8_float16, float32.")] = None,
) -> None:
    """Merge adapters into the base and write a model faster-whisper loads as is; checks both decode alike."""
    from whisper_adapt.export import export_model
    from whisper_adapt.models import PACKAGED_BASE

    with console.status("merging and converting …"):
        result = export_model(model or PACKAGED_BASE, adapter, out, **given(quantization=quantization))
    console.print(f"check clip — merged: {escape(result.hf_text)}")
    console.print(f"check clip — export: {escape(result.ct2_text)}  (CER {result.check_cer:.3f})")
    console.print(f"wrote {escape(str(result.out_dir))}: transcribe with --model {escape(str(result.out_dir))}")


@defaults_from(model=f"{DEMO}.model", share=f"{DEMO}.share", seed=f"{DEMO}.seed")
def demo(
    out: Annotated[Path, typer.Option(help="Directory for everything the demo makes (speech, corpus, adapter, model, report, minutes).")] = Path("whisper-adapt-demo"),
    model: ModelOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: train's default).", min=1)] = None,
    share: Annotated[Optional[float], typer.Option(help="Share of the demo's training sentences and meeting lines to use (1 = all; less is quicker).", callback=check.above_zero, max=1.0)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the meeting's pauses, the augmentation and training.")] = None,
) -> None:
    """Run the whole loop on a fictional company, offline: Whisper misses its words, a short adaptation fixes them."""
    from whisper_adapt.demo import DemoOptions, run_demo

    with showing_progress() as progress:
        result = run_demo(out, DemoOptions(**given(model=model, share=share, epochs=epochs, seed=seed)), progress)
    _print_summary(result.report)
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
