"""Long-form figures before and after issue #20's guards, side by side in one run.

Builds a long-form recording from the demo's speech bank like the tester's (12 sentences, each after
10-45 s of room noise, next-room murmur, keyboard clicks or near-silence; most of it without speech),
transcribes it with `transcribe`'s defaults on both decoder paths, once with the guards as they were
(low-confidence floor, script rules and pause splitting off) and once with today's, and prints long-form
CER, term recall, invented characters per minute of non-speech, loops, timestamp error and the most
reference silence one segment covers. Then it counts what the new rules drop on clean speech: every
sentence of the demo's test and everyday sets, and any labelled sets given with --clean.

    python bench/longform.py [--model base] [--seed 0] [--sentences 12] [--clean eval-data/test eval-data/general]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OLD_GUARDS = dict(avg_logprob_floor=float("-inf"), foreign_hanzi_min=10**6, latin_run_max_words=10**6, max_pause_s=None)
NEW_RULES = ("low confidence", "foreign script")


def recording(count: int, seed: int):
    """The recording, its reference spans and the sentences said: the demo's held-out and everyday
    sentences (the voice no training heard) and the meeting's clear lines (four voices), interleaved."""
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.demo import TEST_VOICE, speech_bank
    from whisper_adapt.longform import Recording, Span
    from whisper_adapt.meeting_audio import read_meeting
    from whisper_adapt.nonspeech import build_longform
    from whisper_adapt.resources import demo_file

    bank = speech_bank()
    held_out = [(TEST_VOICE, text) for (voice, text) in bank if voice == TEST_VOICE]
    meeting = [(line.voice, line.text) for line in read_meeting(demo_file("meeting.txt")) if not line.murmur]
    pool = [pair for pairs in zip(held_out, meeting) for pair in pairs]
    chosen = [pool[i] for i in np.random.default_rng(seed).choice(len(pool), count, replace=False)]
    audio, reference = build_longform(chosen, lambda text, voice: decode_audio(bank[voice, text]),
                                      np.random.default_rng(seed))
    spans = tuple(Span(r["start"], r["end"], r["text"], r["speaker"]) for r in reference)
    return audio, Recording("bench", Path("bench.wav"), Path("bench.json"), spans)


def longform_rows(model, audio: np.ndarray, rec, glossary) -> list[list[str]]:
    from whisper_adapt.guards import GuardOptions
    from whisper_adapt.longform import score_longform
    from whisper_adapt.transcribe import TranscribeOptions, transcribe_audio

    rows = []
    for path, batch_size in (("sequential", 0), ("batched", 8)):
        for label, guards in (("guards before #20", GuardOptions(**OLD_GUARDS)), ("guards now", GuardOptions())):
            transcript = transcribe_audio(model, audio, TranscribeOptions(batch_size=batch_size, guards=guards))
            s = score_longform([(rec, len(audio) / 16000, transcript.segments)], glossary)
            rows.append([path, label, f"{s.cer:.3f}", f"{s.terms.recall:.3f}", f"{s.invented_chars_per_minute:.1f}",
                         str(s.loops), f"{s.mean_start_error_s:.2f}/{s.mean_end_error_s:.2f}",
                         f"{s.max_silence_covered_s:.1f}", str(s.segments_over_silence_limit), str(len(transcript.segments)),
                         ", ".join(f"{k} {v}" for k, v in transcript.drop_counts.items()) or "–"])
    return rows


def clean_drops(model, sets: list[Path]) -> list[str]:
    """What the new rules drop on clean labelled speech (it should be nothing)."""
    from whisper_adapt.audio import decode_audio
    from whisper_adapt.demo import TEST_VOICE, speech_bank
    from whisper_adapt.resources import demo_file
    from whisper_adapt.synthcorpus import read_sentences
    from whisper_adapt.transcribe import TranscribeOptions, transcribe_audio
    from whisper_adapt.transfer import load_labeled_set

    bank = speech_bank()
    clips = [(text, bank[TEST_VOICE, text]) for name in ("test.txt", "everyday.txt")
             for text in read_sentences(demo_file(name))]
    clips += [(clip.text, clip.audio_path) for folder in sets for clip in load_labeled_set(folder)]
    lines = []
    for label, options in (("eval settings (no VAD, temperature 0)", TranscribeOptions(vad=False, temperatures=(0.0,))),
                           ("transcribe defaults", TranscribeOptions())):
        dropped = []
        for text, path in clips:
            transcript = transcribe_audio(model, decode_audio(path), options)
            dropped += [(text, s.text, r) for s, r in transcript.dropped if r.startswith(NEW_RULES)]
        lines.append(f"{label}: {len(clips)} clean sentences, {len(dropped)} segments dropped by the new rules")
        lines += [f"  {reason} — said {said!r}, written {written!r}" for said, written, reason in dropped]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--clean", type=Path, nargs="*", default=[], help="labelled sets of clean speech")
    args = parser.parse_args()

    from whisper_adapt.glossary import load_glossary
    from whisper_adapt.longform import nonspeech_s
    from whisper_adapt.resources import demo_file
    from whisper_adapt.transcribe import load_model

    audio, rec = recording(args.sentences, args.seed)
    duration = len(audio) / 16000
    print(f"model {args.model}; recording {duration / 60:.1f} min, {len(rec.spans)} sentences, "
          f"{nonspeech_s(duration, rec.spans) / 60:.1f} min without speech")
    model = load_model(args.model, device="cpu")
    columns = ["path", "guards", "CER", "term recall", "invented/min", "loops", "ts error s", "max silence s",
               "segs > 2 s", "segments", "dropped by rule"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in longform_rows(model, audio, rec, load_glossary(demo_file("glossary.txt"))):
        print("| " + " | ".join(row) + " |")
    print("\n".join(clean_drops(model, args.clean)))


if __name__ == "__main__":
    main()
