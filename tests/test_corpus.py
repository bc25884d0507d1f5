"""corpus.py, selection.py and transfer.py on a real SQLite corpus and real WAV files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.cli import main
from whisper_adapt.corpus import clip_id_for, create_corpus, open_corpus
from whisper_adapt.errors import ConflictError, CorpusError, WhisperAdaptError
from whisper_adapt.glossary import parse_glossary
from whisper_adapt.labeled import read_jvs
from whisper_adapt.selection import select_training
from whisper_adapt.transcript import Word
from whisper_adapt.transfer import export_corpus, import_sets, load_labeled_set

from test_labeled import make_jvs

GLOSSARY = parse_glossary("上期 (かみき) ← 紙木\n下期\n")


def _samples(seconds: float = 1.0, hz: float = 300.0) -> np.ndarray:
    return (0.2 * np.sin(2 * np.pi * hz * np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)


def _corpus_with_clips(path: Path, recordings: dict[str, list[str]]):
    """A corpus whose recordings hold reviewed clips with the given texts."""
    corpus = create_corpus(path)
    for name, texts in recordings.items():
        recording = corpus.add_recording(Path(f"{name}.wav"), f"sha-{name}")
        for index, text in enumerate(texts):
            clip_id = clip_id_for(recording, float(index))
            corpus.add_clip(recording, clip_id, _samples(), float(index), index + 1.0)
            corpus.revise_text(clip_id, text, "person:test", 1, status="reviewed")
    return corpus


def test_clip_text_life_keeps_every_revision(tmp_path):
    corpus = create_corpus(tmp_path / "c")
    recording = corpus.add_recording(Path("/rec/会議 1.m4a"), "abc")
    assert recording.name == "会議_1"
    assert corpus.add_clip(recording, "会議_1-00001500", _samples(), 1.5, 2.5)
    assert not corpus.add_clip(recording, "会議_1-00001500", _samples(), 1.5, 2.5), "same id twice adds nothing"
    words = [Word(0.0, 0.4, "上期", 0.42), Word(0.4, 0.9, "です", 0.97)]
    assert corpus.set_drafts([("会議_1-00001500", "上期です", words)], "base") == 1
    clip = corpus.get_clip("会議_1-00001500")
    assert (clip.text, clip.draft_words, clip.version, clip.status) == ("上期です", tuple(words), 2, "draft")
    assert decode_audio(clip.audio_path).size == SAMPLE_RATE
    version = corpus.revise_text(clip.id, "上期でした", "person:sato", expected_version=2)
    with pytest.raises(ConflictError) as conflict:
        corpus.revise_text(clip.id, "上期です!", "person:suzuki", expected_version=2)
    assert conflict.value.current_version == 3
    # A later draft (e.g. from an adapted model) updates the draft fields but never a person's text.
    assert corpus.set_drafts([(clip.id, "神木です", [])], "adapted") == 0
    corpus.set_status(clip.id, "reviewed", "person:sato", version)
    clip = corpus.get_clip(clip.id)
    assert (clip.text, clip.status, clip.draft_text, clip.version) == ("上期でした", "reviewed", "神木です", 4)
    history = [(r.version, r.text, r.status, r.origin) for r in corpus.revisions(clip.id)]
    assert history == [(1, "", "draft", "prepare"), (2, "上期です", "draft", "draft:base"),
                       (3, "上期でした", "draft", "person:sato"), (4, "上期でした", "reviewed", "person:sato")]


def test_a_transcript_with_a_line_break_is_refused_and_the_corpus_still_exports(tmp_path):
    """A line break (plain Enter in the review box) was saved, and then every export refused the corpus."""
    corpus = _corpus_with_clips(tmp_path / "c", {"r": ["a"]})
    clip = corpus.clips()[0]
    for text in ("one\ntwo", "one\r\ntwo", "one\r"):
        with pytest.raises(CorpusError, match="one line"):
            corpus.revise_text(clip.id, text, "person:test", clip.version)
    assert corpus.get_clip(clip.id).text == "a" and len(corpus.revisions(clip.id)) == clip.version
    corpus.close()
    assert export_corpus(tmp_path / "c", tmp_path / "out")[1] == 1


@pytest.mark.parametrize("group", ["../../x", "..", "a/b", "/tmp/elsewhere", ""])
def test_export_writes_nothing_outside_its_folder(tmp_path, group):
    _corpus_with_clips(tmp_path / "c", {"r": ["a"]}).close()
    with pytest.raises(WhisperAdaptError, match="plain folder name"):
        export_corpus(tmp_path / "c", tmp_path / "deep" / "out", "jvs", group=group)
    assert not (tmp_path / "deep").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_revisions_survive_reopening_and_concurrent_writers(tmp_path):
    corpus = _corpus_with_clips(tmp_path / "c", {"r": ["a"]})
    clip_id = corpus.clips()[0].id
    corpus.close()
    # Two review-page threads save the same clip at the same version: exactly one wins.
    outcomes: list[str] = []
    shared = open_corpus(tmp_path / "c")

    def save(text: str) -> None:
        try:
            shared.revise_text(clip_id, text, "person:x", 2)
            outcomes.append("saved")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(t,)) for t in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "saved"]
    shared.close()
    with open_corpus(tmp_path / "c") as again:
        assert [r.version for r in again.revisions(clip_id)] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["other-files", "not-sqlite", "foreign-sqlite", "newer-schema", "missing", "empty-db"])
def test_a_directory_that_is_not_our_corpus_is_refused(tmp_path, kind):
    path = tmp_path / "dir"
    if kind != "missing":
        path.mkdir()
    if kind == "other-files":
        (path / "notes.txt").write_text("mine")
    elif kind == "empty-db":
        (path / "corpus.db").touch()
    elif kind == "not-sqlite":
        (path / "corpus.db").write_text("hello")
    elif kind == "foreign-sqlite":
        sqlite3.connect(path / "corpus.db").execute("CREATE TABLE meta (key, value)").connection.commit()
    elif kind == "newer-schema":
        create_corpus(path).close()
        sqlite3.connect(path / "corpus.db").execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'").connection.commit()
    with pytest.raises(CorpusError) as error:
        open_corpus(path, create=kind == "other-files").close()
    assert str(path) in str(error.value)
    if kind == "other-files":
        assert sorted(p.name for p in path.iterdir()) == ["notes.txt"], "nothing written into a stranger's directory"
    if kind == "empty-db":  # `corpus stats` made it a new empty database
        assert sorted(p.name for p in path.iterdir()) == ["corpus.db"] and (path / "corpus.db").stat().st_size == 0


def test_orphan_wavs_and_temp_files_are_swept(tmp_path):
    corpus = _corpus_with_clips(tmp_path / "c", {"r": ["a"]})
    write_wav(tmp_path / "c" / "audio" / "r-00009000.wav", _samples())  # WAV whose row never committed
    (tmp_path / "c" / "audio" / ".r-00010000.wav.1a2b.tmp").write_bytes(b"RIFF")
    assert corpus.sweep_orphans() == 2
    assert [p.name for p in (tmp_path / "c" / "audio").iterdir()] == ["r-00000000.wav"]


def test_only_one_writer_at_a_time(tmp_path):
    first = create_corpus(tmp_path / "c")
    first.acquire_writer_lock()
    with open_corpus(tmp_path / "c") as second, pytest.raises(CorpusError, match="another whisper-adapt process"):
        second.acquire_writer_lock()
    first.close()
    with open_corpus(tmp_path / "c") as third:
        third.acquire_writer_lock()


def test_stats_count_status_hours_and_term_coverage(tmp_path):
    corpus = _corpus_with_clips(tmp_path / "c", {"r1": ["上期の話", "上期と下期"], "r2": ["天気"]})
    recording = corpus.recordings()[0]
    corpus.add_clip(recording, "r1-00009000", _samples(2.0), 9.0, 11.0)  # a draft with no text yet
    stats = corpus.stats(GLOSSARY)
    assert (stats.clips, stats.recordings, stats.drafted) == (4, 2, 0)
    assert stats.by_status["reviewed"][0] == 3 and stats.by_status["draft"] == (1, pytest.approx(2 / 3600))
    assert stats.hours == pytest.approx(5 / 3600)
    assert stats.term_coverage == {"上期": 2, "下期": 1}


def test_selection_splits_by_recording_and_keeps_a_share_of_general_clips(tmp_path):
    texts = {f"r{n}": [f"上期{n}-{i}" if i % 2 else f"天気{n}-{i}" for i in range(4)] for n in range(10)}
    _corpus_with_clips(tmp_path / "c", texts).close()
    everything = select_training(tmp_path / "c", validation_share=0.2, seed=1)
    assert len(everything.train) + len(everything.validation) == 40
    assert len(everything.validation) == 8
    train_recordings = {c.recording for c in everything.train}
    assert train_recordings.isdisjoint(c.recording for c in everything.validation)
    focused = select_training(tmp_path / "c", GLOSSARY, general_share=0.2, validation_share=0.2, seed=1)
    assert (focused.term_clips, focused.general_clips) == (20, 5)
    chosen = focused.train + focused.validation
    assert sum("天気" in c.text for c in chosen) == 5
    again = select_training(tmp_path / "c", GLOSSARY, general_share=0.2, validation_share=0.2, seed=1)
    assert again == focused, "same seed, same selection"


def test_one_recording_gives_no_validation_rather_than_a_leak(tmp_path):
    _corpus_with_clips(tmp_path / "c", {"only": ["a", "b", "c"]}).close()
    selection = select_training(tmp_path / "c", validation_share=0.3)
    assert len(selection.train) == 3 and selection.validation == []


def test_jvs_import_export_import_is_identical(tmp_path):
    make_jvs(tmp_path / "jvs")
    first = import_sets(tmp_path / "a", [tmp_path / "jvs"])
    assert (first.added, first.failures) == (4, [])
    again = import_sets(tmp_path / "a", [tmp_path / "jvs"])
    assert (again.added, again.already_present) == (0, 4), "importing twice adds nothing"
    transcripts = tmp_path / "jvs" / "jvs001" / "parallel100" / "transcripts_utf8.txt"
    transcripts.write_text(transcripts.read_text(encoding="utf-8").replace("上期の売上です", "別の文"), encoding="utf-8")
    changed = import_sets(tmp_path / "a", [tmp_path / "jvs"])
    assert len(changed.failures) == 1 and "already in the corpus with another text" in str(changed.failures[0])
    with open_corpus(tmp_path / "a") as a:
        assert a.get_clip("jvs001-parallel100-VOICEACTRESS100_001").text == "上期の売上です", "the corpus keeps its text"
    transcripts.write_text(transcripts.read_text(encoding="utf-8").replace("別の文", "上期の売上です"), encoding="utf-8")
    group, count = export_corpus(tmp_path / "a", tmp_path / "export", "jvs")
    assert count == 4
    assert import_sets(tmp_path / "b", [group]).added == 4
    with open_corpus(tmp_path / "a") as a, open_corpus(tmp_path / "b") as b:
        clips_a, clips_b = a.clips(), b.clips()
        assert [(c.id, c.text, c.status) for c in clips_a] == [(c.id, c.text, c.status) for c in clips_b]
        assert [c.audio_path.read_bytes() for c in clips_a] == [c.audio_path.read_bytes() for c in clips_b]
        assert {c.recording for c in clips_a} == {"jvs001_parallel100", "jvs002_parallel100"}
        assert a.revisions(clips_a[0].id)[0].origin.startswith("import:")
    exported, _ = read_jvs(group)
    assert [c.clip_id for c in exported] == [c.id for c in clips_a]


def test_import_reports_bad_clips_and_keeps_going(tmp_path):
    src = tmp_path / "pairs"
    src.mkdir()
    for name, text in [("good", "良い"), ("long", "長い"), ("broken", "壊れた"), ("stereo48k", "ステレオ")]:
        (src / f"{name}.txt").write_text(text, encoding="utf-8")
    write_wav(src / "good.wav", _samples())
    write_wav(src / "long.wav", _samples(31.0))
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    _write_stereo_48k(src / "stereo48k.wav")
    result = import_sets(tmp_path / "c", [src, tmp_path / "nowhere"])
    assert result.added == 2
    failed = sorted(Path(f.path).name for f in result.failures)
    assert failed == ["broken.wav", "long.wav", "nowhere"]
    with open_corpus(tmp_path / "c") as corpus:
        assert decode_audio(corpus.get_clip("stereo48k").audio_path).size == SAMPLE_RATE


def test_load_labeled_set_reads_a_corpus_and_each_layout_in_files(tmp_path):
    corpus = _corpus_with_clips(tmp_path / "corpus", {"r": ["上期", "下期"]})
    second = next(clip for clip in corpus.clips() if clip.text == "下期")
    corpus.set_status(second.id, "draft", "person:test", second.version)
    corpus.close()
    assert [c.text for c in load_labeled_set(tmp_path / "corpus")] == ["上期"]  # reviewed clips only
    make_jvs(tmp_path / "jvs")
    assert len(load_labeled_set(tmp_path / "jvs")) == 4
    assert len(load_labeled_set(tmp_path / "jvs" / "jvs001" / "parallel100" / "transcripts_utf8.txt")) == 2
    (tmp_path / "pairs").mkdir()
    write_wav(tmp_path / "pairs" / "a.wav", _samples())
    (tmp_path / "pairs" / "a.txt").write_text("あ", encoding="utf-8")
    assert [c.text for c in load_labeled_set(tmp_path / "pairs")] == ["あ"]


@pytest.mark.parametrize("kind", ["missing", "empty-dir", "unusable", "corpus-without-reviewed-clips"])
def test_load_labeled_set_names_a_path_without_usable_clips(tmp_path, kind):
    path = tmp_path / "set"
    if kind == "corpus-without-reviewed-clips":
        create_corpus(path).close()
    elif kind != "missing":
        path.mkdir()
    if kind == "unusable":
        (path / "metadata.csv").write_text("file_name,text\nnot-there.wav,x\n", encoding="utf-8")
    with pytest.raises(WhisperAdaptError) as error:
        load_labeled_set(path)
    assert str(path) in str(error.value)


def _write_stereo_48k(path: Path) -> None:
    import wave

    tone = np.round(_samples(1.0) * 32767).astype("<i2")
    resampled = np.repeat(tone, 3)  # 48 kHz
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.stack([resampled, resampled], axis=1).tobytes())


def test_cli_corpus_commands(tmp_path, capsys):
    make_jvs(tmp_path / "jvs")
    (tmp_path / "terms.txt").write_text("上期\n下期\n", encoding="utf-8")
    assert main(["corpus", "import", str(tmp_path / "c"), str(tmp_path / "jvs")]) == 0
    assert "import jvs" in capsys.readouterr().err  # the progress bar of the set being imported
    assert main(["corpus", "stats", str(tmp_path / "c"), "--glossary", str(tmp_path / "terms.txt")]) == 0
    out = capsys.readouterr().out
    assert "reviewed" in out and "上期" in out and "2 recordings" in out
    assert main(["corpus", "select", str(tmp_path / "c"), "--glossary", str(tmp_path / "terms.txt"),
                 "--general-share", "0.2", "--validation-share", "0.5", "--out", str(tmp_path / "sel")]) == 0
    assert (tmp_path / "sel" / "train" / "metadata.csv").is_file()
    assert (tmp_path / "sel" / "validation" / "metadata.csv").is_file()
    assert main(["corpus", "export", str(tmp_path / "c"), "--out", str(tmp_path / "af"), "--format", "audiofolder"]) == 0
    assert (tmp_path / "af" / "metadata.csv").read_text(encoding="utf-8").count("\n") == 5
    assert main(["corpus", "export", str(tmp_path / "c"), "--out", str(tmp_path / "x"), "--status", "rejected"]) == 2
    assert main(["corpus", "stats", str(tmp_path / "jvs")]) == 2, "a directory that is not a corpus"
