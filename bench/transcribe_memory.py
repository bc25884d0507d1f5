"""Peak memory of transcribing one long file, side by side in one run: the whole file decoded and transcribed
at once (`transcribe_audio(decode_audio(path))`, what `transcribe` did) vs in bounded windows
(`transcribe_path`, what `transcribe` and `serve` do now).

The recording is room noise at a low level (no speech, so the time goes to decoding, VAD and features, where
memory grows with length), or with --speech a synthesized meeting looped to length. Each way runs in a fresh
process, one after the other; the peak RSS (ru_maxrss) and wall time of each are printed with their ratio.

    python bench/transcribe_memory.py [--minutes 60] [--model base] [--speech]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

RUN = """
import resource, sys
from whisper_adapt.audio import decode_audio
from whisper_adapt.transcribe import TranscribeOptions, load_model, transcribe_audio, transcribe_path
model = load_model(sys.argv[2], device="cpu")
options = TranscribeOptions(beam_size=1)
if sys.argv[1] == "whole":
    transcript = transcribe_audio(model, decode_audio(sys.argv[3]), options, sys.argv[3])
else:
    transcript = transcribe_path(model, sys.argv[3], options)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(transcript.segments))
"""


def write_recording(path: Path, minutes: float, speech: bool) -> None:
    """16 kHz 16-bit WAV of `minutes`, written piece by piece so this script stays small itself."""
    from whisper_adapt.audio import SAMPLE_RATE

    rng = np.random.default_rng(0)
    piece = _speech_piece() if speech else rng.normal(0, 0.002, 60 * SAMPLE_RATE).astype(np.float32)
    pcm = np.round(np.clip(piece, -1, 1) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        for _ in range(int(np.ceil(minutes * 60 * SAMPLE_RATE / len(piece)))):
            w.writeframes(pcm)


def _speech_piece() -> np.ndarray:
    from whisper_adapt.audio import SAMPLE_RATE
    from whisper_adapt.synth import synthesize_speech

    pause = np.zeros(SAMPLE_RATE, np.float32)
    lines = ("本日の会議を始めます。まず上期の売上について報告します。", "来週の予定を確認しましょう。")
    return np.concatenate([part for text in lines for part in (synthesize_speech(text, "jf_alpha"), pause)])


def measure(way: str, model: str, path: Path) -> tuple[float, float, int]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", RUN, way, model, str(path)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{way} failed:\n{done.stderr[-2000:]}")
    peak_mb, segments = done.stdout.split()[-2:]
    return float(peak_mb), time.monotonic() - started, int(segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="base")
    parser.add_argument("--speech", action="store_true", help="a looped meeting instead of room noise")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "long.wav"
        write_recording(path, args.minutes, args.speech)
        results = {way: measure(way, args.model, path) for way in ("whole", "windows")}
    print(f"{args.minutes:g} min of {'speech' if args.speech else 'room noise'}, model {args.model}, CPU")
    print(f"{'way':<28}{'peak RSS MB':>12}{'wall s':>9}{'segments':>10}")
    for way, label in (("whole", "whole file at once"), ("windows", "transcribe_path (windows)")):
        peak_mb, wall_s, segments = results[way]
        print(f"{label:<28}{peak_mb:>12.0f}{wall_s:>9.1f}{segments:>10}")
    print(f"peak RSS ratio whole / windows: {results['whole'][0] / results['windows'][0]:.2f}")


if __name__ == "__main__":
    main()
