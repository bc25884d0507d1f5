"""`whisper-adapt eval` end to end: the report's numbers against a direct computation, the HTML page in a
real headless Chromium, and (slow) the real base model on synthesized speech."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.cli import main
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.eval_run import plan_systems
from whisper_adapt.evaluate import normalize_text, paired_bootstrap, pooled_cer, term_scores
from whisper_adapt.glossary import apply_replacements, count_terms, parse_glossary, prompt_text
from whisper_adapt.longform import Recording, Span, score_longform
from whisper_adapt.nonspeech import LongformOptions, build_longform, write_longform
from whisper_adapt.report import LONGFORM_COLUMNS
from whisper_adapt.transcript import Segment

GLOSSARY_TEXT = "上期 (かみき) ← かみき, 紙木, 噛み木\n下期 (しもき) ← しもき, 霜木\nミライ計画 ← 未来計画\n"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _run_cli(args: list[str]) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["eval", *args])
    return status, stdout.getvalue()


def _tone(path: Path, hz: float, seconds: float = 1.5) -> Path:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    write_wav(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def tiny_eval(tiny_whisper_dir, audiofolder_set, synth_wav, tmp_path_factory):
    """`eval` with the tiny random model on tones: whatever it writes, the report must add it up right."""
    work = tmp_path_factory.mktemp("tiny-eval")
    texts = ["まず上期の売上について報告します。", "下期は<b>ミライ計画</b>です & 「上期」も", "売上は三百万円です"]
    test_set = audiofolder_set("test", [(t, _tone(work / f"t{i}.wav", 220 + 110 * i)) for i, t in enumerate(texts)])
    general = audiofolder_set("general", [(t, _tone(work / f"g{i}.wav", 700 + 50 * i)) for i, t in
                                          enumerate(["今日はいい天気ですね", "来週の予定を確認しましょう"])])
    nonspeech = work / "nonspeech"
    nonspeech.mkdir()
    write_wav(nonspeech / "silence.wav", np.zeros(3 * SAMPLE_RATE, np.float32))
    (work / "terms.txt").write_text(GLOSSARY_TEXT, encoding="utf-8")
    sentences = [("jm_kumo", SLOW_TEST_SENTENCES[0]), ("jf_nezumi", SLOW_GENERAL_SENTENCES[1])]
    audio, reference = build_longform(sentences, lambda text, voice: decode_audio(synth_wav(text, voice)),
                                      np.random.default_rng(0), LongformOptions(gap_s=(4.0, 6.0), tail_s=3.0))
    write_longform(work / "longform", "meeting", audio, reference)
    out = work / "report"
    status, stdout = _run_cli([
        "--test", str(test_set), "--general", str(general), "--nonspeech", str(nonspeech),
        "--longform", str(work / "longform"),
        "--glossary", str(work / "terms.txt"), "--model", str(tiny_whisper_dir),
        "--system", f"copy={tiny_whisper_dir}", "--beam-size", "1", "--numerals", "--bootstrap", "300",
        "--seed", "7", "--perturb", "--perturb-seed", "5", "--device", "cpu", "--compute-type", "int8",
        "--out", str(out)])
    return status, stdout, out


def test_eval_prints_and_writes_the_side_by_side_comparison(tiny_eval):
    status, stdout, out = tiny_eval
    assert status == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    names = [s["name"] for s in report["systems"]]
    assert names == ["unadapted", "unadapted+prompt", "unadapted+hotwords", "unadapted+dictionary",
                     "copy", "copy+dictionary"]
    for name in names:
        assert name in stdout
    assert "forgetting ΔCER" in stdout and "non-speech chars/min" in stdout and "shifted term recall" in stdout
    assert all(column in stdout for column in LONGFORM_COLUMNS)
    # Every option reached the report.
    settings = report["settings"]
    assert settings["decoding_clips"]["beam_size"] == 1 and settings["decoding_clips"]["vad"] is False
    assert settings["decoding_nonspeech"]["vad"] is True and settings["decoding_clips"]["temperatures"] == [0.0]
    assert settings["decoding_longform"]["vad"] is True and settings["decoding_longform"]["guards"]["max_pause_s"] == 1.0
    assert settings["normalization"]["numerals"] is True
    assert settings["bootstrap"] == {"samples": 300, "seed": 7, "interval": 0.95}
    assert (settings["device"], settings["compute_type"]) == ("cpu", "int8")
    assert settings["resolved"]["device"] == "cpu" and settings["resolved"]["compute_type"].startswith("int8")
    terms = prompt_text(parse_glossary(GLOSSARY_TEXT))
    assert report["systems"][1]["initial_prompt"] == terms and report["systems"][2]["hotwords"] == terms


def test_report_numbers_match_a_direct_computation(tiny_eval):
    _, _, out = tiny_eval
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    glossary = parse_glossary(GLOSSARY_TEXT)
    test_refs = [c["reference"] for c in report["clips"]["test"]]
    general_refs = [c["reference"] for c in report["clips"]["general"]]
    unadapted_general = [c["hypotheses"]["unadapted"] for c in report["clips"]["general"]]
    for system in report["systems"]:
        hyps = [c["hypotheses"][system["name"]] for c in report["clips"]["test"]]
        assert system["test"]["cer"] == pytest.approx(_jiwer_cer(test_refs, hyps, numerals=True))
        said = sum(sum(count_terms(normalize_text(r), glossary).values()) for r in test_refs)
        assert system["test"]["terms"]["said"] == said == 4
        assert system["test"]["terms"]["recall"] == pytest.approx(term_scores(test_refs, hyps, glossary).recall)
        general_hyps = [c["hypotheses"][system["name"]] for c in report["clips"]["general"]]
        assert system["general"]["cer"] == pytest.approx(_jiwer_cer(general_refs, general_hyps, numerals=True))
        if system["name"] != "unadapted":
            expected = paired_bootstrap(general_refs, unadapted_general, general_hyps, n=300, seed=7, numerals=True)
            assert tuple(system["forgetting"][k] for k in ("delta_cer", "low", "high")) == pytest.approx(expected)
    by_name = {s["name"]: s for s in report["systems"]}
    # The same model under another name decodes identically: no forgetting, exactly.
    assert by_name["copy"]["forgetting"] == {"delta_cer": 0.0, "low": 0.0, "high": 0.0, "verdict": "no significant change"}
    assert by_name["copy"]["model_sha256"] == by_name["unadapted"]["model_sha256"]
    assert report["datasets"]["nonspeech"]["items"] == 1 and report["datasets"]["test"]["items"] == 3
    assert report["datasets"]["longform"]["items"] == 1


def test_perturb_scores_the_test_clips_through_rooms_and_noise_beside_the_clean_ones(tiny_eval):
    from whisper_adapt.eval_run import Item, shifted_items

    _, _, out = tiny_eval
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    shifted = report["datasets"]["shifted"]
    assert shifted["items"] == 3 and shifted["perturbation"]["seed"] == 5
    assert [c["id"] for c in report["clips"]["shifted"]] == [c["id"] for c in report["clips"]["test"]]
    assert set(shifted["perturbation"]["chains"]) == {c["id"] for c in report["clips"]["test"]}
    refs = [c["reference"] for c in report["clips"]["shifted"]]
    for system in report["systems"]:
        hyps = [c["hypotheses"][system["name"]] for c in report["clips"]["shifted"]]
        assert system["shifted"]["cer"] == pytest.approx(_jiwer_cer(refs, hyps, numerals=True))
    clean = [Item(c["id"], Path(c["audio_path"]), c["reference"], decode_audio(c["audio_path"]))
             for c in report["clips"]["test"]]
    first, chains = shifted_items(clean, 5)
    again, _ = shifted_items(clean, 5)
    other, _ = shifted_items(clean, 6)
    assert chains == shifted["perturbation"]["chains"]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again))  # the seed decides everything
    assert any(not np.array_equal(a.audio, c.audio) for a, c in zip(first, clean))
    assert any(not np.array_equal(a.audio, b.audio) for a, b in zip(first, other))


def test_report_longform_figures_match_the_segments_it_lists(tiny_eval):
    _, _, out = tiny_eval
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    [clip] = report["clips"]["longform"]
    recording = Recording(clip["id"], Path(clip["audio_path"]), Path(), tuple(Span(**span) for span in clip["spans"]))
    assert [s.text for s in recording.spans] == [SLOW_TEST_SENTENCES[0], SLOW_GENERAL_SENTENCES[1]]
    for system in report["systems"]:
        segments = [Segment(start, end, text) for start, end, text in clip["segments"][system["name"]]]
        assert "".join(s.text for s in segments) == clip["hypotheses"][system["name"]]
        scores = score_longform([(recording, clip["duration_s"], segments)], parse_glossary(GLOSSARY_TEXT), numerals=True)
        figures = system["longform"]
        assert figures["cer"] == pytest.approx(scores.cer) and figures["spans"] == 2
        assert figures["invented_chars"] == scores.invented_chars and figures["loops"] == scores.loops
        assert figures["nonspeech_minutes"] == pytest.approx((clip["duration_s"] - sum(
            s.end_s - s.start_s for s in recording.spans)) / 60, abs=1e-4)  # duration_s is rounded to ms
        assert figures["max_silence_covered_s"] == pytest.approx(scores.max_silence_covered_s)
        assert figures["matched_spans"] == len(scores.timestamp_errors)
        assert clip["scores"][system["name"]] == figures  # one recording: the set's figures are its own


def _jiwer_cer(references: list[str], hypotheses: list[str], numerals: bool) -> float:
    import jiwer

    pairs = [(normalize_text(r, numerals), normalize_text(h, numerals)) for r, h in zip(references, hypotheses)]
    outputs = [jiwer.process_characters(r, h) for r, h in pairs]
    return sum(o.substitutions + o.deletions + o.insertions for o in outputs) / sum(len(r) for r, _ in pairs)


def test_report_html_renders_offline_in_headless_chromium(tiny_eval):
    _, _, out = tiny_eval
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to test the report page")
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto((out / "report.html").as_uri(), wait_until="load")
            page_facts = page.evaluate(_PAGE_FACTS_JS)
        finally:
            browser.close()
    assert problems == []
    assert requests == [(out / "report.html").as_uri()]  # self-contained: nothing else is fetched
    assert page_facts["scripts"] == 0  # the clip text <b>…</b> & co. arrive as text, not markup
    assert "下期は<b>ミライ計画</b>です & 「上期」も" in page_facts["text"]
    assert page_facts["images"] and all(width > 0 for width in page_facts["images"])  # every chart decoded
    assert page_facts["audio"] and all(abs(d - 1.5) < 0.05 for d in page_facts["audio"])  # clips play
    assert page_facts["diff_spans"] > 0
    assert page_facts["term_rows"] == 3
    assert "Long-form recordings" in page_facts["text"] and "meeting" in page_facts["text"]


_PAGE_FACTS_JS = """async () => {
  const audio = await Promise.all(Array.from(document.querySelectorAll('audio')).map(a => new Promise(resolve => {
    a.addEventListener('loadedmetadata', () => resolve(a.duration));
    a.addEventListener('error', () => resolve(-1));
    a.preload = 'metadata'; a.load();
  })));
  return {
    scripts: document.scripts.length, text: document.body.innerText,
    images: Array.from(document.images).map(i => i.naturalWidth), audio,
    diff_spans: document.querySelectorAll('td.diff span').length,
    term_rows: Array.from(document.querySelectorAll('h2')).find(h => h.textContent.startsWith('Glossary'))
      .nextElementSibling.querySelectorAll('tbody tr').length,
  };
}"""


def test_systems_share_one_decode_when_only_the_dictionary_differs():
    glossary = parse_glossary(GLOSSARY_TEXT)
    systems = plan_systems("base", [("ours", "out/model")], ["dictionary", "prompt"], glossary)
    assert [s.name for s in systems] == ["unadapted", "unadapted+prompt", "unadapted+dictionary", "ours", "ours+dictionary"]
    assert systems[0].decode_key == systems[2].decode_key and systems[3].decode_key == systems[4].decode_key
    assert len({s.decode_key for s in systems}) == 3


@pytest.mark.parametrize("adapted, compare, problem", [
    ([("ours", "m")], ["lora"], "unknown comparison lora"),
    ([("上期モデル", "m")], [], "use ASCII letters"),
    ([("ours", "m"), ("ours", "n")], [], "used twice"),
    ([("unadapted", "m")], ["prompt"], "used twice"),
    ([("ours+prompt", "m")], [], "use ASCII letters"),  # '+' is kept for the names the plan makes
])
def test_bad_system_plans_are_refused(adapted, compare, problem):
    with pytest.raises(WhisperAdaptError, match=problem):
        plan_systems("base", adapted, compare, parse_glossary(GLOSSARY_TEXT))


def test_eval_lists_every_unreadable_file_and_writes_nothing(tiny_whisper_dir, audiofolder_set, tmp_path, capsys):
    test_set = audiofolder_set("readable", [("上期です", _tone(tmp_path / "ok.wav", 300))])
    nonspeech = tmp_path / "ns"
    nonspeech.mkdir()
    (nonspeech / "broken.wav").write_bytes(b"RIFF not really")
    (nonspeech / "empty.mp3").write_bytes(b"")
    (tmp_path / "terms.txt").write_text(GLOSSARY_TEXT, encoding="utf-8")
    status, _ = _run_cli(["--test", str(test_set), "--nonspeech", str(nonspeech), "--glossary", str(tmp_path / "terms.txt"),
                          "--model", str(tiny_whisper_dir), "--out", str(tmp_path / "out"), "--system", "bad"])
    assert status == 2 and "expected NAME=MODEL" in capsys.readouterr().err
    longform = tmp_path / "lf"
    longform.mkdir()
    (longform / "orphan.json").write_text("[]")
    status, _ = _run_cli(["--test", str(test_set), "--nonspeech", str(nonspeech), "--glossary", str(tmp_path / "terms.txt"),
                          "--model", str(tiny_whisper_dir), "--out", str(tmp_path / "out"), "--longform", str(longform)])
    err = capsys.readouterr().err
    assert status == 2 and "3 inputs cannot be used" in err and "broken.wav" in err and "empty.mp3" in err
    assert "orphan.json" in err and "no recording for this reference" in err
    assert not (tmp_path / "out").exists()


# Held-out speech in a voice the slow test does not train or tune on; each sentence holds glossary terms.
SLOW_TEST_SENTENCES = ("まず上期の売上について報告します。", "下期はミライ計画を進めます。", "上期と下期の予算を比べましょう。")
SLOW_GENERAL_SENTENCES = ("今日はいい天気ですね。", "来週の予定を確認しましょう。")


@pytest.mark.slow
def test_eval_with_real_base_matches_direct_transcription(synth_wav, audiofolder_set, tmp_path):
    """The real base model on synthesized speech: the report's hypotheses and figures equal what a direct
    transcription with the recorded settings gives, scored here independently with jiwer."""
    from whisper_adapt.models import resolve_model
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_audio

    test_set = audiofolder_set("slow-test", [(t, synth_wav(t, "jm_kumo")) for t in SLOW_TEST_SENTENCES])
    general = audiofolder_set("slow-general", [(t, synth_wav(t, "jf_nezumi")) for t in SLOW_GENERAL_SENTENCES])
    (tmp_path / "terms.txt").write_text(GLOSSARY_TEXT, encoding="utf-8")
    status, stdout = _run_cli([
        "--test", str(test_set), "--general", str(general), "--glossary", str(tmp_path / "terms.txt"),
        "--compare", "prompt,dictionary", "--system", f"again={resolve_model('base', 'ct2')}",
        "--device", "cpu", "--out", str(tmp_path / "out")])
    assert status == 0 and "unadapted+prompt" in stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))

    glossary = parse_glossary(GLOSSARY_TEXT)
    model = load_model("base", device="cpu")
    settings = TranscribeOptions(language="ja", beam_size=5, vad=False, temperatures=(0.0,))
    transcripts = [transcribe_audio(model, decode_audio(synth_wav(t, "jm_kumo")), settings) for t in SLOW_TEST_SENTENCES]
    direct = {"unadapted": [t.text for t in transcripts],
              "unadapted+dictionary": ["".join(apply_replacements(s.text, glossary) for s in t.segments) for t in transcripts]}
    by_name = {s["name"]: s for s in report["systems"]}
    for name, hypotheses in direct.items():
        assert [c["hypotheses"][name] for c in report["clips"]["test"]] == hypotheses
        assert by_name[name]["test"]["cer"] == pytest.approx(_jiwer_cer(list(SLOW_TEST_SENTENCES), hypotheses, False))
        recognized = sum(min(count_terms(normalize_text(r), glossary)[term], count_terms(normalize_text(h), glossary)[term])
                         for r, h in zip(SLOW_TEST_SENTENCES, hypotheses) for term in ("上期", "下期", "ミライ計画"))
        assert by_name[name]["test"]["terms"]["recognized"] == recognized
    assert by_name["unadapted"]["test"]["terms"]["said"] == 5
    # base reads back its own synthesized everyday speech well: a sanity bound on the whole pipeline.
    assert by_name["unadapted"]["general"]["cer"] < 0.2
    assert by_name["again"]["forgetting"]["delta_cer"] == 0.0
    assert pooled_cer(list(SLOW_TEST_SENTENCES), direct["unadapted"]) == pytest.approx(by_name["unadapted"]["test"]["cer"])


@pytest.mark.slow
def test_eval_scores_a_real_longform_recording(longform_set, synth_wav, audiofolder_set, tmp_path):
    """The packaged base on a 127-s recording, 92% of it room noise, murmur and keyboard: every system gets
    the long-form figures, and with our guards base invents nothing and no segment covers silence."""
    from whisper_adapt.resources import demo_file

    test_set = audiofolder_set("lf-test", [(t, synth_wav(t, "jm_kumo")) for t in SLOW_TEST_SENTENCES[:1]])
    status, stdout = _run_cli([
        "--test", str(test_set), "--longform", str(longform_set), "--glossary", str(demo_file("glossary.txt")),
        "--compare", "dictionary", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert status == 0 and "long-form · 1 recordings, 2.1 min" in stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["datasets"]["longform"]["audio_s"] == pytest.approx(126.999, abs=0.01)
    for system in report["systems"]:
        figures = system["longform"]
        assert figures["spans"] == 3 and figures["nonspeech_minutes"] == pytest.approx((126.999 - 10.416) / 60, abs=0.01)
        assert figures["cer"] < 0.3 and figures["terms"]["said"] == 3
        assert figures["invented_chars_per_minute"] <= 1.0 and figures["loops"] == 0
        assert figures["max_silence_covered_s"] <= 2.0 and figures["segments_over_silence_limit"] == 0
        assert figures["matched_spans"] == 3 and figures["mean_start_error_s"] < 1.0 and figures["mean_end_error_s"] < 1.0
    segments = report["clips"]["longform"][0]["segments"]["unadapted"]
    assert all(32.0 < start < end < 123.0 for start, end, _ in segments)
