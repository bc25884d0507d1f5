"""Rebuild the bundled quick-start recording: src/whisper_adapt/data/sample_ja.m4a and sample_ja.txt.

Two synthesized speakers open a meeting (about 10 s, AAC in M4A, 16 kHz mono). Run from the repository
root with the synth extra installed:

    python scripts/make_sample.py

Kokoro reads 上期 as かみき, the business reading that Whisper tends to write as 紙木: the sample shows
the kind of term an adapter is for.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from whisper_adapt.audio import SAMPLE_RATE
from whisper_adapt.synth import synthesize_speech

DATA_DIR = Path(__file__).resolve().parent.parent / "src" / "whisper_adapt" / "data"

# (voice, sentences): one speaker turn each
TURNS = [
    ("jf_alpha", ["本日の会議を始めます。", "まず上期の売上について、営業部から報告します。"]),
    ("jm_kumo", ["報告のあとで、来週の予定も確認しましょう。"]),
]
EDGE_S = 0.5  # silence before the first and after the last word, as in a real recording
TURN_PAUSE_S = 1.0  # between speakers, long enough for a VAD to split there
BIT_RATE = 48_000  # 48 kbit/s AAC keeps speech clear at about 6 KB per second


def build_recording() -> np.ndarray:
    """The turns spoken in order, separated by pauses, as 16 kHz mono float32."""
    edge = np.zeros(round(EDGE_S * SAMPLE_RATE), np.float32)
    pause = np.zeros(round(TURN_PAUSE_S * SAMPLE_RATE), np.float32)
    parts = [edge]
    for i, (voice, sentences) in enumerate(TURNS):
        if i:
            parts.append(pause)
        parts.append(synthesize_speech("".join(sentences), voice))
    parts.append(edge)
    return np.concatenate(parts)


def write_m4a(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = BIT_RATE
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main() -> None:
    samples = build_recording()
    write_m4a(DATA_DIR / "sample_ja.m4a", samples)
    lines = [sentence for _, sentences in TURNS for sentence in sentences]
    (DATA_DIR / "sample_ja.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {DATA_DIR / 'sample_ja.m4a'}: {len(samples) / SAMPLE_RATE:.1f} s")


if __name__ == "__main__":
    main()
