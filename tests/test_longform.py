"""Long-form sets: reading references (JSON, SRT, WebVTT) strictly, and the scores against hand-computed values."""

from __future__ import annotations

import json

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.longform import (
    Recording, Span, invented_segments, load_longform_set, nonspeech_s, read_reference, score_longform,
    silence_covered_s, timestamp_errors,
)
from whisper_adapt.transcript import Segment

SPANS = (Span(1.0, 3.5, "上期の売上です。", "田中"), Span(5.0, 7.25, "はい、わかりました & 了解。", None))
JSON_REF = json.dumps([{"start": 1, "end": 3.5, "text": "上期の売上です。", "speaker": "田中"},
                       {"start": 5.0, "end": 7.25, "text": "はい、わかりました & 了解。"}], ensure_ascii=False)
SRT_REF = ("1\n00:00:01,000 --> 00:00:03,500\n上期の売上です。\n\n"
           "2\n00:00:05,000 --> 00:00:07,250\nはい、わかりました\n&amp; 了解。\n")
VTT_REF = ("WEBVTT\nKind: captions\n\nNOTE written by hand\n\n"
           "intro\n00:00:01.000 --> 00:00:03.500 align:start\n<v.loud 田中>上期の<b>売上</b>です。</v>\n\n"
           "00:05.000 --> 00:07.250\nはい、わかりました\n&amp; 了解。\n")


@pytest.mark.parametrize("suffix, content", [(".json", JSON_REF), (".srt", SRT_REF), (".vtt", VTT_REF)])
def test_the_three_reference_formats_read_the_same_spans(tmp_path, suffix, content):
    path = tmp_path / f"meeting{suffix}"
    path.write_text(content, encoding="utf-8")
    spans = read_reference(path)
    expected = SPANS if suffix != ".srt" else tuple(Span(s.start_s, s.end_s, s.text) for s in SPANS)  # SRT has no voices
    assert spans == expected


def test_spans_are_put_in_time_order(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"start": 5, "end": 6, "text": "b"}, {"start": 1, "end": 2, "text": "a"}]))
    assert [s.text for s in read_reference(path)] == ["a", "b"]


@pytest.mark.parametrize("name, content, problem", [
    ("overlap.json", '[{"start": 1, "end": 4, "text": "a"}, {"start": 3, "end": 5, "text": "b"}]', "spans overlap: 1–4 s"),
    ("negative.json", '[{"start": -0.5, "end": 2, "text": "a"}]', "span 1 starts at a negative time"),
    ("backwards.json", '[{"start": 1, "end": 2, "text": "a"}, {"start": 9, "end": 8, "text": "b"}]',
     "span 2 does not end (8 s) after it starts (9 s)"),
    ("string-time.json", '[{"start": "00:01", "end": 2, "text": "a"}]', "span 1: start and end must be numbers"),
    ("nan-time.json", '[{"start": NaN, "end": 2, "text": "a"}]', "span 1: start and end must be numbers"),
    ("no-text.json", '[{"start": 1, "end": 2}]', "span 1: text (and speaker, if given) must be strings"),
    ("not-a-list.json", '{"start": 1, "end": 2, "text": "a"}', "expected a JSON list"),
    ("broken.json", '[{"start": 1, "end": 2, "text": "a"', "not valid JSON (line 1"),
    ("bad-time.srt", "1\n00:00:01,000 --> 00:00:0x,500\n上期\n", "line 2: cannot read the cue times"),
    ("arrow.vtt", "WEBVTT\n\n00:00:01.000 -> 00:00:03.500\n上期\n", "line 3: expected cue timings"),
    ("no-header.vtt", "00:00:01.000 --> 00:00:03.500\n上期\n", "must start with 'WEBVTT'"),
])
def test_a_bad_reference_names_the_file_and_the_problem(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WhisperAdaptError) as caught:
        read_reference(path)
    assert caught.value.path == str(path) and problem in caught.value.problem


def test_a_set_pairs_recordings_with_references_and_reports_every_problem_at_once(tmp_path):
    for name in ("a.wav", "b.mp4", "lonely.m4a", "twice.wav", "orphan.srt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a.json").write_text(JSON_REF, encoding="utf-8")
    (tmp_path / "b.vtt").write_text(VTT_REF, encoding="utf-8")
    (tmp_path / "twice.json").write_text(JSON_REF, encoding="utf-8")
    (tmp_path / "twice.srt").write_text(SRT_REF, encoding="utf-8")
    (tmp_path / "orphan.srt").write_text(SRT_REF, encoding="utf-8")
    with pytest.raises(WhisperAdaptError) as caught:
        load_longform_set(tmp_path)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "lonely.m4a: no reference for this recording (expected lonely.json" in message
    assert "orphan.srt: no recording for this reference" in message
    assert "twice.wav: 2 references for one recording (twice.json, twice.srt)" in message
    for name in ("lonely.m4a", "orphan.srt", "twice.wav", "twice.json", "twice.srt"):
        (tmp_path / name).unlink()
    recordings = load_longform_set(tmp_path)  # notes.txt is neither: left alone
    assert [(r.name, r.audio_path.name, r.reference_path.name) for r in recordings] == [
        ("a", "a.wav", "a.json"), ("b", "b.mp4", "b.vtt")]
    assert recordings[1].spans[0].speaker == "田中"


def test_an_empty_or_missing_set_is_refused(tmp_path):
    with pytest.raises(WhisperAdaptError, match="no recordings"):
        load_longform_set(tmp_path)
    with pytest.raises(WhisperAdaptError, match="must be a folder"):
        load_longform_set(tmp_path / "nowhere")


# One minute, two spans (7 s of speech, 53 s without). Hand-computed figures are in the comments.
REF = (Span(10.0, 14.0, "上期の売上です。"), Span(40.0, 43.0, "はい。"))
HYP = (
    Segment(9.5, 14.2, "上期の売上です"),  # span 0: start -0.5, end +0.2; silence 0.5 + 0.2
    Segment(20.0, 25.0, "ご視聴ありがとうございました"),  # invented (14 characters); silence 5
    Segment(14.5, 15.5, "えー"),  # within 1 s of span 0: not invented; matches no span; silence 1
    Segment(38.0, 43.1, "はい"),  # span 1: start -2, end +0.1; silence 2 + 0.1 > 2
)


def test_invented_segments_overlap_no_span_widened_by_a_second():
    assert invented_segments(HYP, REF) == [HYP[1]]
    assert invented_segments(HYP, REF, margin_s=0.4) == [HYP[1], HYP[2]]
    assert nonspeech_s(60.0, REF) == pytest.approx(53.0)


def test_silence_covered_and_timestamp_errors():
    assert [silence_covered_s(s, REF) for s in HYP] == pytest.approx([0.7, 5.0, 1.0, 2.1])
    assert _flat(timestamp_errors(HYP, REF)) == pytest.approx([-0.5, 0.2, -2.0, 0.1])
    # A span said in two segments: together they start with the first and end with the last.
    split = (Segment(10.2, 12.0, "上期の"), Segment(12.0, 13.5, "売上です"))
    assert _flat(timestamp_errors(split, REF)) == pytest.approx([0.2, -0.5])


def _flat(pairs: list[tuple[float, float]]) -> list[float]:
    return [value for pair in pairs for value in pair]


def test_scores_pool_over_recordings():
    looped = (Recording("b", None, None, (Span(0.0, 2.0, "上がります"),)), 30.0,
              (Segment(0.0, 2.0, "上が上が上が上が上がります"),))
    scores = score_longform([(Recording("a", None, None, REF), 60.0, HYP), looped],
                            parse_glossary("上期\n"))
    # Recording a: reference 上期の売上ですはい (9), hypothesis adds 14 + 2 characters: 16 insertions.
    # Recording b: 上がります (5) against 上が上が上が上が上がります: 8 insertions.
    assert (scores.char_edits.edits, scores.char_edits.reference_length) == (24, 14)
    assert scores.cer == pytest.approx(24 / 14)
    assert scores.terms.recall == 1.0 and scores.spans == 3
    assert scores.nonspeech_minutes == pytest.approx((53 + 28) / 60)
    assert scores.invented_chars == 14 and scores.invented_chars_per_minute == pytest.approx(14 / (81 / 60))
    assert scores.loops == 1
    assert (scores.mean_start_error_s, scores.mean_end_error_s) == pytest.approx(((0.5 + 2 + 0) / 3, (0.2 + 0.1) / 3))
    assert scores.max_silence_covered_s == pytest.approx(5.0) and scores.segments_over_silence_limit == 2
