"""Usage errors: every mistyped command or option ends in one line naming the problem and exit status 2,
through `main()` and through the installed console script, on the typer pip resolves and on the lowest
typer (with the real click) that pyproject.toml admits."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from whisper_adapt.cli import main

# (command words, a bad option value, the command without what it requires). None where the command has no
# typed option or needs nothing.
COMMANDS: dict[str, tuple[list[str] | None, list[str] | None]] = {
    "transcribe": (["transcribe", "x.wav", "--beam-size", "abc"], None),
    "prepare": (["prepare", "x.wav", "--corpus", "c", "--beam-size", "abc"], ["prepare", "x.wav"]),
    "corpus stats": (["corpus", "stats", "c", "--glossary"], ["corpus", "stats"]),
    "corpus select": (["corpus", "select", "c", "--validation-share", "abc"], ["corpus", "select"]),
    "corpus import": (None, ["corpus", "import", "c"]),
    "corpus export": (["corpus", "export", "c", "--out"], ["corpus", "export", "c"]),
    "train": (["train", "--corpus", "c", "--out", "o", "--epochs", "abc"], ["train", "--out", "o"]),
    "review": (["review", "--corpus", "c", "--port", "abc"], ["review"]),
    "serve": (["serve", "--port", "abc"], None),
    "synth": (["synth", "--glossary", "g", "--corpus", "c", "--seed", "abc"], ["synth", "--corpus", "c"]),
    "export": (["export", "--adapter", "a", "--out"], ["export", "--out", "o"]),
    "eval": (["eval", "--test", "t", "--glossary", "g", "--beam-size", "abc"], ["eval", "--glossary", "g"]),
    "demo": (["demo", "--share", "abc"], None),
}


def usage_cases() -> list[tuple[str, list[str], str]]:
    """(case id, argv, text the message must hold) for every subcommand."""
    cases = []
    for name, (bad_value, missing) in COMMANDS.items():
        words = name.split()
        cases.append((f"{name}: unknown option", [*words, "--no-such-option"], "No such option: --no-such-option"))
        misspelled = [*words[:-1], words[-1][:-1]]  # the last letter dropped: click suggests the right name
        cases.append((f"{name}: misspelled", misspelled, f"Did you mean '{words[-1]}'"))
        if bad_value:
            cases.append((f"{name}: bad value", bad_value, bad_value[-1] if bad_value[-1].startswith("--") else "Invalid value"))
        if missing:
            cases.append((f"{name}: missing", missing, "Missing"))
    return cases


CASES = usage_cases()


def assert_one_line_error(status: int, stderr: str, expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert expected in lines[0], lines[0]
    assert "--help" in lines[0]  # where to look next


@pytest.mark.parametrize("argv,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_usage_errors_are_one_line_through_main(argv, expected, capsys):
    status = main(argv)
    assert_one_line_error(status, capsys.readouterr().err, expected)


def console_script() -> Path:
    script = Path(sys.executable).with_name("whisper-adapt")
    assert script.is_file(), "install the package (pip install -e .) to get the console script"
    return script


@pytest.mark.parametrize("argv,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_usage_errors_are_one_line_through_the_console_script(argv, expected):
    run = subprocess.run([str(console_script()), *argv], capture_output=True, text=True, timeout=60)
    assert_one_line_error(run.returncode, run.stderr, expected)


def test_no_arguments_shows_the_commands_not_an_error(capsys):
    status = main([])
    shown = capsys.readouterr()
    text = shown.out + shown.err  # rich help goes to stdout, click's plain help to stderr
    assert "Traceback" not in text and "error:" not in text
    assert "transcribe" in text and "train" in text
    assert status in (0, 2)  # click 8.2 and later exit 2 on a bare group, older ones 0


LOWEST = ("typer==0.12.5", "click==8.1.7")  # the lowest typer pyproject.toml admits, on the real click


@pytest.fixture(scope="module")
def lowest_typer(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("lowest-typer")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                              str(target), *LOWEST], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return target


def test_usage_errors_on_the_lowest_supported_typer(lowest_typer):
    """typer 0.12 raises click's own exception classes where 0.29 raises its vendored copy's: both must end
    in one line. (click 8.1 suggests no command name, so the misspelled case only checks the line.)"""
    runner = ("import sys, typer, click; from whisper_adapt.cli import main; "
              "assert typer.__version__ == '0.12.5', typer.__version__; sys.exit(main(sys.argv[1:]))")
    environment = {**os.environ, "PYTHONPATH": str(lowest_typer)}
    for case_id, argv, expected in CASES:
        run = subprocess.run([sys.executable, "-c", runner, *argv], capture_output=True, text=True, timeout=60,
                             env=environment)
        assert_one_line_error(run.returncode, run.stderr, "" if "misspelled" in case_id else expected)


# (argv, text the one-line error must hold): values that must be refused while parsing, before any work.
BAD_VALUES = [
    (["transcribe", "in.wav", "--language", "xx"], "unknown language 'xx'"),
    (["transcribe", "in.wav", "--format", ""], "no format given"),
    (["transcribe", "in.wav", "--format", "txt,docx"], "unknown format docx"),
    (["transcribe", "in.wav", "--beam-size", "0"], "--beam-size"),
    (["prepare", "in.wav", "--corpus", "c", "--language", "xx"], "unknown language 'xx'"),
    (["prepare", "in.wav", "--corpus", "c", "--language", "auto"], "unknown language 'auto'"),
    (["prepare", "in.wav", "--corpus", "c", "--max-clip-s", "31"], "--max-clip-s"),
    (["train", "--corpus", "c", "--out", "o", "--lr", "0"], "must be above 0, not 0"),
    (["train", "--corpus", "c", "--out", "o", "--lr", "-1"], "must be above 0, not -1"),
    (["train", "--corpus", "c", "--out", "o", "--warmup-steps", "-5"], "--warmup-steps"),
    (["train", "--corpus", "c", "--out", "o", "--forgetting-budget", "-1"], "--forgetting-budget"),
    (["train", "--corpus", "c", "--out", "o", "--replay-share", "1.5"], "--replay-share"),
    (["train", "--corpus", "c", "--out", "o", "--language", "xx"], "unknown language 'xx'"),
    (["eval", "--test", "t", "--glossary", "g", "--bootstrap", "0"], "--bootstrap"),
    (["eval", "--test", "t", "--glossary", "g", "--system", "a=nosuch"], "unknown model 'nosuch'"),
    (["eval", "--test", "t", "--glossary", "g", "--system", "nosuch"], "expected NAME=MODEL"),
    (["eval", "--test", "t", "--glossary", "g", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["review", "--corpus", "c", "--port", "70000"], "--port"),
    (["serve", "--port", "0"], "--port"),
    (["serve", "--language", "xx"], "unknown language 'xx'"),
    (["serve", "--max-upload-mb", "0"], "must be above 0"),
    (["corpus", "export", "c", "--out", "o", "--group", "../../x"], "plain folder name"),
    (["corpus", "export", "c", "--out", "o", "--group", "/tmp/x"], "plain folder name"),
    (["corpus", "export", "c", "--out", "o", "--format", "docx"], "'docx' is not one of jvs, audiofolder"),
    (["corpus", "export", "c", "--out", "o", "--status", "done"], "'done' is not one of draft, reviewed, rejected"),
    (["corpus", "select", "c", "--validation-share", "2"], "--validation-share"),
    (["demo", "--share", "0"], "must be above 0"),
]


@pytest.mark.parametrize("argv,expected", BAD_VALUES, ids=[" ".join(argv) for argv, _ in BAD_VALUES])
def test_bad_values_are_refused_while_parsing(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # every path above is relative: nothing may appear here
    status = main(argv)
    assert_one_line_error(status, capsys.readouterr().err, expected)
    assert list(tmp_path.iterdir()) == []


def test_names_with_square_brackets_are_printed_as_they_are(tmp_path, capsys, tiny_whisper_dir):
    """Rich read `[final]` in `empty[final].wav` as markup and printed `empty.wav`."""
    (tmp_path / "in").mkdir()
    empty = tmp_path / "in" / "empty[final].wav"
    empty.touch()
    status = main(["transcribe", str(empty), "--model", str(tiny_whisper_dir), "--out", str(tmp_path / "out"),
                   "--device", "cpu"])
    err = capsys.readouterr().err.replace("\n", "")  # long lines are wrapped at the console's width
    assert status == 1 and f"{empty}: file is empty" in err
    assert main(["corpus", "stats", str(tmp_path / "c[1]")]) == 2
    assert "c[1]" in capsys.readouterr().err.replace("\n", "")


# Options whose default is stated by the CLI because no dataclass field or function parameter holds one:
# where output goes, where servers listen, and serve's language (auto, where files default to Japanese).
CLI_DEFAULTS = {("transcribe", "formats"), ("transcribe", "out"), ("eval", "out"), ("demo", "out"),
                ("review", "host"), ("review", "port"), ("serve", "host"), ("serve", "port"), ("serve", "language")}
PRINTING = {"print", "status", "update"}  # console.print, console.status, status.update: shown, not used


def cli_commands() -> list[tuple[str, object]]:
    """(command words, handler) for every command of the app, the groups' commands included."""
    from whisper_adapt.cli import app

    commands = [(info.name or info.callback.__name__, info.callback) for info in app.registered_commands]
    for group in app.registered_groups:
        commands += [(f"{group.name} {info.name}", info.callback) for info in group.typer_instance.registered_commands]
    return commands


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _assigned(statements: list[ast.stmt]) -> set[str]:
    targets = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.withitem, ast.NamedExpr)):
                for target in getattr(node, "targets", None) or [getattr(node, "target", None) or node.optional_vars]:
                    targets |= _names(target) if target is not None else set()
    return targets


def reaches_a_call(handler, name: str) -> bool:
    """Whether the parameter `name` flows, through assignments and the conditions they sit under, into the
    arguments of a call that is not printing: a field or parameter that code goes on to read."""
    body = ast.parse(textwrap.dedent(inspect.getsource(handler))).body[0].body
    tainted = {name}
    for _ in range(4):  # a value may pass through a few assignments
        for node in (n for statement in body for n in ast.walk(statement)):
            value = getattr(node, "value", None) if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) else None
            if value is not None and _names(value) & tainted:
                tainted |= _assigned([node]) if not isinstance(node, ast.NamedExpr) else _names(node.target)
            if isinstance(node, (ast.If, ast.With, ast.For)):
                head = node.test if isinstance(node, ast.If) else node.iter if isinstance(node, ast.For) else ast.Tuple([i.context_expr for i in node.items])
                if _names(head) & tainted:
                    tainted |= _assigned(node.body + list(getattr(node, "items", [])))
    calls = [n for statement in body for n in ast.walk(statement) if isinstance(n, ast.Call)]
    printed = {id(inner) for call in calls if getattr(call.func, "attr", None) in PRINTING for inner in ast.walk(call)}
    return any(_names(argument) & tainted for call in calls if id(call) not in printed
               for argument in call.args + [keyword.value for keyword in call.keywords])


def test_every_option_reaches_code_that_reads_it():
    """An option parsed and never passed on is a promise the program does not keep."""
    unread = [f"{command} --{name.replace('_', '-')}" for command, handler in cli_commands()
              for name in inspect.signature(handler).parameters if not reaches_a_call(handler, name)]
    assert not unread, f"options that reach no dataclass field or function parameter: {unread}"


def test_defaults_come_from_the_dataclasses():
    """An absent option is None, so the field or parameter it feeds decides: a default restated in the CLI
    drifts from the code's. A one-sided flag (--resume) is False: absent, it asks for nothing."""
    restated = []
    for command, handler in cli_commands():
        hints = typing.get_type_hints(handler, include_extras=True)
        for name, parameter in inspect.signature(handler).parameters.items():
            flag = hints[name].__origin__ is bool and parameter.default is False
            given = parameter.default in (None, inspect.Parameter.empty) or flag
            if not given and (command, name) not in CLI_DEFAULTS:
                restated.append(f"{command} --{name.replace('_', '-')}={parameter.default!r}")
    assert not restated, f"defaults restated in the CLI: {restated}"


def test_the_reach_check_sees_an_option_that_goes_nowhere():
    def handler(corpus: str, unused: int | None = None, shown: str | None = None, passed: int | None = None):
        chosen = passed
        console.print(shown)
        run(corpus, limit=chosen)

    assert [name for name in ("corpus", "unused", "shown", "passed") if reaches_a_call(handler, name)] == ["corpus", "passed"]


def source_defaults() -> dict[tuple[str, str], object]:
    """(command, option) → the default its --help must note, read now from the field, parameter or constant
    the option feeds when left out: changing one of those changes the help."""
    from whisper_adapt import eval_run, export, prepare, selection, serve, synthcorpus, transfer
    from whisper_adapt import transcribe as transcribing
    from whisper_adapt.demo import DemoOptions
    from whisper_adapt.models import PACKAGED_BASE
    from whisper_adapt.segment import SegmentOptions
    from whisper_adapt.train.methods import MethodOptions
    from whisper_adapt.train.trainer import TrainOptions

    def parameters(function) -> dict:
        return {name: p.default for name, p in inspect.signature(function).parameters.items()}

    options, limits, draft, segment = transcribing.TranscribeOptions(), serve.Limits(), prepare.DraftOptions(), SegmentOptions()
    loading, app, drafting = parameters(transcribing.load_model), parameters(serve.create_app), parameters(prepare.prepare)
    split, export_set, speaking = (parameters(selection.select_training), parameters(transfer.export_corpus),
                                   parameters(synthcorpus.synthesize_corpus))
    scoring, demo, training, method = eval_run.EvalOptions(), DemoOptions(), TrainOptions(), MethodOptions()
    expected = {
        "transcribe": {"--model": PACKAGED_BASE, "--language": options.language, "--beam-size": options.beam_size,
                       "--batch-size": options.batch_size, "--vad": options.vad,
                       "--word-timestamps": options.word_timestamps, "--device": loading["device"],
                       "--compute-type": loading["compute_type"]},
        "serve": {"--model": PACKAGED_BASE, "--beam-size": options.beam_size,
                  "--max-upload-mb": limits.max_upload_bytes / 1e6, "--max-audio-minutes": limits.max_audio_s / 60,
                  "--max-pending": limits.max_pending, "--request-deadline-s": limits.request_deadline_s,
                  "--device": app["device"], "--compute-type": app["compute_type"]},
        "prepare": {"--model": draft.model, "--redraft": drafting["redraft"], "--draft": drafting["draft"] is not None,
                    "--beam-size": draft.beam_size, "--language": draft.language, "--min-clip-s": segment.min_clip_s,
                    "--max-clip-s": segment.max_clip_s, "--min-silence-ms": segment.min_silence_ms,
                    "--pad-ms": segment.pad_ms, "--device": draft.device, "--compute-type": draft.compute_type},
        "corpus select": {"--validation-share": split["validation_share"], "--seed": split["seed"]},
        "corpus export": {"--format": export_set["layout"], "--status": export_set["status"], "--group": export_set["group"]},
        "synth": {"--voices": speaking["voices"], "--seed": speaking["seed"]},
        "export": {"--model": PACKAGED_BASE, "--quantization": parameters(export.export_model)["quantization"]},
        "eval": {"--model": PACKAGED_BASE, "--compare": eval_run.COMPARISONS, "--beam-size": scoring.beam_size,
                 "--numerals": scoring.numerals, "--bootstrap": scoring.bootstrap_samples, "--seed": scoring.seed,
                 "--perturb-seed": eval_run.PERTURB_SEED, "--device": scoring.device,
                 "--compute-type": scoring.compute_type},
        "demo": {"--model": demo.model, "--share": demo.share, "--seed": demo.seed},
        "train": {"--model": PACKAGED_BASE, "--method": training.method, "--layers": method.layers,
                  "--grad-accum": training.grad_accum, "--lora-rank": method.lora_rank,
                  "--lora-alpha": method.lora_alpha, "--forgetting-budget": training.forgetting_budget,
                  "--timestamp-share": training.timestamp_share, "--augment": training.augment is not None,
                  "--seed": training.seed, "--language": training.language},
    }
    return {(command, option): value for command, shown in expected.items() for option, value in shown.items()}


def note(option: str, value: object) -> str:
    """How help writes a default: a flag by its name (vad / no-vad), a sequence as the comma list it takes."""
    if isinstance(value, bool):
        return option[2:] if value else f"no-{option[2:]}"
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def help_notes(words: list[str], capsys, monkeypatch) -> dict[str, str]:
    """Option → the text of its `[default: …]` note in the command's --help."""
    monkeypatch.setenv("COLUMNS", "1000")  # wide enough that no option's row wraps
    assert main([*words, "--help"]) == 0
    notes = {}
    for line in capsys.readouterr().out.splitlines():
        option, default = re.match(r"│\s+(?:\*\s+)?(--[\w-]+)", line), re.search(r"\[default: ([^\]]*)\]", line)
        if option and default:
            notes[option.group(1)] = default.group(1)
    return notes


def test_help_notes_the_default_each_option_takes_from_its_source(capsys, monkeypatch):
    """An option left out is None and takes its source's default; --help still says which. Every other note
    is a default the CLI states itself (where output goes, where servers listen)."""
    import typer

    from whisper_adapt.cli import app

    expected, root = source_defaults(), typer.main.get_command(app)
    for command, _ in cli_commands():
        notes = help_notes(command.split(), capsys, monkeypatch)
        click_command = root
        for word in command.split():
            click_command = click_command.commands[word]
        left_out = {opt for param in click_command.params if param.default is None for opt in param.opts}
        for option in sorted(left_out | {option for shown_by, option in expected if shown_by == command}):
            want = expected.get((command, option))
            assert notes.get(option) == (None if want is None else note(option, want)), f"{command} {option}"


def test_help_reads_the_sources_only_when_shown():
    """The sources import torch (train, export, eval) or faster-whisper: starting the CLI and a command's
    --help whose sources are light must import none of that, in a fresh interpreter."""
    script = textwrap.dedent("""
        import sys
        from whisper_adapt.cli import main
        heavy = ("torch", "whisper_adapt.transcribe", "whisper_adapt.train.trainer", "whisper_adapt.eval_run")
        assert main(["--help"]) == 0
        print("loaded:", *[name for name in heavy if name in sys.modules])
        assert main(["transcribe", "--help"]) == 0
        print("loaded:", *[name for name in heavy if name in sys.modules])
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stderr
    after_help, after_transcribe_help = [line.split()[1:] for line in run.stdout.splitlines() if line.startswith("loaded:")]
    assert after_help == []  # the top-level help loads no command's source
    assert after_transcribe_help == ["whisper_adapt.transcribe"]  # its own source, which needs no torch
