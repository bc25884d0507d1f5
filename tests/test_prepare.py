"""prepare: real decoding, real VAD, real SQLite and real Whisper models (a tiny random one; `base` in slow tests)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, write_wav
from whisper_adapt.cli import main
from whisper_adapt.corpus import open_corpus
from whisper_adapt.guards import GuardOptions
from whisper_adapt.prepare import DraftOptions, model_label, prepare
from whisper_adapt.segment import SegmentOptions

from test_audio import _encode


def _snapshot(corpus_dir: Path) -> dict:
    """What a finished prepare leaves: every clip's offsets, audio bytes, draft state and revisions."""
    with open_corpus(corpus_dir) as corpus:
        return {clip.id: (clip.start_s, clip.end_s, clip.audio_path.read_bytes(), clip.draft_text, clip.text,
                          [(r.version, r.origin, r.text) for r in corpus.revisions(clip.id)])
                for clip in corpus.clips()}


def _files_match_rows(corpus_dir: Path) -> None:
    with open_corpus(corpus_dir) as corpus:
        rows = sorted(clip.audio_path.name for clip in corpus.clips())
    assert sorted(p.name for p in (corpus_dir / "audio").iterdir()) == rows, "orphan or temporary files left"
    assert not [p for p in corpus_dir.iterdir() if p.name.endswith(".tmp")]


def test_prepare_cuts_drafts_and_a_second_run_adds_nothing(synth_meeting, tiny_whisper_dir, tmp_path, capsys):
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    corpus_dir = tmp_path / "corpus"
    # A random model is never confident: without the low-confidence floor its drafts keep their words.
    drafting = DraftOptions(model=str(tiny_whisper_dir), beam_size=1, guards=GuardOptions(avg_logprob_floor=float("-inf")))
    events = []
    result = prepare([path], corpus_dir, draft=drafting, on_progress=events.append)
    assert not result.failures and not result.draft_failures
    with open_corpus(corpus_dir) as corpus:
        clips = corpus.clips()
        [recording] = corpus.recordings()
    assert len(clips) >= 2 and recording.complete and recording.duration_s == pytest.approx(len(decode_audio(path)) / SAMPLE_RATE)
    # Progress in seconds of audio: the cutting of the recording, then the drafting of its clips.
    cut = [e for e in events if e.stage == f"cut {path.name}"]
    drafted = [e for e in events if e.stage == "draft"]
    assert len(cut) + len(drafted) == len(events) and cut and drafted and events.index(drafted[0]) > events.index(cut[-1])
    assert cut[-1].done == pytest.approx(recording.duration_s) and cut[-1].note == f"{len(clips)} clips"
    assert drafted[-1].done == pytest.approx(drafted[-1].total) and drafted[-1].note == f"{len(clips)}/{len(clips)} clips"
    assert all(e.unit == "s" and e.done <= e.total + 1e-6 for e in events)
    assert all(c.draft_model == model_label(str(tiny_whisper_dir)) and c.draft_text is not None for c in clips)
    assert any(c.draft_words for c in clips)
    assert all(0 <= w.probability <= 1 and 0 <= w.start_s <= w.end_s <= c.duration_s + 0.5 for c in clips for w in c.draft_words)
    assert all(c.id == f"prepare-meeting-{round(c.start_s * 1000):08d}" for c in clips)
    before = _snapshot(corpus_dir)
    args = ["prepare", str(path), "--corpus", str(corpus_dir), "--model", str(tiny_whisper_dir), "--beam-size", "1"]
    assert main(args) == 0
    assert "already in the corpus" in " ".join(capsys.readouterr().err.split())  # rich wraps lines
    assert _snapshot(corpus_dir) == before
    _files_match_rows(corpus_dir)


def _run_until(args: list[str], condition, corpus_dir: Path, timeout_s: float = 120) -> int:
    """Start `whisper-adapt prepare`, SIGKILL it as soon as `condition(db)` holds; returns its exit status."""
    process = subprocess.Popen([sys.executable, "-m", "whisper_adapt", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if (corpus_dir / "corpus.db").exists():
                try:
                    with sqlite3.connect(f"file:{corpus_dir / 'corpus.db'}?mode=ro", uri=True) as db:
                        if condition(db):
                            process.send_signal(signal.SIGKILL)
                            break
                except sqlite3.OperationalError:
                    pass  # the schema is not there yet
            time.sleep(0.01)
        return process.wait(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()


def test_sigkill_mid_run_then_rerun_gives_exactly_the_clips_of_an_uninterrupted_run(synth_meeting, tiny_whisper_dir, tmp_path):
    path, _ = synth_meeting("kill-meeting", rounds=6)  # ~3.3 min: cut in two windows
    common = [str(path), "--model", str(tiny_whisper_dir), "--beam-size", "1"]
    assert main(["prepare", *common, "--corpus", str(tmp_path / "whole")]) == 0
    expected = _snapshot(tmp_path / "whole")

    killed = tmp_path / "killed"
    args = ["prepare", *common, "--corpus", str(killed)]
    # Kill 1: while cutting (some clips in, the recording not complete). Kill 2: while drafting.
    cutting = _run_until(args, lambda db: db.execute("SELECT COUNT(*) FROM clips").fetchone()[0] > 0, killed)
    phase = open_corpus(killed).recordings()
    drafting = _run_until(args, lambda db: db.execute("SELECT complete FROM recordings").fetchone()[0] == 1, killed)
    assert (cutting, drafting) == (-signal.SIGKILL, -signal.SIGKILL), "both runs were killed mid-way"
    assert phase and not phase[0].complete, "the first kill came while the recording was still being cut"
    assert main(args) == 0
    assert _snapshot(killed) == expected
    _files_match_rows(killed)


def _bad_inputs(tmp_path: Path, speech: np.ndarray) -> dict[str, Path]:
    """One file per kind of bad input, plus awkward but valid ones (multichannel, odd rates)."""
    files = {name: tmp_path / name for name in ("corrupt.wav", "empty.m4a", "notes.mp3", "silent-video.mp4")}
    files["corrupt.wav"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(64))
    files["empty.m4a"].write_bytes(b"")
    files["notes.mp3"].write_text("これは音声ではありません", encoding="utf-8")
    _encode(files["silent-video.mp4"], None, 16000, video_s=1.0)
    files["missing.wav"] = tmp_path / "missing.wav"
    stereo = _encode(tmp_path / "stereo-44k.m4a", np.stack([speech, speech * 0.5]), SAMPLE_RATE, "aac", 44100)
    odd = tmp_path / "odd-11025.wav"
    write_wav(odd, np.interp(np.arange(0, len(speech), SAMPLE_RATE / 11025), np.arange(len(speech)), speech), 11025)
    whole = tmp_path / "whole.wav"
    write_wav(whole, speech)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    return {**files, "stereo-44k.m4a": stereo, "odd-11025.wav": odd, "truncated.wav": truncated}


def test_bad_inputs_are_each_reported_and_the_batch_goes_on(synth_meeting, tmp_path):
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    speech = decode_audio(path)[: 40 * SAMPLE_RATE]
    files = _bad_inputs(tmp_path, speech)
    result = prepare(list(files.values()), tmp_path / "corpus", draft=None)
    failed = {Path(f.path).name: f.problem for f in result.failures}
    assert sorted(failed) == ["corrupt.wav", "empty.m4a", "missing.wav", "notes.mp3", "silent-video.mp4"]
    assert "empty" in failed["empty.m4a"] and "video without sound" in failed["silent-video.mp4"]
    assert "not found" in failed["missing.wav"]
    with open_corpus(tmp_path / "corpus") as corpus:
        made = {r.name: len(corpus.clips(recording=r.name)) for r in corpus.recordings()}
    assert made["stereo-44k"] >= 1 and made["odd-11025"] >= 1 and made["truncated"] >= 1
    assert set(made) == {"stereo-44k", "odd-11025", "truncated"}
    # Through the CLI: every failure named at the end, exit status 1.
    code = main(["prepare", *map(str, files.values()), "--corpus", str(tmp_path / "corpus"), "--no-draft"])
    assert code == 1


def test_a_file_without_samples_leaves_no_recording_behind(synth_meeting, tmp_path, capsys):
    """A WAV holding only its header failed but left a recording row, so the fixed file became `name-2`."""
    path = tmp_path / "talk.wav"
    write_wav(path, np.zeros(0, np.float32))
    assert main(["prepare", str(path), "--corpus", str(tmp_path / "corpus"), "--no-draft"]) == 1
    assert "1 of 1 inputs failed" in capsys.readouterr().err
    with open_corpus(tmp_path / "corpus") as corpus:
        assert corpus.recordings() == []
    shutil.copyfile(synth_meeting("prepare-meeting", rounds=2)[0], path)
    assert prepare([path], tmp_path / "corpus", draft=None).failures == []
    with open_corpus(tmp_path / "corpus") as corpus:
        assert [r.name for r in corpus.recordings()] == ["talk"]


def test_clips_that_cannot_be_drafted_are_counted_as_clips(synth_meeting, tiny_whisper_dir, tmp_path, capsys):
    """One recording whose clips failed to draft was reported as "9 of 1 inputs failed"."""
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    corpus_dir = tmp_path / "corpus"
    prepare([path], corpus_dir, draft=None)
    with open_corpus(corpus_dir) as corpus:
        clips = corpus.clips()
    for clip in clips:
        clip.audio_path.write_bytes(b"")  # the clips' WAVs damaged after cutting
    assert main(["prepare", "--corpus", str(corpus_dir), "--model", str(tiny_whisper_dir), "--redraft",
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"{len(clips)} clips could not be drafted" in err and "inputs failed" not in err


def test_cutting_options_from_the_cli_are_the_ones_stored_and_used(synth_meeting, tmp_path):
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    assert main(["prepare", str(path), "--corpus", str(tmp_path / "c"), "--no-draft", "--min-clip-s", "2",
                 "--max-clip-s", "8", "--min-silence-ms", "400", "--pad-ms", "100"]) == 0
    with open_corpus(tmp_path / "c") as corpus:
        [recording] = corpus.recordings()
        clips = corpus.clips()
    stored = json.loads(recording.segment_options)
    assert (stored["min_clip_s"], stored["max_clip_s"], stored["min_silence_ms"], stored["pad_ms"]) == (2.0, 8.0, 400, 100)
    assert clips and all(2.0 <= c.duration_s <= 8.0 for c in clips) and all(c.draft_text is None for c in clips)


def test_a_directory_that_is_not_a_corpus_is_left_alone(synth_meeting, tmp_path):
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_bytes(b"precious")
    assert main(["prepare", str(path), "--corpus", str(tmp_path / "mine"), "--no-draft"]) == 2
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.docx"]


def test_redraft_replaces_only_drafts_nobody_touched(synth_meeting, tiny_whisper_dir, tmp_path):
    path, _ = synth_meeting("prepare-meeting", rounds=2)
    corpus_dir = tmp_path / "corpus"
    first = DraftOptions(model=str(tiny_whisper_dir), beam_size=1)
    prepare([path], corpus_dir, draft=first, segment=SegmentOptions(max_clip_s=10.0))
    with open_corpus(corpus_dir) as corpus:
        edited, reviewed, *untouched = corpus.clips()
        corpus.revise_text(edited.id, "人が直した", "person:sato", edited.version)
        corpus.set_status(reviewed.id, "reviewed", "person:sato", reviewed.version)
    adapted = tmp_path / "adapted-model"
    shutil.copytree(tiny_whisper_dir, adapted)  # another model as far as the corpus knows
    result = prepare([], corpus_dir, draft=DraftOptions(model=str(adapted), beam_size=1), redraft=True)
    assert result.clips_drafted == len(untouched) > 0
    with open_corpus(corpus_dir) as corpus:
        assert corpus.get_clip(edited.id).text == "人が直した" and corpus.get_clip(reviewed.id).status == "reviewed"
        for clip in untouched:
            origins = [r.origin for r in corpus.revisions(clip.id)]
            assert origins == ["prepare", f"draft:{model_label(str(tiny_whisper_dir))}", f"draft:{model_label(str(adapted))}"]
    again = prepare([], corpus_dir, draft=DraftOptions(model=str(adapted), beam_size=1), redraft=True)
    assert again.clips_drafted == 0, "a redraft that finished is not repeated"


def _peak_rss_mb(recording: Path, corpus_dir: Path, draft: bool = False) -> tuple[float, float]:
    """Run prepare on `recording` in a fresh process; returns (its peak RSS in MB, wall seconds)."""
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from whisper_adapt.prepare import DraftOptions, prepare\n"
        f"result = prepare([Path({str(recording)!r})], Path({str(corpus_dir)!r}), draft={'DraftOptions(beam_size=1)' if draft else None})\n"
        "assert not result.failures, result.failures\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1]), time.monotonic() - started


def _loop_to_length(source: Path, target: Path, minutes: float) -> Path:
    """`source` repeated to `minutes` of audio, written in pieces so that the test itself stays small."""
    import wave

    pcm = np.round(decode_audio(source) * 32767).astype("<i2").tobytes()
    repeats = int(np.ceil(minutes * 60 * SAMPLE_RATE * 2 / len(pcm)))
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        for _ in range(repeats):
            w.writeframes(pcm)
    return target


@pytest.mark.slow
def test_memory_stays_bounded_on_a_two_hour_recording(synth_meeting, tmp_path):
    """Cutting streams the recording: a 2-hour file needs about what a 10-minute one does."""
    path, _ = synth_meeting("memory-meeting", rounds=4)
    short_mb, short_s = _peak_rss_mb(_loop_to_length(path, tmp_path / "ten-minutes.wav", 10), tmp_path / "c10")
    long_mb, long_s = _peak_rss_mb(_loop_to_length(path, tmp_path / "two-hours.wav", 120), tmp_path / "c120")
    print(f"\npeak RSS: 10 min {short_mb:.0f} MB ({short_s:.0f} s), 2 h {long_mb:.0f} MB ({long_s:.0f} s)")
    assert long_mb < short_mb + 50, "memory grows with the recording's length"
    with open_corpus(tmp_path / "c120") as corpus:
        stats = corpus.stats()
    assert stats.hours > 1.2  # the 2 hours hold ~1.6 h of speech around the pauses


@pytest.mark.slow
def test_meeting_with_base_model_is_cut_in_pauses_drafted_and_covered(synth_meeting, tmp_path, capsys):
    """The issue's done-criterion on a shorter meeting: clip edges only in pauses, a draft for every clip,
    word probabilities stored, and `corpus stats` counting the glossary terms once people reviewed."""
    from whisper_adapt.glossary import load_glossary

    path, spans = synth_meeting("base-meeting", rounds=3)
    glossary = tmp_path / "terms.txt"
    glossary.write_text("上期 (かみき) ← 紙木, 神木\n下期 (しもき)\nミライ計画 ← 未来計画\n田中部長\n", encoding="utf-8")
    corpus_dir = tmp_path / "corpus"
    assert main(["prepare", str(path), "--corpus", str(corpus_dir), "--glossary", str(glossary)]) == 0
    with open_corpus(corpus_dir) as corpus:
        clips = corpus.clips()
        for clip in clips:
            assert not [s for s in spans if s[0] + 0.05 < clip.start_s < s[1] - 0.05 or s[0] + 0.05 < clip.end_s < s[1] - 0.05]
            assert clip.draft_text is not None and clip.draft_model == "base"
            # A person corrects the draft: the sentences inside the clip are its true text.
            truth = "".join(text for start, end, text in spans if clip.start_s <= start and end <= clip.end_s)
            corpus.revise_text(clip.id, truth, "person:test", clip.version, status="reviewed")
        spoken = [clip for clip in clips if clip.draft_words]
        assert len(spoken) >= len(clips) - 1  # the murmur's clip may rightly be left empty
        assert sum("会議" in clip.draft_text for clip in clips) >= 2
    assert main(["corpus", "stats", str(corpus_dir), "--glossary", str(glossary)]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # the table's cells, space-separated
    terms = load_glossary(glossary)
    with open_corpus(corpus_dir) as corpus:
        truths = [clip.text for clip in corpus.clips(status="reviewed")]
        coverage = corpus.stats(terms).term_coverage
    assert coverage == {term.text: sum(term.text in truth for truth in truths) for term in terms.terms}
    assert all(count >= 1 for count in coverage.values())
    assert all(f"{term} {count}" in out for term, count in coverage.items())
