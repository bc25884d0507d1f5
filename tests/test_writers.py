import json
from pathlib import Path

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.transcript import Segment, Transcript, Word
from whisper_adapt.writers import FORMATS, render, write_transcript

FIRST = Segment(
    0.0,
    2.5,
    "本日の議題です。",
    avg_logprob=-0.25,
    no_speech_prob=0.01,
    compression_ratio=1.1,
    words=(Word(0.0, 1.0, "本日", 0.9), Word(1.0, 2.5, "の議題です。", 0.75)),
)
# 3723.456 s is 1 h 2 min 3.456 s; the leading space is how Whisper writes segment text.
LAST = Segment(3723.456, 3725.0004, " 以上です。", avg_logprob=-0.5, no_speech_prob=0.125)
DROPPED = Segment(3726.0, 3740.0, "ご視聴ありがとうございました", avg_logprob=-0.3, no_speech_prob=0.5)
TRANSCRIPT = Transcript(
    source="/recordings/meeting 01.m4a",
    language="ja",
    duration_s=3741.5,
    segments=(FIRST, LAST),
    dropped=((DROPPED, "stock phrase: on non-speech"),),
)


def test_formats():
    assert FORMATS == ("txt", "srt", "vtt", "json")


def test_txt_is_one_segment_per_line():
    assert render(TRANSCRIPT, "txt") == "本日の議題です。\n以上です。\n"


def test_srt():
    assert render(TRANSCRIPT, "srt") == (
        "1\n00:00:00,000 --> 00:00:02,500\n本日の議題です。\n"
        "\n"
        "2\n01:02:03,456 --> 01:02:05,000\n以上です。\n"
    )


def test_vtt():
    assert render(TRANSCRIPT, "vtt") == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n本日の議題です。\n"
        "\n"
        "01:02:03.456 --> 01:02:05.000\n以上です。\n"
    )


def test_milliseconds_that_round_up_carry_into_the_minute():
    transcript = Transcript("a.wav", "ja", 61.0, (Segment(59.9996, 60.5, "は\nい"),))
    assert render(transcript, "srt") == "1\n00:01:00,000 --> 00:01:00,500\nは い\n"


def test_json_round_trips():
    assert json.loads(render(TRANSCRIPT, "json")) == {
        "source": "/recordings/meeting 01.m4a",
        "language": "ja",
        "duration": 3741.5,
        "text": "本日の議題です。 以上です。",
        "segments": [
            {
                "id": 0, "start": 0.0, "end": 2.5, "text": "本日の議題です。",
                "avg_logprob": -0.25, "no_speech_prob": 0.01, "compression_ratio": 1.1,
                "words": [
                    {"start": 0.0, "end": 1.0, "word": "本日", "probability": 0.9},
                    {"start": 1.0, "end": 2.5, "word": "の議題です。", "probability": 0.75},
                ],
            },
            {
                "id": 1, "start": 3723.456, "end": 3725.0, "text": " 以上です。",
                "avg_logprob": -0.5, "no_speech_prob": 0.125, "compression_ratio": 1.0, "words": [],
            },
        ],
        "dropped": [
            {
                "start": 3726.0, "end": 3740.0, "text": "ご視聴ありがとうございました",
                "avg_logprob": -0.3, "no_speech_prob": 0.5, "compression_ratio": 1.0, "words": [],
                "reason": "stock phrase: on non-speech",
            }
        ],
        "dropped_counts": {"stock phrase": 1},
    }


def test_json_keeps_japanese_readable():
    assert "本日の議題です。" in render(TRANSCRIPT, "json")


def test_unknown_format_lists_the_valid_ones():
    expected = "unknown output format 'docx'; choose from txt, srt, vtt, json"
    with pytest.raises(WhisperAdaptError, match=expected):
        render(TRANSCRIPT, "docx")


def test_write_transcript_writes_each_format_under_the_source_stem(tmp_path: Path):
    out_dir = tmp_path / "out"
    paths = write_transcript(TRANSCRIPT, out_dir, ["srt", "json"])
    assert paths == [out_dir / "meeting 01.srt", out_dir / "meeting 01.json"]
    # Nothing but the two outputs: no temporary file is left behind.
    assert sorted(path.name for path in out_dir.iterdir()) == ["meeting 01.json", "meeting 01.srt"]
    assert paths[0].read_text(encoding="utf-8") == render(TRANSCRIPT, "srt")
    assert json.loads(paths[1].read_text(encoding="utf-8"))["language"] == "ja"


def test_write_transcript_replaces_an_existing_file(tmp_path: Path):
    (tmp_path / "meeting 01.txt").write_text("old", encoding="utf-8")
    write_transcript(TRANSCRIPT, tmp_path, ["txt"])
    assert (tmp_path / "meeting 01.txt").read_text(encoding="utf-8") == "本日の議題です。\n以上です。\n"


def test_an_unknown_format_writes_nothing(tmp_path: Path):
    with pytest.raises(WhisperAdaptError, match="choose from txt, srt, vtt, json"):
        write_transcript(TRANSCRIPT, tmp_path, ["txt", "docx"])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_our_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(WhisperAdaptError, match="cannot write the transcript"):
        write_transcript(TRANSCRIPT, blocker, ["txt"])
