"""One progress protocol: every long operation reports `Progress` events, the CLI draws them with one renderer."""

from __future__ import annotations

import ast
from pathlib import Path

import whisper_adapt
from whisper_adapt.cli.common import console, showing_progress
from whisper_adapt.progress import Progress, counter, prefixed

PACKAGE_DIR = Path(whisper_adapt.__file__).parent


def _progress_parameters() -> dict[str, str]:
    """'module:function' → the annotation of its `on_progress` parameter, for every function in the package."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in node.args.args + node.args.kwonlyargs:
                    if arg.arg == "on_progress":
                        found[f"{path.relative_to(PACKAGE_DIR)}:{node.name}"] = ast.unparse(arg.annotation)
    return found


def test_every_long_operation_takes_the_one_progress_shape_and_only_the_cli_draws_it():
    parameters = _progress_parameters()
    stages = {where.split(":")[0] for where in parameters}
    # transcribe, eval, prepare, import, synth, demo, train, diarization and cutting all report
    assert {"transcribe.py", "eval_run.py", "prepare.py", "transfer.py", "synthcorpus.py", "demo.py",
            "train/trainer.py", "speakers.py", "segment.py"} <= stages
    assert {where: shape for where, shape in parameters.items() if shape not in ("ProgressFn", "progress.ProgressFn")} == {}
    drawing = sorted(str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py")
                     if "rich.progress" in path.read_text(encoding="utf-8"))
    assert drawing == ["cli/common.py"]


def test_a_stage_passes_on_the_progress_of_the_work_it_calls_under_its_own_name():
    events: list[Progress] = []
    advance = counter(prefixed(events.append, "train: "), "encoding clips", 5, "clips")
    advance(2)
    advance(3)
    assert events == [Progress("train: encoding clips", 2, 5, "clips"), Progress("train: encoding clips", 5, 5, "clips")]


def test_the_renderer_draws_a_bar_per_stage_with_its_note_and_count_in_its_unit():
    with console.capture() as captured:
        with showing_progress() as show:
            show(Progress("cut meeting.wav", 30, 120, "s", "3 clips"))
            show(Progress("cut meeting.wav", 120, 120, "s", "9 clips"))
            show(Progress("draft", 4, None, "clips"))
    drawn = captured.get()
    assert "cut meeting.wav · 9 clips" in drawn and "120/120 s" in drawn and "3 clips" not in drawn
    assert "draft" in drawn and "4 clips" in drawn
