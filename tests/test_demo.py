"""The demo: its pieces, the whole loop on the tiny random Whisper, and (slow) the real loop on base."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.demo import (
    DemoOptions, demo_utterances, meeting_term_counts, run_demo, simulate_review, speech_bank, take_share,
)
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.meeting_audio import build_meeting, read_meeting


def test_take_share_spreads_evenly_and_keeps_order():
    assert take_share(list(range(10)), 1.0) == list(range(10))
    assert take_share(list(range(10)), 0.5) == [0, 2, 4, 6, 8]
    assert take_share(list(range(3)), 0.01) == [0]


def test_simulated_review_writes_the_script_and_rejects_murmur(tmp_path):
    from whisper_adapt.audio import write_wav
    from whisper_adapt.corpus import open_corpus, writing_corpus
    from whisper_adapt.files import file_sha256

    recording = tmp_path / "meeting.wav"
    write_wav(recording, np.zeros(10 * SAMPLE_RATE, np.float32))
    with writing_corpus(tmp_path / "corpus") as corpus:
        rec = corpus.add_recording(recording, file_sha256(recording))
        corpus.add_clip(rec, "a", np.zeros(SAMPLE_RATE, np.float32), 0.5, 6.2, text="紙木と霜木")
        corpus.add_clip(rec, "b", np.zeros(SAMPLE_RATE, np.float32), 6.5, 9.5, text="ご視聴ありがとうございました")
    spans = [{"start_s": 1.0, "end_s": 3.0, "text": "上期と", "murmur": False},
             {"start_s": 4.0, "end_s": 6.0, "text": "下期", "murmur": False},
             {"start_s": 7.0, "end_s": 9.0, "text": "えーと", "murmur": True}]
    assert simulate_review(tmp_path / "corpus", recording, spans) == (1, 1)
    with open_corpus(tmp_path / "corpus") as corpus:
        assert [(c.id, c.text) for c in corpus.clips(status="reviewed")] == [("a", "上期と下期")]
        assert [c.id for c in corpus.clips(status="rejected")] == ["b"]
        assert corpus.revisions("a")[-1].origin == "demo-script"
    assert simulate_review(tmp_path / "corpus", recording, spans) == (0, 0)  # reviewed clips are left alone


def test_meeting_term_counts():
    glossary = parse_glossary("上期 (かみき)\n品保\n")
    spans = [{"start_s": 0, "end_s": 1, "text": "上期と品保。", "murmur": False},
             {"start_s": 2, "end_s": 3, "text": "上期。", "murmur": False},
             {"start_s": 4, "end_s": 5, "text": "品保品保", "murmur": True}]
    assert meeting_term_counts(spans, "紙木と品保、上期", glossary) == (2, 3)


def test_the_speech_bank_holds_everything_the_demo_says():
    bank = speech_bank()
    missing = [pair for pair in demo_utterances() if pair not in bank]
    assert not missing, f"rerun scripts/make_demo_speech.py: {missing[:3]}"
    assert all(path.exists() for path in bank.values())


def test_demo_runs_the_whole_loop_on_the_tiny_model(tiny_whisper_dir, tmp_path):
    """Every stage on a tiny random Whisper: files appear where the README says, the table has its rows."""
    from whisper_adapt.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", str(tiny_whisper_dir), "--share", "0.15", "--epochs", "1"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["seconds"]) == {"speech", "prepare and review", "train", "export", "eval", "transcribe"}
    assert [s["name"] for s in summary["systems"]][:2] == ["unadapted", "unadapted+prompt"]
    assert (out / "report" / "report.html").exists() and (out / "meeting.wav").exists()
    assert (out / "minutes" / "meeting-unadapted.txt").exists()
    minutes = (out / "minutes" / "meeting-unadapted.md").read_text(encoding="utf-8")
    assert minutes.startswith("# meeting.wav\n") and "## Conversation" in minutes
    speakers = summary["speakers"]  # the tiny model's babble is not judged; the figures must be there
    assert speakers["participants"] == 4 and 0 <= speakers["lines_named_right"] <= speakers["lines"]
    assert 0 <= speakers["der"] <= 1.5
    from whisper_adapt.corpus import open_corpus

    with open_corpus(out / "corpus") as corpus:
        origins = {c.text_origin.split(":")[0] for c in corpus.clips(status="reviewed")}
    assert origins == {"synthetic", "demo-script"}


def test_demo_refuses_a_directory_that_is_not_its_own(tmp_path):
    from whisper_adapt.cli import main

    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.slow
def test_real_demo_learns_the_company_words_without_forgetting(model_cache, tmp_path):
    # Train's default schedule on a third of the demo. A shorter schedule is not the product: 4 epochs at the
    # default lr forget (+1.1 points on the 200-clip check for their average), so train rightly keeps little.
    result = run_demo(tmp_path / "demo", DemoOptions(share=0.35))
    systems = {s["name"]: s for s in result.report["systems"]}
    assert result.adapter_dir is not None, "no epoch was kept"
    unadapted, adapted = systems["unadapted"], systems["adapted"]
    assert adapted["test"]["terms"]["recall"] >= unadapted["test"]["terms"]["recall"] + 0.3
    assert adapted["general"]["cer"] <= unadapted["general"]["cer"] + 0.02
    assert result.meeting_terms["adapted"][0] > result.meeting_terms["unadapted"][0]


def test_the_meeting_lines_are_named_by_the_enrolled_voices(tmp_path):
    """The demo's speaker step on its real meeting (a third of the lines, from the speech bank): each
    participant enrolled from other sentences, the lines named right (the script's text stands in for
    Whisper's, so only the speakers are judged)."""
    from whisper_adapt.audio import decode_audio, write_wav
    from whisper_adapt.demo import meeting_labeller, speaker_figures
    from whisper_adapt.resources import demo_file
    from whisper_adapt.speakers import attribute_speakers
    from whisper_adapt.transcript import Segment, Transcript

    bank = speech_bank()
    lines = [line for line in read_meeting(demo_file("meeting.txt")) if not line.murmur]
    audio, spans = build_meeting(take_share(lines, 0.3), lambda text, voice: decode_audio(bank[(voice, text)]),
                                 np.random.default_rng(0))
    path = tmp_path / "meeting.wav"
    write_wav(path, audio)
    labeller, skipped = meeting_labeller(tmp_path, spans, lambda *_: None)
    assert skipped == {} and sorted(p.name for p in (tmp_path / "voices").iterdir()) == [
        "jf_alpha.wav", "jf_gongitsune.wav", "jf_nezumi.wav", "jm_kumo.wav"]
    diarization = labeller.diarize(path)
    script = Transcript(str(path), "ja", len(audio) / SAMPLE_RATE,
                        tuple(Segment(s["start_s"], s["end_s"], s["text"]) for s in spans))
    named = attribute_speakers(script, diarization.turns, labeller.names_for(diarization))
    figures = speaker_figures(spans, diarization, named)
    assert figures["participants"] == figures["speakers_found"] == 4
    assert figures["lines"] == len(spans) and figures["lines_named_right"] >= 0.95 * figures["lines"]
    assert figures["der"] < 0.1
