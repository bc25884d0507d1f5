"""Speaker labels on synthetic meetings with 2, 4 and 6 voices: DER, speaker count, naming, speed, memory.

Each meeting strings together sentences of the packaged voices (src/whisper_adapt/data/general_ja: four
voices; data/demo/speech: a fifth) and a sixth voice made from jm_kumo's clips played 12% slower (lower
pitch and formants: another voice to the embedding model). Turns follow each other after 0.4–1.5 s
pauses; 15% of turns start 0.3–1.0 s before the previous one ends (overlap), and after 20% another voice
says a back-channel (はい, ええ, synthesized offline) near the end of the turn. Reference times are each
clip's speech, silences (also the pause between two sentences of a clip) left out. Scoring: DER with a 0.25 s collar (NIST's: either side of each reference
boundary), overlapped speech counted (speaker_metrics.diarization_error); whether the speaker count came
out right; and naming: reference recordings made from other sentences of each voice (`--voices`), the
share of turns (back-channels apart) whose majority speaker carries the right name. Last column: the DER
when the count is given (`--num-speakers`; not timed).

Speed is measured apart from the model load: seconds of diarization per minute of audio, wall clock and
CPU (user + system, all threads: on an idle 2-core machine the wall time is at least half of it, which is
the figure to read when other work shares the cores; the load average is printed). Peak RAM is the
process's maximum resident size after all meetings. `--long-hours H` instead writes an H-hour recording
(a 4-voice meeting repeated), diarizes it from the file (decoded a window at a time) and reports speed
and peak RAM: the bounded-memory check.

    python bench/speakers.py [--meetings 2] [--turns 40] [--seed 0]
    python bench/speakers.py --long-hours 3
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, decode_audio, resample, write_wav

BASE_VOICES = ("jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
LOW_VOICE = "jm_kumo_low"  # jm_kumo played 12% slower
LOW_FACTOR = 1.12
BACKCHANNELS = ("はい", "ええ")
ENROL_CLIPS = 3


def clip_bank() -> dict[str, list[tuple[str, np.ndarray]]]:
    """voice → [(sentence, audio)], from the packaged speech; the low voice takes half of jm_kumo's clips
    (so the two never say the same recording)."""
    from whisper_adapt.labeled import read_audiofolder
    from whisper_adapt.resources import demo_file, general_set_folder

    bank: dict[str, list[tuple[str, np.ndarray]]] = {}
    for root in (general_set_folder(), demo_file("speech")):
        clips, _ = read_audiofolder(root)
        for clip in clips:
            if clip.speaker in BASE_VOICES and len(bank.get(clip.speaker, [])) < 120:
                bank.setdefault(clip.speaker, []).append((clip.text, clip.audio_path))
    kumo = bank["jm_kumo"]
    bank["jm_kumo"], bank[LOW_VOICE] = kumo[::2], kumo[1::2]
    return {voice: [(text, _voice_audio(voice, decode_audio(path))) for text, path in clips]
            for voice, clips in bank.items()}


def _voice_audio(voice: str, audio: np.ndarray) -> np.ndarray:
    if voice != LOW_VOICE:
        return audio
    return resample(audio, SAMPLE_RATE, round(SAMPLE_RATE * LOW_FACTOR))


def backchannel_bank(voices: list[str]) -> dict[str, list[np.ndarray]]:
    from whisper_adapt.synth import synthesize_speech

    base = {v: "jm_kumo" if v == LOW_VOICE else v for v in voices}
    return {v: [_voice_audio(v, synthesize_speech(word, base[v])) for word in BACKCHANNELS] for v in voices}


def speech_pieces(audio: np.ndarray, min_pause_s: float = 0.25) -> list[tuple[int, int]]:
    """Sample ranges of a clip's speech: 10 ms frames louder than 2% of its peak, pauses shorter than
    `min_pause_s` bridged (a two-sentence clip has a pause in it that nobody speaks in)."""
    frames = np.abs(audio[: len(audio) // 160 * 160]).reshape(-1, 160).max(axis=1)
    loud = np.flatnonzero(frames > 0.02 * frames.max())
    if not len(loud):
        return [(0, len(audio))]
    breaks = np.flatnonzero(np.diff(loud) > min_pause_s * 100)
    firsts, lasts = np.r_[loud[0], loud[breaks + 1]], np.r_[loud[breaks], loud[-1]]
    return [(int(a) * 160, int(b + 1) * 160) for a, b in zip(firsts, lasts)]


def speech_span(audio: np.ndarray) -> tuple[int, int]:
    pieces = speech_pieces(audio)
    return pieces[0][0], pieces[-1][1]


def build_meeting(voices: list[str], turns: int, bank: dict, backs: dict, rng: np.random.Generator):
    """Audio and reference spans [(start_s, end_s, voice, text)]; back-channels have text '' in the spans
    and are listed apart as well."""
    placed: list[tuple[int, np.ndarray, str, str]] = []
    cursor, previous = SAMPLE_RATE, None
    order = list(rng.permutation(voices))  # every voice speaks within the first turns
    for index in range(turns):
        voice = order[index] if index < len(order) else rng.choice([v for v in voices if v != previous])
        text, audio = bank[voice][int(rng.integers(len(bank[voice])))]
        start = cursor + round(rng.uniform(0.4, 1.5) * SAMPLE_RATE)
        if previous is not None and rng.random() < 0.15:
            start = cursor - round(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
        placed.append((start, audio, voice, text))
        cursor, previous = start + speech_span(audio)[1], voice
        if rng.random() < 0.2:
            other = rng.choice([v for v in voices if v != voice])
            back = backs[other][int(rng.integers(len(BACKCHANNELS)))]
            back_start = cursor + round(rng.uniform(-0.3, 0.3) * SAMPLE_RATE)
            placed.append((back_start, back, other, ""))
            cursor = max(cursor, back_start + speech_span(back)[1])
    length = max(start + len(audio) for start, audio, _, _ in placed) + SAMPLE_RATE
    meeting = np.zeros(length, np.float32)
    spans = []
    for start, audio, voice, text in placed:
        meeting[start:start + len(audio)] += audio
        spans += [((start + first) / SAMPLE_RATE, (start + last) / SAMPLE_RATE, voice, text)
                  for first, last in speech_pieces(audio)]
    meeting += rng.normal(0, 0.002, length).astype(np.float32)
    return np.clip(meeting, -1, 1), sorted(spans)


def enrolment(bank: dict, voices: list[str], folder: Path) -> Path:
    """One reference recording per voice from clips set aside (the bank's last ones), named after it."""
    folder.mkdir(parents=True, exist_ok=True)
    for voice in voices:
        clips = [audio for _, audio in bank[voice][-ENROL_CLIPS:]]
        write_wav(folder / f"{voice}.wav", np.concatenate([np.pad(c, (0, SAMPLE_RATE // 2)) for c in clips]))
    return folder


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def named_right(spans, turns, names: dict[str, str]) -> tuple[int, int]:
    """(spans whose majority speaker is named as their voice, spans) over the sentences' stretches of
    speech (back-channels apart)."""
    right = total = 0
    for start, end, voice, text in spans:
        if not text:
            continue
        talk: dict[str, float] = {}
        for turn in turns:
            overlap = min(end, turn.end_s) - max(start, turn.start_s)
            if overlap > 0:
                talk[turn.speaker] = talk.get(turn.speaker, 0.0) + overlap
        total += 1
        right += bool(talk) and names.get(max(talk, key=talk.get)) == voice
    return right, total


def scored(spans, turns, audio: np.ndarray):
    """The diarization error of `turns` against the reference `spans` of `audio`."""
    from whisper_adapt.speaker_metrics import diarization_error

    return diarization_error(spans, [(t.start_s, t.end_s, t.speaker) for t in turns],
                             duration_s=len(audio) / SAMPLE_RATE)


def run_meetings(args) -> None:
    from whisper_adapt.speakers import DiarizeOptions, SpeakerOptions, diarize_audio, load_labeller

    rng = np.random.default_rng(args.seed)
    bank = clip_bank()
    backs = backchannel_bank(list(bank))
    with tempfile.TemporaryDirectory() as tmp:
        enrolled = enrolment(bank, list(bank), Path(tmp) / "voices")
        bank = {v: clips[:-ENROL_CLIPS] for v, clips in bank.items()}
        clock, cpu = time.perf_counter(), _cpu_s()
        labeller = load_labeller(SpeakerOptions(DiarizeOptions(), voices_dir=enrolled))
        load_s, load_cpu = time.perf_counter() - clock, _cpu_s() - cpu
    print(f"model load + {len(backs)} reference voices: {load_s:.1f} s wall, {load_cpu:.1f} s CPU   "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'voices':>6} {'meeting':>7} {'audio':>7} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6} "
          f"{'count':>7} {'named':>8} {'s/min':>6} {'cpu/min':>7} {'DER, count given':>16}")
    all_voices = [*BASE_VOICES, LOW_VOICE]
    for count in (2, 4, 6):
        for number in range(args.meetings):
            voices = list(rng.choice(all_voices, size=count, replace=False))
            audio, spans = build_meeting(voices, args.turns, bank, backs, rng)
            clock, cpu = time.perf_counter(), _cpu_s()
            diarization = labeller.diarize(audio)
            seconds, cpu = time.perf_counter() - clock, _cpu_s() - cpu
            names = labeller.names_for(diarization)
            score = scored(spans, diarization.turns, audio)
            right, total = named_right(spans, diarization.turns, names)
            told = diarize_audio(audio, labeller.embedder, DiarizeOptions(num_speakers=count))
            told_error = scored(spans, told.turns, audio).error_rate
            minutes = len(audio) / SAMPLE_RATE / 60
            print(f"{count:>6} {number + 1:>7} {minutes:>6.1f}m {score.error_rate:>6.1%} {score.missed:>6.1%} "
                  f"{score.false_alarm:>6.1%} {score.confusion:>6.1%} {score.hypothesis_speakers:>3}/{count:<3} "
                  f"{right:>3}/{total:<4} {seconds / minutes:>6.2f} {cpu / minutes:>7.2f} {told_error:>16.1%}")
    print(f"peak RAM {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB   "
          f"(load average {os.getloadavg()[0]:.1f})")


def run_long(args) -> None:
    from whisper_adapt.speakers import diarize_file, load_embedder

    rng = np.random.default_rng(args.seed)
    bank = clip_bank()
    voices = ["jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi"]
    audio, _ = build_meeting(voices, 60, bank, backchannel_bank(voices), rng)
    repeats = int(np.ceil(args.long_hours * 3600 / (len(audio) / SAMPLE_RATE)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        write_wav(path, np.tile(audio, repeats))
        del audio, bank
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        embedder = load_embedder()
        clock, cpu = time.perf_counter(), _cpu_s()
        diarization = diarize_file(path, embedder)
        seconds, cpu = time.perf_counter() - clock, _cpu_s() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hours = diarization.duration_s / 3600
    print(f"{hours:.2f} h from a file: {seconds:.0f} s wall ({seconds / (hours * 60):.2f} s per audio minute), "
          f"{cpu / (hours * 60):.2f} CPU s per audio minute, "
          f"{len(diarization.speakers)} speakers, {len(diarization.turns)} turns; peak RAM {peak:.0f} MB "
          f"(before diarizing {before:.0f} MB)   load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meetings", type=int, default=2, help="meetings per voice count")
    parser.add_argument("--turns", type=int, default=40, help="sentences per meeting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-hours", type=float, default=0.0, help="instead: one recording this long, from a file")
    args = parser.parse_args()
    run_long(args) if args.long_hours else run_meetings(args)


if __name__ == "__main__":
    main()
