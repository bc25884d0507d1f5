"""synthcorpus.py and `whisper-adapt synth`: real TTS (kokoro) into a real corpus, kept to four short sentences."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.cli import main
from whisper_adapt.corpus import open_corpus
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.synthcorpus import augment, expand_templates, spoken_text, synthetic_clip_id

GLOSSARY_TEXT = "上期 (かみき) ← 紙木\n上期末 (かみきまつ)\n田中部長\nAI (エーアイ)\n"
GLOSSARY = parse_glossary(GLOSSARY_TEXT)


def test_tts_hears_readings_and_the_longest_term():
    assert spoken_text("上期の売上です。", GLOSSARY) == "かみきの売上です。"
    assert spoken_text("上期末に田中部長が来ます。", GLOSSARY) == "かみきまつに田中部長が来ます。", "no reading: as written"
    # ASCII terms match whole words only; a misrecognition in a sentence is spoken as written.
    assert spoken_text("AIとMAILと紙木", GLOSSARY) == "エーアイとMAILと紙木"


def test_templates_are_filled_with_every_term(tmp_path):
    (tmp_path / "t.txt").write_text("# comment\n{term}です。\n\n今日は{term}の話。\n", encoding="utf-8")
    filled = expand_templates(tmp_path / "t.txt", GLOSSARY)
    assert len(filled) == 2 * len(GLOSSARY.terms)
    assert filled[:2] == ["上期です。", "上期末です。"] and filled[-1] == "今日はAIの話。"
    (tmp_path / "bad.txt").write_text("{term}です。\n用語なし。\n", encoding="utf-8")
    with pytest.raises(WhisperAdaptError, match="line 2: template without"):
        expand_templates(tmp_path / "bad.txt", GLOSSARY)


def test_augmentation_is_seeded_and_light():
    speech = (0.3 * np.sin(2 * np.pi * 220 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    first = augment(speech, np.random.default_rng([0, 1]))
    assert np.array_equal(first, augment(speech, np.random.default_rng([0, 1])))
    assert not np.array_equal(first, augment(speech, np.random.default_rng([1, 1])))
    gain_db = 10 * np.log10(np.mean(first.astype(np.float64) ** 2) / np.mean(speech.astype(np.float64) ** 2))
    assert -6.1 <= gain_db <= 6.1
    assert synthetic_clip_id("上期です。", "jf_alpha") == synthetic_clip_id("上期です。", "jf_alpha")
    assert synthetic_clip_id("上期です。", "jf_alpha") != synthetic_clip_id("上期です。", "jm_kumo")


def test_synth_adds_reviewed_clips_per_voice_and_a_rerun_adds_nothing(tmp_path, capsys):
    (tmp_path / "terms.txt").write_text(GLOSSARY_TEXT, encoding="utf-8")
    (tmp_path / "s.txt").write_text("上期の売上です。\n田中部長が来ます。\n上期末です。\n", encoding="utf-8")
    args = ["synth", "--glossary", str(tmp_path / "terms.txt"), "--sentences", str(tmp_path / "s.txt"),
            "--corpus", str(tmp_path / "c")]
    assert main(args) == 0
    with open_corpus(tmp_path / "c") as corpus:
        clips = corpus.clips()
        assert sorted((c.text, c.recording, c.status, c.text_origin) for c in clips) == [
            ("上期の売上です。", "synthetic-jf_alpha", "reviewed", "synthetic:jf_alpha"),
            ("上期末です。", "synthetic-jf_alpha", "reviewed", "synthetic:jf_alpha"),
            ("田中部長が来ます。", "synthetic-jm_kumo", "reviewed", "synthetic:jm_kumo"),
        ]
        assert all(0.5 < decode_audio(c.audio_path).size / SAMPLE_RATE < 5 for c in clips)
    capsys.readouterr()
    assert main(args) == 0
    assert "0 clips synthesized, 3 already" in " ".join(capsys.readouterr().err.split())
    with open_corpus(tmp_path / "c") as corpus:
        assert [c.id for c in corpus.clips()] == [c.id for c in clips]


def test_synth_from_templates(tmp_path):
    (tmp_path / "terms.txt").write_text("上期 (かみき)\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("{term}の予定です。\n", encoding="utf-8")
    assert main(["synth", "--glossary", str(tmp_path / "terms.txt"), "--templates", str(tmp_path / "t.txt"),
                 "--corpus", str(tmp_path / "c"), "--voices", "jf_nezumi"]) == 0
    with open_corpus(tmp_path / "c") as corpus:
        assert [(c.text, c.speaker) for c in corpus.clips(status="reviewed")] == [("上期の予定です。", "jf_nezumi")]


@pytest.mark.parametrize("extra, message", [
    (["--sentences", "missing.txt"], "missing.txt: file not found"),
    (["--templates", "bad.txt"], "line 1: template without {term}"),
    (["--sentences", "s.txt", "--voices", "jf_alpha,nobody"], "unknown voice nobody"),
    (["--sentences", "s.txt", "--templates", "bad.txt"], "exactly one of --sentences and --templates"),
    ([], "exactly one of --sentences and --templates"),
])
def test_bad_input_is_one_error_line(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "terms.txt").write_text(GLOSSARY_TEXT, encoding="utf-8")
    (tmp_path / "s.txt").write_text("上期です。\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_text("用語のない文。\n", encoding="utf-8")
    assert main(["synth", "--glossary", "terms.txt", "--corpus", "c", *extra]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "c").exists(), "nothing is created when the input is bad"
