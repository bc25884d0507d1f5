"""Transcription speed, side by side in one run: our `transcribe` vs bare faster-whisper vs transformers.

The same audio (about a minute of distinct synthesized sentences, two voices, pauses) goes through
  1. whisper_adapt.transcribe.transcribe_audio (guards, VAD, dictionary-free), also without the pause
     rule (which asks faster-whisper for word timings) to show what that rule costs,
  2. faster-whisper's WhisperModel.transcribe with the same decoding settings,
  3. the Hugging Face transformers ASR pipeline on the same weights (converted by models.py), greedy,
     30 s chunks, float32.
Each is run --repeats times, interleaved; the median wall time is reported with the real-time factor
and the ratios (goals: ours ≥ 0.95× faster-whisper, ≥ 4× transformers on CPU). With --pause-s 2 or more
each sentence is a VAD stretch of its own, which our sequential path decodes apart (one encoder pass each)
where faster-whisper glues them into shared windows: that shows what losing no sentence costs.

    python bench/transcribe_speed.py [--model base] [--repeats 5] [--beam-size 1] [--seconds 60] [--pause-s 1]
                                     [--compute-type auto] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


SENTENCES = (
    "本日の会議を始めます。まず上期の売上について、営業部から報告します。",
    "先月は新しいお客様が三社増えました。来月はさらに二社と契約する予定です。",
    "工場の生産ラインは順調ですが、部品の納期が少し遅れています。",
    "この件については、来週までに担当者を決めて、資料を共有してください。",
    "次に、人事部から新しい研修制度について説明があります。",
    "研修は四月から始まり、全員が半年に一度参加することになります。",
    "質問がある方は、会議のあとでメールを送ってください。",
    "最後に、来週の予定を確認しましょう。火曜日の午後に全体会議があります。",
)


def bench_audio(seconds: float, pause_s: float) -> np.ndarray:
    """Distinct sentences in two voices with pauses (repeating one clip would look like a decoder loop)."""
    from whisper_adapt.audio import SAMPLE_RATE
    from whisper_adapt.synth import synthesize_speech

    pause = np.zeros(round(pause_s * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    for index in range(1000):
        if sum(len(p) for p in pieces) >= seconds * SAMPLE_RATE:
            break
        text = SENTENCES[index % len(SENTENCES)]
        pieces += [synthesize_speech(text, ("jf_alpha", "jm_kumo")[index % 2]), pause]
    return np.concatenate(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pause-s", type=float, default=1.0,
                        help="silence after each sentence; from 2 s on, VAD makes each sentence a stretch of its own")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per batch for our batched row")
    parser.add_argument("--compute-type", default="auto", help="CTranslate2 compute type for both faster-whisper paths")
    args = parser.parse_args()

    import torch
    from transformers import pipeline

    from whisper_adapt.guards import GuardOptions
    from whisper_adapt.models import resolve_model
    from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_audio

    audio = bench_audio(args.seconds, args.pause_s)
    duration_s = len(audio) / 16000
    model = load_model(args.model, device="cpu", compute_type=args.compute_type)
    options = TranscribeOptions(beam_size=args.beam_size)
    unsplit = TranscribeOptions(beam_size=args.beam_size, guards=GuardOptions(max_pause_s=None))
    batched = TranscribeOptions(beam_size=args.beam_size, batch_size=args.batch_size)
    settings = dict(language=options.language, beam_size=options.beam_size, temperature=list(options.temperatures),
                    vad_filter=options.vad, condition_on_previous_text=options.condition_on_previous_text)
    asr = pipeline("automatic-speech-recognition", model=str(resolve_model(args.model, "hf")),
                   dtype=torch.float32, device="cpu", chunk_length_s=30)
    runs = {
        "whisper-adapt transcribe": lambda: transcribe_audio(model, audio, options).text,
        "ours, no pause rule": lambda: transcribe_audio(model, audio, unsplit).text,
        f"ours, batched x{args.batch_size}": lambda: transcribe_audio(model, audio, batched).text,
        "bare faster-whisper": lambda: "".join(s.text for s in model.transcribe(audio, **settings)[0]),
        "transformers pipeline": lambda: asr(audio.copy(), batch_size=1, generate_kwargs=dict(
            language="ja", task="transcribe", num_beams=args.beam_size, do_sample=False))["text"],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    texts: dict[str, str] = {}
    for name, run in runs.items():  # warm-up: first-call costs (VAD model load, graph caches) are not speed
        texts[name] = run()
    for repeat in range(args.repeats):
        # Rotate the order so a slower stretch of the machine does not always hit the same path.
        names = list(runs)[repeat % len(runs):] + list(runs)[: repeat % len(runs)]
        for name, run in ((n, runs[n]) for n in names):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"audio: {duration_s:.1f} s, model {args.model}, beam {args.beam_size}, {args.repeats} repeats, "
          f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"{'path':28} {'median s':>9} {'x realtime':>11}")
    for name, median in medians.items():
        print(f"{name:28} {median:9.2f} {duration_s / median:11.1f}")
    ours = medians["whisper-adapt transcribe"]
    print(f"ours vs bare faster-whisper: {medians['bare faster-whisper'] / ours:.2f}x speed (goal >= 0.95)")
    print(f"ours vs ours without the pause rule: {medians['ours, no pause rule'] / ours:.2f}x speed")
    print(f"ours vs transformers:        {medians['transformers pipeline'] / ours:.2f}x speed (goal >= 4)")
    for name, text in texts.items():
        print(f"[{name}] {text[:60]}…")


if __name__ == "__main__":
    main()
