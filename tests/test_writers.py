import json
from pathlib import Path

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import parse_glossary
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
    assert FORMATS == ("txt", "srt", "vtt", "json", "md")


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
    expected = "unknown output format 'docx'; choose from txt, srt, vtt, json, md"
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
    with pytest.raises(WhisperAdaptError, match="choose from txt, srt, vtt, json, md"):
        write_transcript(TRANSCRIPT, tmp_path, ["txt", "docx"])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_our_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(WhisperAdaptError, match="cannot write the transcript"):
        write_transcript(TRANSCRIPT, blocker, ["txt"])


# A conversation with speakers: 田中 twice in a row (one turn), S2, then 田中 again.
SPOKEN = Transcript(
    source="/recordings/朝会_2026.m4a", language="ja", duration_s=125.0, recorded_on="2026-12-05",
    segments=(
        Segment(1.0, 4.0, "上期の報告です。", speaker="田中",
                words=(Word(1.0, 2.0, "上期の", 0.9, "田中"), Word(2.0, 4.0, "報告です。", 0.8, "田中"))),
        Segment(4.5, 7.0, "かみきは好調でした。", speaker="田中"),
        Segment(8.0, 9.0, "はい", speaker="S2"),
        Segment(65.0, 70.0, "*重要*な <点> です", speaker="田中"),
    ),
)


def test_every_format_carries_the_speakers():
    assert render(SPOKEN, "txt") == "田中:\n上期の報告です。\nかみきは好調でした。\n\nS2:\nはい\n\n田中:\n*重要*な <点> です\n"
    assert render(SPOKEN, "srt").split("\n\n")[2] == "3\n00:00:08,000 --> 00:00:09,000\nS2: はい"
    assert render(SPOKEN, "vtt").split("\n\n")[3] == "00:00:08.000 --> 00:00:09.000\n<v S2>はい"
    segments = json.loads(render(SPOKEN, "json"))["segments"]
    assert [s["speaker"] for s in segments] == ["田中", "田中", "S2", "田中"]
    assert [w["speaker"] for w in segments[0]["words"]] == ["田中", "田中"]


def test_without_speakers_no_format_mentions_them():
    for fmt in ("txt", "srt", "vtt", "json"):
        assert "speaker" not in render(TRANSCRIPT, fmt) and "<v " not in render(TRANSCRIPT, fmt)


def test_minutes_read_as_a_document():
    glossary = parse_glossary("上期 (かみき) ← かみき\n")
    minutes = render(SPOKEN, "md", glossary)
    assert minutes == (
        "# 朝会_2026.m4a\n"
        "\n"
        "- Date: 2026-12-05\n"
        "- Duration: 0:02:05\n"
        "\n"
        "## Participants\n"
        "\n"
        "| Speaker | Speaking time | Share |\n"
        "|---|---:|---:|\n"
        "| 田中 | 0:00:10 | 91% |\n"
        "| S2 | 0:00:01 | 9% |\n"
        "\n"
        "## Conversation\n"
        "\n"
        "**田中** · 0:00:01\n"
        "\n"
        "**上期**の報告です。かみきは好調でした。\n"
        "\n"
        "**S2** · 0:00:08\n"
        "\n"
        "はい\n"
        "\n"
        "**田中** · 0:01:05\n"
        "\n"
        "\\*重要\\*な \\<点\\> です\n"
    )


def test_minutes_without_speakers_break_paragraphs_at_long_pauses():
    plain = Transcript("talk.wav", "en", 30.0, (Segment(0.0, 2.0, "Hello there."), Segment(2.5, 4.0, "Welcome."),
                                                Segment(12.0, 14.0, "Next item.")))
    minutes = render(plain, "md")
    assert "## Participants" not in minutes and "Date" not in minutes
    assert minutes.split("## Conversation\n\n")[1] == "0:00:00\n\nHello there. Welcome.\n\n0:00:12\n\nNext item.\n"
    assert "*Nothing was said.*" in render(Transcript("quiet.wav", "ja", 5.0, ()), "md")


def test_write_transcript_bolds_the_glossary_terms_in_minutes_only(tmp_path: Path):
    glossary = parse_glossary("上期 (かみき)\n")
    paths = write_transcript(SPOKEN, tmp_path, ["md", "txt"], glossary=glossary)
    assert "**上期**の報告です。" in paths[0].read_text(encoding="utf-8")
    assert "**" not in paths[1].read_text(encoding="utf-8")
