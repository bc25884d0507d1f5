"""A meeting built from a script: its spans, its murmur, its pauses; reading a script file."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.meeting_audio import Line, build_meeting, read_meeting, script_for


def _tone(text: str, voice: str) -> np.ndarray:
    """Stand-in speech: one second per four characters, so spans can be checked against lengths."""
    return np.full(len(text) * SAMPLE_RATE // 4, 0.1, np.float32)


def test_meeting_spans_follow_the_script_and_murmur_is_one_stretch():
    lines = [Line("jf_alpha", "一二三四"), Line("jm_kumo", "あいう", True), Line("jf_alpha", "かきくけこさし", True),
             Line("jm_kumo", "五六七八")]
    audio, spans = build_meeting(lines, _tone, np.random.default_rng(0))
    assert [s["murmur"] for s in spans] == [False, True, False]
    assert spans[1]["text"] == "あいうかきくけこさし"
    assert spans[0]["end_s"] - spans[0]["start_s"] == pytest.approx(1.0)
    assert spans[1]["end_s"] - spans[1]["start_s"] == pytest.approx(7 / 4)  # the longest murmur line
    gaps = [b["start_s"] - a["end_s"] for a, b in zip(spans, spans[1:])]
    assert all(0.6 <= gap <= 2.2 for gap in gaps)
    assert len(audio) / SAMPLE_RATE == pytest.approx(spans[-1]["end_s"] + 1.0, abs=1e-3)
    assert np.abs(audio[: int(spans[0]["start_s"] * SAMPLE_RATE) - 10]).max() < 0.05  # pauses are quiet


def test_read_meeting_marks_the_murmur_lines(tmp_path):
    path = tmp_path / "meeting.txt"
    path.write_text("# c\njf_alpha\tこんにちは。\n[murmur]\njm_kumo\tえーと。\njf_alpha\tあのー。\n[/murmur]\n"
                    "jm_kumo\tはい。\n", encoding="utf-8")
    assert read_meeting(path) == [Line("jf_alpha", "こんにちは。"), Line("jm_kumo", "えーと。", True),
                                  Line("jf_alpha", "あのー。", True), Line("jm_kumo", "はい。")]
    path.write_text("jf_alpha こんにちは\n", encoding="utf-8")
    with pytest.raises(Exception, match="line 1: expected voice<TAB>text"):
        read_meeting(path)


def test_script_for_a_clip_takes_the_sentences_centred_in_it():
    spans = [{"start_s": 1.0, "end_s": 3.0, "text": "あ", "murmur": False},
             {"start_s": 4.0, "end_s": 6.0, "text": "い", "murmur": False},
             {"start_s": 7.0, "end_s": 9.0, "text": "う", "murmur": True}]
    assert script_for(0.5, 6.2, spans) == ("あい", False)
    assert script_for(2.5, 6.2, spans) == ("い", False)
    assert script_for(6.5, 9.5, spans) == ("", True)
