from dataclasses import replace

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.guards import (
    GuardOptions,
    apply_guards,
    collapse_repeats,
    compression_ratio,
    count_loops,
    is_stock_phrase,
    looks_like_silence,
)
from whisper_adapt.transcript import Segment, Word

OPTIONS = GuardOptions()
NORMAL = "本日は上期の売上について田中部長からご報告いただきます。前年同期比で一割ほど伸びています。"


def spoken(start_s: float, end_s: float, text: str) -> Segment:
    """A segment decoded with confidence, as real speech is."""
    return Segment(start_s, end_s, text, avg_logprob=-0.2, no_speech_prob=0.02)


def test_compression_ratio_of_a_loop_and_of_normal_japanese():
    assert compression_ratio("上が" * 30) > 2.4  # 180 bytes compress to 18
    assert compression_ratio(NORMAL) < 2.4


def test_collapse_catches_a_loop_before_the_compression_ratio_does():
    four = "上が" * 4
    assert compression_ratio(four) < 2.4
    assert collapse_repeats(four, OPTIONS) == "上が"


def test_loop_collapses_to_one_occurrence_and_keeps_the_rest():
    assert collapse_repeats("今期の上が上が上が上が上が上が見込みです", OPTIONS) == "今期の上が見込みです"


@pytest.mark.parametrize(
    "text",
    [
        "はいはい",
        "はいはいはい",  # three in a row is still speech
        "ありがとうございます。ありがとうございます。",
        "売上は1000000円です",  # a run of digits is a number, not a loop
        "えー……。",
    ],
)
def test_legitimate_repetition_is_kept(text):
    assert collapse_repeats(text, OPTIONS) == text
    assert count_loops(text, OPTIONS) == 0


def test_count_loops_counts_runs_not_repeats():
    assert count_loops("上が上が上が上が、それと下が下が下が下が下が", OPTIONS) == 2


def test_max_repeats_is_an_option():
    assert collapse_repeats("はいはい", replace(OPTIONS, max_repeats=1)) == "はい"


def test_invalid_options_are_rejected():
    with pytest.raises(WhisperAdaptError, match="max_repeats"):
        replace(OPTIONS, max_repeats=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ご視聴ありがとうございました。", True),
        (" ご視聴、ありがとうございました！", True),
        ("ＴＨＡＮＫＳ ｆｏｒ watching!", True),  # NFKC and case folding
        ("ご視聴ありがとうございました。チャンネル登録お願いします", True),
        ("本日はご視聴ありがとうございました", False),
        ("よろしくお願いします", False),  # said in every meeting: not on the list
        ("♪", False),
    ],
)
def test_is_stock_phrase(text, expected):
    assert is_stock_phrase(text, OPTIONS) is expected


@pytest.mark.parametrize(
    ("no_speech_prob", "avg_logprob", "expected"),
    [
        (0.7, -1.2, True),
        (0.7, -1.0, True),  # Whisper overrules only when avg_logprob is strictly above the threshold
        (0.7, -0.5, False),  # confident text overrules the no-speech probability
        (0.5, -1.5, False),
    ],
)
def test_looks_like_silence(no_speech_prob, avg_logprob, expected):
    segment = Segment(0.0, 2.0, "うーん", avg_logprob=avg_logprob, no_speech_prob=no_speech_prob)
    assert looks_like_silence(segment, OPTIONS) is expected


def test_stock_phrase_spoken_confidently_in_the_middle_of_speech_is_kept():
    middle = spoken(3.0, 5.0, "ご視聴ありがとうございました")  # 14 characters in 2 s
    segments = [spoken(0.0, 3.0, "以上で発表を終わります。"), middle, spoken(5.0, 8.0, "質問はありますか。")]
    assert apply_guards(segments, OPTIONS) == (segments, [])


@pytest.mark.parametrize(
    "segment",
    [
        Segment(8.0, 10.0, "ご視聴ありがとうございました", avg_logprob=-0.3, no_speech_prob=0.45),
        Segment(8.0, 10.0, "ご視聴ありがとうございました", avg_logprob=-0.9, no_speech_prob=0.05),
        spoken(8.0, 24.0, "ご視聴ありがとうございました"),  # stretched over 16 s: 0.9 chars/s
    ],
)
def test_stock_phrase_on_non_speech_is_dropped(segment):
    kept, dropped = apply_guards([spoken(0.0, 3.0, "以上です。"), segment], OPTIONS)
    assert kept == [spoken(0.0, 3.0, "以上です。")]
    assert dropped == [(segment, "stock phrase on non-speech")]


def test_apply_guards_repairs_loops_and_drops_with_reasons():
    loop = Segment(3.0, 6.0, "上が上が上が上が上が上が", -0.4, 0.1, 3.0, (Word(3.0, 3.2, "上が", 0.5),))
    silence = Segment(6.0, 9.0, "うーん", avg_logprob=-1.3, no_speech_prob=0.8)
    music = spoken(9.0, 12.0, "♪")
    long_unit = "本日は上期の売上について田中部長からご報告します。"  # 25 characters: too long to collapse
    long_loop = spoken(12.0, 40.0, long_unit * 5)
    kept, dropped = apply_guards([spoken(0.0, 3.0, "今期の見込みです。"), loop, silence, music, long_loop], OPTIONS)
    assert kept == [spoken(0.0, 3.0, "今期の見込みです。"), Segment(3.0, 6.0, "上が", -0.4, 0.1, 3.0, ())]
    assert [segment for segment, _ in dropped] == [silence, music, long_loop]
    assert dropped[0][1] == "silence: no_speech_prob 0.80 > 0.6 and avg_logprob -1.30 <= -1.0"
    assert dropped[1][1] == "no text: only punctuation, symbols or spaces"
    assert dropped[2][1].startswith("loop: compression ratio ")


def test_text_denser_than_speech_is_dropped():
    text = "本日は上期の売上について田中部長からご報告いただきます"  # 27 characters
    assert apply_guards([spoken(0.0, 1.2, text)], OPTIONS)[1] == []  # 22.5 chars/s
    dropped = apply_guards([spoken(0.0, 1.0, text)], OPTIONS)[1]
    assert dropped == [(spoken(0.0, 1.0, text), "too dense: 27.0 chars/s > 25.0")]


def test_a_short_word_squeezed_in_time_is_not_too_dense():
    # 2 characters in 0.05 s is 40 chars/s, but short segments are measured as if 1 s long.
    assert apply_guards([spoken(3.0, 3.05, "はい")], OPTIONS) == ([spoken(3.0, 3.05, "はい")], [])


def test_the_same_text_in_three_consecutive_segments_keeps_the_first():
    repeated = [spoken(float(i), i + 1.0, "はい、わかりました。") for i in range(1, 4)]
    repeated[2] = spoken(3.0, 4.0, "はい わかりました")  # compared after normalization
    segments = [spoken(0.0, 1.0, "それでは。"), *repeated, spoken(4.0, 5.0, "次です。")]
    kept, dropped = apply_guards(segments, OPTIONS)
    assert kept == [segments[0], segments[1], segments[4]]
    assert dropped == [(segment, "repeats the previous segment (3 in a row)") for segment in segments[2:4]]


def test_two_consecutive_identical_segments_are_kept():
    segments = [spoken(0.0, 1.0, "はい。"), spoken(1.0, 2.0, "はい。"), spoken(2.0, 3.0, "では次に。")]
    assert apply_guards(segments, OPTIONS) == (segments, [])
