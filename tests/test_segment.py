"""segment.py on synthesized speech with real Silero VAD: cuts fall in pauses, lengths stay in bounds."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.segment import SegmentOptions, fit_min_length, iter_clips, pause_cut, quietest_point, split_long

from conftest import MEETING_LINES


def _cuts_inside_sentences(clips, spans) -> list[str]:
    """Clip edges that fall inside a spoken sentence (with 50 ms of slack for the TTS's soft edges)."""
    bad = []
    for clip in clips:
        for edge in (clip.start_s, clip.end_s):
            for start, end, text in spans:
                if start + 0.05 < edge < end - 0.05:
                    bad.append(f"{edge:.2f} s inside {text} ({start:.2f}–{end:.2f})")
    return bad


def _covered(clips, spans) -> bool:
    return all(any(c.start_s <= start + 0.05 and end - 0.05 <= c.end_s for c in clips) for start, end, _ in spans)


@pytest.mark.parametrize("window_s", [60.0, 120.0])
def test_meeting_is_cut_only_in_pauses_and_every_sentence_is_in_a_clip(synth_meeting, window_s):
    path, spans = synth_meeting("segment-meeting", rounds=4)
    options = SegmentOptions(window_s=window_s)
    clips = list(iter_clips(path, options))
    assert _cuts_inside_sentences(clips, spans) == []
    assert _covered(clips, spans)
    assert all(options.min_clip_s <= len(c.samples) / SAMPLE_RATE <= options.max_clip_s for c in clips)
    assert all(a.end_s <= b.start_s for a, b in zip(clips, clips[1:])), "clips overlap"
    assert len(clips) >= 4  # 4 rounds of about 25 s of speech cannot fit in fewer 30 s clips


def test_cutting_is_deterministic(synth_meeting):
    """prepare's resume depends on it: the same file and options give the same clips."""
    path, _ = synth_meeting("segment-meeting", rounds=4)
    first = [(c.start, len(c.samples)) for c in iter_clips(path, SegmentOptions(window_s=60.0))]
    second = [(c.start, len(c.samples)) for c in iter_clips(path, SegmentOptions(window_s=60.0))]
    assert first == second


def test_long_speech_without_pauses_is_split_between_sentences(synth_wav, tmp_path):
    """Sentences follow each other after breaths of 0.25 s (less than the pause VAD cuts at) for ~40 s:
    each split falls in such a breath, the quietest place, not inside a sentence."""
    breath = np.zeros(SAMPLE_RATE // 4, np.float32)
    lines = [decode_audio(synth_wav(text, voice)) for voice, text in MEETING_LINES] * 2
    parts = [np.zeros(SAMPLE_RATE, np.float32)] + [p for line in lines for p in (line, breath)]
    audio = np.concatenate(parts + [np.zeros(SAMPLE_RATE, np.float32)])
    ends = 1.0 + np.cumsum([len(line) + len(breath) for line in lines]) / SAMPLE_RATE - 0.25
    spans = [(end - len(line) / SAMPLE_RATE, end, "") for end, line in zip(ends, lines)]
    write_wav(tmp_path / "run-on.wav", audio + np.random.default_rng(0).normal(0, 0.003, audio.size).astype(np.float32))
    options = SegmentOptions(max_clip_s=20.0, min_silence_ms=1000)
    clips = list(iter_clips(tmp_path / "run-on.wav", options))
    assert len(clips) >= 2 and all(len(c.samples) <= 20.0 * SAMPLE_RATE for c in clips)
    assert all(a.end_s == b.start_s for a, b in zip(clips, clips[1:])), "one stretch of speech, split without gaps"
    assert _cuts_inside_sentences(clips, spans) == []


def test_quietest_point_prefers_the_gap_between_loud_stretches():
    loud = np.sin(np.arange(SAMPLE_RATE) * 0.3).astype(np.float32) * 0.5
    gap = np.zeros(SAMPLE_RATE // 4, np.float32)
    audio = np.concatenate([loud, loud, gap, loud])  # quiet 0.25 s at 2.0–2.25 s
    cut = quietest_point(audio, SAMPLE_RATE // 2, len(audio) - SAMPLE_RATE // 2)
    assert 2.0 * SAMPLE_RATE <= cut <= 2.25 * SAMPLE_RATE
    pieces = split_long(audio, (0, len(audio)), SegmentOptions(min_clip_s=0.5, max_clip_s=2.5, window_s=10))
    assert pieces == [(0, cut), (cut, len(audio))]


def test_silence_and_noise_only_give_no_clips(tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.003, 20 * SAMPLE_RATE).astype(np.float32)
    write_wav(tmp_path / "room.wav", noise)
    assert list(iter_clips(tmp_path / "room.wav")) == []


@pytest.mark.parametrize("fields", [dict(min_clip_s=0), dict(max_clip_s=31), dict(min_clip_s=10, max_clip_s=15),
                                    dict(pad_ms=-1), dict(vad_threshold=1.0), dict(window_s=40),
                                    dict(min_silence_ms=500, max_inner_pause_ms=400)])
def test_bad_options_are_refused_with_a_message(fields):
    with pytest.raises(WhisperAdaptError):
        SegmentOptions(**fields)


def test_short_clips_are_widened_into_silence_or_dropped():
    options = SegmentOptions()  # min 1 s
    half_second = (SAMPLE_RATE, SAMPLE_RATE + SAMPLE_RATE // 2)
    assert fit_min_length([half_second], options, upper=4 * SAMPLE_RATE) == [(SAMPLE_RATE * 3 // 4, SAMPLE_RATE * 7 // 4)]
    # Against the buffer's start it grows to the right only; with no room at all it is dropped.
    assert fit_min_length([(0, SAMPLE_RATE // 2)], options, upper=4 * SAMPLE_RATE) == [(0, SAMPLE_RATE)]
    assert fit_min_length([(0, SAMPLE_RATE // 2)], options, upper=SAMPLE_RATE // 2 + 10) == []


def test_pause_cut_is_in_the_longest_pause_of_the_range(synth_meeting):
    """Where transcribe_path ends a window: in a pause between sentences, the longest one in the range."""
    path, spans = synth_meeting("segment-meeting")
    audio = decode_audio(path)
    gaps = [(spans[i][1], spans[i + 1][0]) for i in range(2)]  # the pauses after the first two sentences
    lowest, highest = round(spans[0][0] * SAMPLE_RATE), round(spans[2][1] * SAMPLE_RATE)
    cut = pause_cut(audio, lowest, highest) / SAMPLE_RATE
    longest = max(gaps, key=lambda gap: gap[1] - gap[0])
    assert longest[0] <= cut <= longest[1]
    assert abs(cut - (longest[0] + longest[1]) / 2) < 0.3
    # Inside one sentence there is no pause: the cut falls at its quietest point, within the range.
    inside = round(spans[1][0] * SAMPLE_RATE), round(spans[1][1] * SAMPLE_RATE)
    assert inside[0] <= pause_cut(audio, *inside, min_silence_ms=2000) <= inside[1]


def test_speech_map_hears_a_sentence_and_little_of_next_room_murmur(synth_wav):
    """The VAD measure rule 12 of the guards reads: a sentence is mostly speech, murmur through a wall (the
    same voice reversed, low-passed) mostly not, though VAD may open a region on it."""
    from whisper_adapt.nonspeech import murmur
    from whisper_adapt.segment import SpeechMap

    sentence = decode_audio(synth_wav("本日の会議を始めます。", "jf_alpha"))
    wall = murmur(4.0, [sentence], np.random.default_rng(0))
    quiet = np.zeros(3 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([quiet, sentence, quiet, wall, quiet])
    speech = SpeechMap(audio)
    sentence_s = (3.0, 3.0 + len(sentence) / SAMPLE_RATE)
    wall_s = (sentence_s[1] + 3.0, sentence_s[1] + 7.0)
    assert speech.speech_share(*sentence_s) >= 0.6
    assert speech.speech_share(*wall_s) < 0.5
    assert speech.speech_share(0.0, 2.5) == 0.0
    assert any(start <= sentence_s[0] + 0.5 and end >= sentence_s[1] - 0.5 for start, end in speech.regions_s)
    assert SpeechMap(np.zeros(0, np.float32)).regions_s == ()
