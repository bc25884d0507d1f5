"""The packaged files are where resources.py says, and hold what their users read."""

from __future__ import annotations

from whisper_adapt.audio import SAMPLE_RATE, decode_audio
from whisper_adapt.labeled import read_audiofolder
from whisper_adapt.resources import demo_file, general_set_folder, sample_recording


def test_the_sample_recording_is_the_12_second_quick_start():
    assert 11.5 * SAMPLE_RATE < len(decode_audio(sample_recording())) < 12.5 * SAMPLE_RATE


def test_the_demo_files_are_all_there():
    for name in ("glossary.txt", "train.txt", "test.txt", "everyday.txt", "meeting.txt", "speech/metadata.csv"):
        assert demo_file(name).is_file(), name


def test_the_general_set_reads_whole():
    clips, problems = read_audiofolder(general_set_folder())
    assert not problems and len(clips) > 1000
    assert {clip.speaker for clip in clips} == {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jm_kumo"}
