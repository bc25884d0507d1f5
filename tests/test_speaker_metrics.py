"""Speaker scores on hand-made references, where the right answer can be worked out by hand."""

from __future__ import annotations

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.speaker_metrics import (diarization_error, speaker_attributed_cer, speaker_count_accuracy,
                                           turns_of)
from whisper_adapt.transcript import Segment, Word

REFERENCE = [(0.0, 10.0, "田中", "今日の議題です"), (12.0, 20.0, "佐藤", "了解しました")]


def test_labels_need_not_match_only_the_grouping_counts():
    score = diarization_error(REFERENCE, [(0.0, 10.0, "S2"), (12.0, 20.0, "S1")], duration_s=20.0)
    # Each of the 4 boundaries takes 0.25 s of speech out of scoring (the other 0.25 s is silence or
    # outside the recording): the collar reaches 0.25 s either side, as in NIST's md-eval.
    assert score.error_rate == 0.0 and score.count_right and score.scored_s == pytest.approx(18.0 - 4 * 0.25)


def test_confusion_miss_and_false_alarm_are_shares_of_scored_speech():
    # S1 talks over 佐藤's first 4 s: 4 s confusion; 佐藤's last 2 s are missed; 2 s of speech in the pause.
    hypothesis = [(0.0, 10.0, "S1"), (12.0, 16.0, "S1"), (16.0, 18.0, "S2"), (10.0, 12.0, "S2")]
    score = diarization_error(REFERENCE, hypothesis, collar_s=0.0, duration_s=20.0)
    assert score.confusion == pytest.approx(4 / 18) and score.missed == pytest.approx(2 / 18)
    assert score.false_alarm == pytest.approx(2 / 18)
    assert score.error_rate == pytest.approx(8 / 18)


def test_the_collar_forgives_a_quarter_second_either_side_of_a_reference_boundary():
    late = [(0.2, 10.0, "S1"), (12.0, 20.0, "S2")]
    assert diarization_error(REFERENCE, late, collar_s=0.25, duration_s=20.0).error_rate == 0.0
    assert diarization_error(REFERENCE, late, collar_s=0.1, duration_s=20.0).error_rate > 0.0


def test_overlapped_speech_is_counted():
    """Two people at once for 2 s and one speaker found there: the other's 2 s are missed."""
    reference = [(0.0, 10.0, "田中", "a"), (8.0, 12.0, "佐藤", "b")]
    score = diarization_error(reference, [(0.0, 10.0, "S1"), (10.0, 12.0, "S2")], collar_s=0.0, duration_s=12.0)
    assert score.missed == pytest.approx(2 / 14) and score.confusion == 0.0


def test_a_reference_without_speakers_cannot_be_scored():
    with pytest.raises(WhisperAdaptError, match="1 reference spans name no speaker"):
        diarization_error([(0.0, 1.0, None, "a"), (1.0, 2.0, "x", "b")], [])


def test_speaker_attributed_cer_maps_speakers_to_fewest_edits():
    right = [Segment(0.0, 10.0, "今日の議題です", speaker="S9"), Segment(12.0, 20.0, "了解しました", speaker="S3")]
    assert speaker_attributed_cer(REFERENCE, right) == 0.0
    # Perfect text, but 了解しました put under 田中's label: 6 deletions (佐藤) + 6 insertions (田中's side).
    merged = [Segment(0.0, 10.0, "今日の議題です", speaker="S1"), Segment(12.0, 20.0, "了解しました", speaker="S1")]
    assert speaker_attributed_cer(REFERENCE, merged) == pytest.approx(12 / 13)
    # A third hypothesis speaker: all its characters are insertions.
    extra = right + [Segment(21.0, 22.0, "はい", speaker="S4")]
    assert speaker_attributed_cer(REFERENCE, extra) == pytest.approx(2 / 13)


def test_turns_of_a_transcript_use_word_times_and_count_accuracy():
    segment = Segment(0.0, 4.0, "はいどうぞ", speaker="S1",
                      words=(Word(0.0, 1.0, "はい", 0.9, "S2"), Word(1.5, 4.0, "どうぞ", 0.9, "S1")))
    assert turns_of([segment, Segment(5.0, 6.0, "x")]) == [(0.0, 1.0, "S2"), (1.5, 4.0, "S1")]
    scores = [diarization_error(REFERENCE, [(0.0, 20.0, "S1")]), diarization_error(REFERENCE, [(0.0, 10.0, "A"),
                                                                                           (12.0, 20.0, "B")])]
    assert speaker_count_accuracy(scores) == 0.5 and speaker_count_accuracy([]) == 0.0
