"""labeled.py: JVS, audiofolder and text-pair sets read from and written to real files; bad input reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, resample, write_wav
from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.labeled import (LabeledClip, read_audiofolder, read_jvs, read_text_pairs, write_audiofolder,
                                   write_jvs)


def _tone(seconds: float, hz: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def make_jvs(root: Path, speakers=("jvs001", "jvs002"), rate: int = 24000) -> Path:
    """JVS's real layout: jvsNNN/parallel100/transcripts_utf8.txt + wav24kHz16bit/ at 24 kHz."""
    for number, speaker in enumerate(speakers):
        group = root / speaker / "parallel100"
        (group / "wav24kHz16bit").mkdir(parents=True)
        lines = []
        for index, text in enumerate(["上期の売上です", "下期の予算です"], start=1):
            write_wav(group / "wav24kHz16bit" / f"VOICEACTRESS100_{index:03d}.wav", _tone(1.0 + index / 4, 200 + 50 * number, rate), rate)
            lines.append(f"VOICEACTRESS100_{index:03d}:{text}\n")
        (group / "transcripts_utf8.txt").write_text("".join(lines), encoding="utf-8")
    return root


def test_reads_jvs_real_layout_with_ids_unique_across_speakers(tmp_path):
    clips, problems = read_jvs(make_jvs(tmp_path / "jvs"))
    assert problems == []
    assert [c.clip_id for c in clips] == [f"jvs00{s}-parallel100-VOICEACTRESS100_00{i}" for s in (1, 2) for i in (1, 2)]
    assert clips[0].text == "上期の売上です" and clips[0].speaker == "jvs001" and clips[0].recording == "jvs001/parallel100"
    assert all(c.audio_path.is_absolute() and c.audio_path.is_file() for c in clips)


def test_jvs_round_trip_is_identical(tmp_path):
    """import → export → import: the same ids, texts and (16 kHz) audio."""
    first, _ = read_jvs(make_jvs(tmp_path / "jvs"))
    group = write_jvs(first, tmp_path / "out", group="g")
    second, problems = read_jvs(group)
    assert problems == []
    assert [(c.clip_id, c.text) for c in second] == [(c.clip_id, c.text) for c in first]
    for a, b in zip(first, second):
        expected = decode_audio(a.audio_path)  # 24 kHz resampled on decoding
        assert np.abs(decode_audio(b.audio_path) - expected).max() <= 1 / 32768
    # and once more through our own files: bit-identical
    third, _ = read_jvs(write_jvs(second, tmp_path / "again", group="g"))
    assert [c.audio_path.read_bytes() for c in third] == [c.audio_path.read_bytes() for c in second]


def test_malformed_jvs_lines_are_reported_and_the_rest_is_read(tmp_path):
    group = tmp_path / "set"
    (group / "wav").mkdir(parents=True)
    for name in ("a", "b", "c"):
        write_wav(group / "wav" / f"{name}.wav", _tone(1.0, 300))
    (group / "transcripts_utf8.txt").write_bytes(
        "a:正しい行\nコロンのない行\nzzz:知らないID\n".encode() + b"b:\x82\xa0\x82\xa2\n" + "c:\nb:二番目\nb:重複\n".encode())
    clips, problems = read_jvs(group)
    assert [(c.clip_id, c.text) for c in clips] == [("a", "正しい行"), ("b", "二番目")]
    messages = [str(p) for p in problems]
    expected = [":2: expected clip_id:text", ":3: unknown clip id 'zzz'", ":4: not UTF-8", ":5: empty clip id or empty text",
                "duplicate clip id 'b'"]
    assert len(messages) == len(expected)
    for message, part in zip(messages, expected):
        assert part in message
    assert all("transcripts_utf8.txt" in message for message in messages[:4])


def test_jvs_group_without_wav_folder_is_a_problem(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "transcripts_utf8.txt").write_text("a:text\n", encoding="utf-8")
    clips, problems = read_jvs(tmp_path)
    assert clips == [] and "no WAV folder" in str(problems[0])


def test_audiofolder_round_trip_keeps_recording_and_speaker(tmp_path):
    clips = [LabeledClip(f"c{i}", write_path(tmp_path / f"src{i}.wav", _tone(1.0, 300 + i)), f"テキスト{i}, 「引用」",
                         recording=f"rec{i % 2}", speaker="jf_alpha") for i in range(3)]
    root = write_audiofolder(clips, tmp_path / "af")
    back, problems = read_audiofolder(root)
    assert problems == []
    assert [(c.clip_id, c.text, c.recording, c.speaker) for c in back] == [(c.clip_id, c.text, c.recording, c.speaker) for c in clips]


def write_path(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    write_wav(path, samples, rate)
    return path.resolve()


def test_audiofolder_is_loadable_by_hugging_face_datasets(tmp_path):
    """Checked by hand with datasets 3.6 (soundfile); datasets >= 4 also needs a working torchcodec, which
    the CUDA-built wheel on PyPI is not on a CPU-only machine: then the test says so and skips."""
    datasets = pytest.importorskip("datasets")
    clips = [LabeledClip(f"c{i}", write_path(tmp_path / f"s{i}.wav", _tone(1.0, 300)), f"文{i}", "r") for i in range(2)]
    try:
        loaded = datasets.load_dataset("audiofolder", data_dir=str(write_audiofolder(clips, tmp_path / "af")), split="train")
    except datasets.exceptions.DatasetGenerationError as e:
        if isinstance(e.__cause__, ImportError):
            pytest.skip(f"this datasets install cannot handle audio: {e.__cause__}")
        raise
    loaded = loaded.cast_column("audio", datasets.Audio(decode=False))
    assert sorted(zip(loaded["clip_id"], loaded["transcription"], loaded["recording"])) == [("c0", "文0", "r"), ("c1", "文1", "r")]
    assert all(Path(row["audio"]["path"]).name == f"{row['clip_id']}.wav" for row in loaded)


@pytest.mark.parametrize("column", ["transcription", "text", "sentence"])
def test_audiofolder_accepts_the_usual_text_columns(tmp_path, column):
    write_wav(tmp_path / "x.wav", _tone(1.0, 300))
    (tmp_path / "metadata.csv").write_text(f"file_name,{column}\nx.wav,こんにちは\nmissing.wav,ない\n", encoding="utf-8")
    clips, problems = read_audiofolder(tmp_path)
    assert [(c.clip_id, c.text) for c in clips] == [("x", "こんにちは")]
    assert "missing audio file missing.wav" in str(problems[0]) and "metadata.csv:3" in str(problems[0])


def test_audiofolder_without_needed_columns_names_them(tmp_path):
    (tmp_path / "metadata.csv").write_text("path,words\na.wav,x\n", encoding="utf-8")
    clips, problems = read_audiofolder(tmp_path)
    assert clips == [] and "needs a file_name column" in str(problems[0])


def test_text_pairs_and_their_problems(tmp_path):
    write_wav(tmp_path / "one.wav", _tone(1.0, 300))
    (tmp_path / "one.txt").write_text("一つ目\n", encoding="utf-8")
    write_wav(tmp_path / "lonely.wav", _tone(1.0, 300))
    (tmp_path / "orphan.txt").write_text("音声がない", encoding="utf-8")
    write_wav(tmp_path / "empty.wav", _tone(1.0, 300))
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    clips, problems = read_text_pairs(tmp_path)
    assert [(c.clip_id, c.text) for c in clips] == [("one", "一つ目")]
    assert sorted(Path(p.path).name for p in problems) == ["empty.txt", "lonely.wav", "orphan.txt"]


def test_writers_refuse_ids_and_texts_the_layout_cannot_hold(tmp_path):
    audio = write_path(tmp_path / "a.wav", _tone(1.0, 300))
    with pytest.raises(WhisperAdaptError, match="file name"):
        write_jvs([LabeledClip("a:b", audio, "x")], tmp_path / "out")
    with pytest.raises(WhisperAdaptError, match="line break"):
        write_audiofolder([LabeledClip("a", audio, "x\ny")], tmp_path / "out2")


def test_resampling_matches_decoding(tmp_path):
    """The 24 kHz WAVs a JVS import reads come out at 16 kHz, the same as resampling by hand."""
    tone = _tone(1.0, 300, 24000)
    path = write_path(tmp_path / "t.wav", tone, 24000)
    assert np.abs(decode_audio(path) - resample(np.round(tone * 32768) / 32768, 24000)).max() < 1e-3


def test_an_index_cannot_name_audio_outside_its_set(tmp_path):
    """A JVS clip id `../../../x` imported a WAV from outside the set; so would an audiofolder file_name."""
    write_wav(tmp_path / "secret.wav", _tone(1.0, 300))
    (tmp_path / "set" / "wav").mkdir(parents=True)
    write_wav(tmp_path / "set" / "wav" / "ok.wav", _tone(1.0, 300))
    (tmp_path / "set" / "transcripts_utf8.txt").write_text("ok:はい\n../../secret:秘密\n../wav/ok:二度目\n", encoding="utf-8")
    clips, problems = read_jvs(tmp_path / "set")
    assert [c.clip_id for c in clips] == ["ok"]
    assert len(problems) == 2 and all("is a path" in str(p) for p in problems)
    folder = tmp_path / "af"
    (folder / "audio").mkdir(parents=True)
    write_wav(folder / "audio" / "ok.wav", _tone(1.0, 300))
    (folder / "metadata.csv").write_text(
        f"file_name,text\naudio/ok.wav,はい\n../secret.wav,秘密\n{tmp_path / 'secret.wav'},秘密\naudio/../audio/ok.wav,x\n",
        encoding="utf-8")
    clips, problems = read_audiofolder(folder)
    assert [c.clip_id for c in clips] == ["audio-ok"]
    assert sum("points outside" in str(p) for p in problems) == 2  # the fourth is a duplicate of the first
