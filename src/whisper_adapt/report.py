"""The evaluation report: `report.json` (every number and every clip's output), a self-contained
`report.html` (charts, per-term table, worst clips with a coloured diff and their audio), and the terminal
table.

The HTML page needs nothing but itself: CSS is inline, charts are matplotlib SVGs embedded as data URIs,
and the audio of the worst clips is embedded as 16 kHz WAV data URIs, so the file can be mailed or opened
offline, and moving the data set later does not break it. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import base64
import io
import json
import math
import wave
from html import escape
from pathlib import Path

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.files import write_text_atomically

WORST_CLIPS_PER_SYSTEM = 3

_CSS = """
body { font-family: system-ui, 'Noto Sans CJK JP', 'Hiragino Sans', 'Yu Gothic', sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts img { max-width: 48%; margin: 0.5em 1% 0 0; } .clip { border-top: 1px solid #ccc; padding: 0.8em 0; }
.diff span.sub { background: #fde2a7; } .diff span.del { background: #f8b4b4; text-decoration: line-through; }
.diff span.ins { background: #b9e6c1; } .small { color: #666; font-size: 0.85em; } code { font-size: 0.9em; }
"""


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.html into `out_dir` (created if missing); returns both paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WhisperAdaptError(f"cannot create the report folder ({e.strerror})", out_dir) from e
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    _write_atomically(json_path, json.dumps(_json_safe(report), ensure_ascii=False, indent=1, allow_nan=False) + "\n")
    _write_atomically(html_path, render_html(report))
    return json_path, html_path


def _json_safe(value):
    """Infinite or undefined rates (no reference text) become null: JSON has no Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _write_atomically(path: Path, text: str) -> None:
    try:
        write_text_atomically(path, text)
    except OSError as e:
        raise WhisperAdaptError(f"cannot write the report ({e.strerror})", path) from e


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _forgetting_text(system: dict) -> str:
    f = system.get("forgetting")
    return "–" if f is None else f"{f['delta_cer']:+.3f} [{f['low']:+.3f}, {f['high']:+.3f}]"


def summary_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Column names and one row of formatted figures per system: the terminal and HTML summary tables."""
    columns = ["system", "CER", "WER", "term recall", "term precision", "false alarms"]
    has_general, has_nonspeech = "general" in report["datasets"], "nonspeech" in report["datasets"]
    has_shifted = "shifted" in report["datasets"]
    if has_shifted:
        columns += ["shifted CER", "shifted term recall"]
    if has_general:
        columns += ["general CER", "forgetting ΔCER [95% CI]"]
    if has_nonspeech:
        columns += ["non-speech chars/min", "loops"]
    rows = []
    for system in report["systems"]:
        test, terms = system["test"], system["test"]["terms"]
        row = [system["name"], _fmt(test["cer"]), _fmt(test["wer"]), _fmt(terms["recall"]),
               _fmt(terms["precision"]), str(terms["false_alarms"])]
        if has_shifted:
            row += [_fmt(system["shifted"]["cer"]), _fmt(system["shifted"]["terms"]["recall"])]
        if has_general:
            row += [_fmt(system["general"]["cer"]), _forgetting_text(system)]
        if has_nonspeech:
            row += [_fmt(system["nonspeech"]["chars_per_minute"], 1), str(system["nonspeech"]["loops"])]
        rows.append(row)
    return columns, rows


LONGFORM_COLUMNS = ["long-form CER", "term recall", "invented chars/min", "loops", "timestamp error s (start/end)",
                    "max silence covered s", "segments > 2 s silence"]


def longform_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The long-form figures of every system (a second table: one row would not fit a terminal's width)."""
    rows = []
    for system in report["systems"]:
        figures = system["longform"]
        rows.append([system["name"], _fmt(figures["cer"]), _fmt(figures["terms"]["recall"]),
                     _fmt(figures["invented_chars_per_minute"], 1), str(figures["loops"]),
                     f"{_fmt(figures['mean_start_error_s'], 2)}/{_fmt(figures['mean_end_error_s'], 2)}",
                     _fmt(figures["max_silence_covered_s"], 1), str(figures["segments_over_silence_limit"])])
    return ["system", *LONGFORM_COLUMNS], rows


def summary_table(report: dict):
    """The side-by-side comparison as rich Tables: the clip sets, then the long-form set if there is one."""
    from rich.console import Group

    shifted = report["datasets"].get("shifted")
    condition = f", shifted: the same through rooms and noise (seed {shifted['perturbation']['seed']})" if shifted else ""
    tables = [_rich_table(f"whisper-adapt eval · test set {report['datasets']['test']['items']} clips{condition}",
                          *summary_rows(report))]
    if "longform" in report["datasets"]:
        info = report["datasets"]["longform"]
        tables.append(_rich_table(f"long-form · {info['items']} recordings, {info['audio_s'] / 60:.1f} min",
                                  *longform_rows(report)))
    return Group(*tables)


def _rich_table(title: str, columns: list[str], rows: list[list[str]]):
    from rich.table import Table

    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def render_html(report: dict) -> str:
    """The whole report page as one HTML string."""
    sections = [
        f"<h1>whisper-adapt evaluation</h1><p class=small>{escape(report.get('created', ''))}</p>",
        "<h2>Summary</h2>" + _summary_html(report),
        "<h2>Charts</h2><div class=charts>" + "".join(_charts(report)) + "</div>",
        "<h2>Glossary terms (test set)</h2>" + _terms_html(report),
        *(["<h2>Long-form recordings</h2>" + _longform_html(report)] if "longform" in report["datasets"] else []),
        "<h2>Worst clips</h2>" + _worst_clips_html(report),
        "<h2>Reproducibility</h2>" + _settings_html(report),
    ]
    return ("<!DOCTYPE html><html lang=ja><head><meta charset=utf-8><title>whisper-adapt evaluation</title>"
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n")


def _table(columns: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td class=num>{escape(cell)}</td>" if i >= numeric_from else f"<td>{escape(cell)}</td>"
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(report: dict) -> str:
    columns, rows = summary_rows(report)
    note = ("<p class=small>CER and WER pooled over clips (Σ edits / Σ reference units, normalized text). Term "
            "recall: said occurrences written at least as often in the same clip. Forgetting: general-set CER "
            "minus the unadapted model's, 95% paired bootstrap interval over clips." + (
                " Shifted: the test clips heard through the training's augmentation chain (reverberant rooms, "
                "other talkers or noise at 0–20 dB, speed, band limit, codecs), drawn by seed "
                f"{report['datasets']['shifted']['perturbation']['seed']}; each clip's chain is in report.json."
                if "shifted" in report["datasets"] else ""))
    table = _table(columns, rows) + note + "</p>"
    if "longform" in report["datasets"]:
        table += "<h3>Long-form set</h3>" + _table(*longform_rows(report)) + (
            "<p class=small>Each recording scored as one clip. Invented: characters of segments overlapping no "
            "reference span widened by 1 s, per minute outside every span. Timestamp error: mean |start| and "
            "|end| difference between each span and the segments that overlap it most. Silence covered: seconds "
            "of a segment's time span outside every reference span.</p>")
    return table


def _terms_html(report: dict) -> str:
    systems = report["systems"]
    terms = list(systems[0]["test"]["terms"]["per_term"])
    columns = ["term", "said"] + [s["name"] for s in systems]
    rows = []
    for term in terms:
        scores = [s["test"]["terms"]["per_term"][term] for s in systems]
        cells = [f"{x['recognized']}/{x['said']} ({_fmt(x['recall'], 2)})"
                 + (f" +{x['false_alarms']} false" if x["false_alarms"] else "") for x in scores]
        rows.append([term, str(scores[0]["said"]), *cells])
    return _table(columns, rows) + "<p class=small>recognized/said (recall), and occurrences written beyond what was said.</p>"


def _longform_html(report: dict) -> str:
    """One row per recording: each system's CER, invented characters and the most silence one segment covers."""
    names = [s["name"] for s in report["systems"]]
    rows = []
    for clip in report["clips"]["longform"]:
        cells = [f"CER {_fmt(x['cer'])} · {x['invented_chars']} invented · {_fmt(x['max_silence_covered_s'], 1)} s"
                 for x in (clip["scores"][name] for name in names)]
        minutes = clip["scores"][names[0]]["nonspeech_minutes"]
        rows.append([clip["id"], f"{clip['duration_s'] / 60:.1f} min ({minutes:.1f} without speech)", *cells])
    return (_table(["recording", "length", *names], rows) + "<p class=small>CER; characters written outside "
            "the reference spans (± 1 s); the most seconds of reference silence inside one segment.</p>")


def worst_clip_rows(report: dict, set_name: str = "test", per_system: int = WORST_CLIPS_PER_SYSTEM) -> list[dict]:
    """The union of each system's `per_system` clips with the highest CER, in order of first appearance."""
    clips = report["clips"][set_name]
    chosen: dict[str, dict] = {}
    for system in report["systems"]:
        name = system["name"]
        ranked = sorted(clips, key=lambda c: (-_clip_cer(c, name), c["id"]))
        for clip in ranked[:per_system]:
            if _clip_cer(clip, name) > 0:
                chosen.setdefault(clip["id"], clip)
    return list(chosen.values())


def _clip_cer(clip: dict, system: str) -> float:
    edits, length = clip["char_edits"][system], clip["ref_chars"]
    return edits / length if length else (0.0 if edits == 0 else math.inf)


def _worst_clips_html(report: dict) -> str:
    from whisper_adapt.evaluate import char_diff

    numerals = report["settings"]["normalization"]["numerals"]
    parts = []
    for clip in worst_clip_rows(report):
        rows = []
        for system in report["systems"]:
            name = system["name"]
            diff = "".join(_diff_span(op, ref, hyp) for op, ref, hyp in char_diff(clip["reference"], clip["hypotheses"][name], numerals))
            rows.append(f"<tr><td>{escape(name)}</td><td class=num>{_fmt(_clip_cer(clip, name))}</td>"
                        f"<td class=diff>{diff}</td></tr>")
        parts.append(
            f"<div class=clip><b>{escape(clip['id'])}</b> <span class=small>{clip['duration_s']:.1f} s</span><br>"
            f"{_audio_html(Path(clip['audio_path']))}<p>reference: {escape(clip['reference'])}</p>"
            f"<table><thead><tr><th>system</th><th>CER</th><th>normalized output vs reference</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
    legend = ("<p class=small>Colours: <span class=diff><span class=sub>substituted</span> "
              "<span class=del>deleted (said, not written)</span> <span class=ins>inserted</span></span>.</p>")
    return legend + ("".join(parts) or "<p>No clip has errors.</p>")


def _diff_span(op: str, ref: str, hyp: str) -> str:
    if op == "equal":
        return escape(hyp)
    if op == "insert":
        return f"<span class=ins>{escape(hyp)}</span>"
    if op == "delete":
        return f"<span class=del>{escape(ref)}</span>"
    return f"<span class=sub title='{escape(ref, quote=True)}'>{escape(hyp)}</span>"


def _audio_html(path: Path) -> str:
    """An audio player with the clip embedded (decoded to 16 kHz WAV); a note if the file is gone."""
    from whisper_adapt.audio import SAMPLE_RATE, decode_audio

    try:
        samples = decode_audio(path)
    except WhisperAdaptError as e:
        return f"<p class=small>audio not embedded: {escape(str(e))}</p>"
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((samples.clip(-1, 1) * 32767).astype("<i2").tobytes())
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<audio controls preload=none src='data:audio/wav;base64,{data}'></audio>"


def _settings_html(report: dict) -> str:
    rows = [["glossary", f"{report['glossary']['path']} · sha256 {report['glossary']['sha256']}"]]
    for name, info in report["datasets"].items():
        rows.append([f"{name} set", f"{info['path']} · {info['items']} items, {info['audio_s']:.1f} s · sha256 {info['sha256']}"])
    for system in report["systems"]:
        rows.append([f"system {system['name']}", f"model {system['model']} · sha256 {system['model_sha256']}"])
    settings = json.dumps(report["settings"], ensure_ascii=False, indent=1)
    return (_table(["what", "value"], rows, numeric_from=2)
            + f"<details><summary>decoding, normalization and software versions</summary><pre><code>{escape(settings)}</code></pre></details>")


def _charts(report: dict) -> list[str]:
    systems = report["systems"]
    names = [s["name"] for s in systems]
    charts = [_bar_chart(names, [s["test"]["cer"] for s in systems], "CER on the test set (lower is better)"),
              _bar_chart(names, [s["test"]["terms"]["recall"] for s in systems], "Glossary term recall (higher is better)",
                         limits=(0.0, 1.1))]
    forgetting = [s for s in systems if "forgetting" in s]
    if forgetting:
        charts.append(_bar_chart(
            [s["name"] for s in forgetting], [s["forgetting"]["delta_cer"] for s in forgetting],
            "Forgetting: general CER change vs unadapted (95% CI)",
            # A percentile interval need not contain the point estimate; matplotlib wants lengths >= 0.
            [(max(0.0, s["forgetting"]["delta_cer"] - s["forgetting"]["low"]),
              max(0.0, s["forgetting"]["high"] - s["forgetting"]["delta_cer"])) for s in forgetting]))
    if "nonspeech" in report["datasets"]:
        charts.append(_bar_chart(names, [s["nonspeech"]["chars_per_minute"] for s in systems],
                                 "Characters written per minute of non-speech (lower is better)"))
    if "longform" in report["datasets"]:
        charts.append(_bar_chart(names, [s["longform"]["invented_chars_per_minute"] for s in systems],
                                 "Long-form: characters invented per minute without speech (lower is better)"))
    return [f"<img alt='{escape(title, quote=True)}' src='data:image/svg+xml;base64,{svg}'>" for title, svg in charts]


def _bar_chart(names: list[str], values: list[float | None], title: str,
               errors: list[tuple[float, float]] | None = None, limits: tuple[float, float] | None = None) -> tuple[str, str]:
    """(title, base64 SVG) of a horizontal bar chart; system names are ASCII, so any font draws them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
    # A fixed hash salt and no date make the same report produce the same SVG bytes.
    with matplotlib.rc_context({"svg.hashsalt": "whisper-adapt", "svg.fonttype": "path"}):
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1.2))
        try:
            xerr = None if errors is None else list(zip(*errors))
            ax.barh(names, shown, xerr=xerr, color="#4c78a8", capsize=3)
            ax.invert_yaxis()
            ax.set_title(title, fontsize=10)
            ax.axvline(0, color="#333", linewidth=0.8)
            if limits is None and errors is None:
                limits = (0.0, max(shown + [0.01]) * 1.2)  # rates and counts start at 0; room for the labels
            if limits is not None:
                ax.set_xlim(*limits)
            for y, value in enumerate(values):
                ax.annotate(_fmt(value), (shown[y], y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    return title, base64.b64encode(buffer.getvalue()).decode("ascii")
