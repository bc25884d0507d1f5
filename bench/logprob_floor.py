"""Where to put the low-confidence floor: the average log-probability Whisper gives real speech.

Every sentence of the demo's speech bank (the meeting's clear lines in four voices, the held-out test and
everyday sentences in a fifth) is transcribed with `transcribe`'s default options (VAD, temperature
fallback; --no-fallback: temperature 0 only, as `eval` decodes) under four conditions: clean; quiet
(--quiet-db, default -26 dB); under next-room murmur and in room noise (both at --snr-db, default 5 dB).
It prints the distribution of the windows' avg_logprob per condition (every segment, kept or dropped),
and how many sentences each candidate floor would lose whole. Issue #20's garbage window scored -2.89.

    python bench/logprob_floor.py [--model base] [--share 1.0] [--snr-db 5] [--quiet-db -26] [--no-fallback]
"""

from __future__ import annotations

import argparse

import numpy as np

FLOORS = (-1.5, -2.0, -2.5)


def conditions(clip: np.ndarray, others: list[np.ndarray], rng: np.random.Generator, snr_db: float,
               quiet_db: float) -> dict[str, np.ndarray]:
    from whisper_adapt.nonspeech import murmur, room_noise

    seconds = len(clip) / 16000
    level = float(np.sqrt(np.mean(clip**2)))
    snr = 10 ** (-snr_db / 20)
    pad = np.zeros(8000, np.float32)
    clip = np.concatenate([pad, clip, pad])
    seconds += 1.0
    noise = room_noise(seconds, rng)
    talk = murmur(seconds, others, rng)
    return {
        "clean": clip,
        "quiet": clip * 10 ** (quiet_db / 20),
        "murmur": clip + talk[: len(clip)] * (level * snr / float(np.sqrt(np.mean(talk**2)))),
        "room noise": clip + noise[: len(clip)] * (level * snr / float(np.sqrt(np.mean(noise**2)))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--share", type=float, default=1.0, help="share of the sentences used")
    parser.add_argument("--snr-db", type=float, default=5.0, help="speech over murmur and over room noise")
    parser.add_argument("--quiet-db", type=float, default=-26.0, help="gain of the quiet condition")
    parser.add_argument("--no-fallback", action="store_true", help="temperature 0 only, as eval decodes")
    args = parser.parse_args()

    from whisper_adapt.audio import decode_audio
    from whisper_adapt.demo import TEST_VOICE, speech_bank, take_share
    from whisper_adapt.meeting_audio import read_meeting
    from whisper_adapt.resources import demo_file
    from whisper_adapt.synthcorpus import read_sentences
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_audio

    bank = speech_bank()
    said = [(line.voice, line.text) for line in read_meeting(demo_file("meeting.txt")) if not line.murmur]
    said += [(TEST_VOICE, s) for name in ("test.txt", "everyday.txt") for s in read_sentences(demo_file(name))]
    said = take_share(said, args.share)
    clips = [decode_audio(bank[pair]) for pair in said]
    model = load_model(args.model, device="cpu")
    rng = np.random.default_rng(0)
    options = TranscribeOptions(temperatures=(0.0,)) if args.no_fallback else TranscribeOptions()
    scores: dict[str, list[float]] = {}
    lowest: dict[str, list[float]] = {}
    for index, clip in enumerate(clips):
        others = clips[:index] + clips[index + 1:]
        for name, audio in conditions(clip, others, rng, args.snr_db, args.quiet_db).items():
            transcript = transcribe_audio(model, audio.astype(np.float32), options)
            figures = [s.avg_logprob for s in transcript.segments] + [s.avg_logprob for s, _ in transcript.dropped]
            scores.setdefault(name, []).extend(figures)
            lowest.setdefault(name, []).append(max(figures) if figures else float("nan"))
    print(f"{len(clips)} sentences, model {args.model}, SNR {args.snr_db} dB, quiet {args.quiet_db} dB, "
          f"temperatures {options.temperatures}; avg_logprob of every segment (kept or dropped)")
    print(f"{'condition':<12}{'segments':>9}{'min':>8}{'p1':>8}{'p5':>8}{'median':>8}"
          + "".join(f"{'lost < ' + str(f):>13}" for f in FLOORS))
    for name, values in scores.items():
        v = np.array(values)
        best = np.array(lowest[name])
        lost = [int(np.sum(best < floor)) for floor in FLOORS]  # sentences whose every window is below
        print(f"{name:<12}{len(v):>9}{v.min():>8.2f}{np.percentile(v, 1):>8.2f}{np.percentile(v, 5):>8.2f}"
              f"{np.median(v):>8.2f}" + "".join(f"{n:>13}" for n in lost))


if __name__ == "__main__":
    main()
