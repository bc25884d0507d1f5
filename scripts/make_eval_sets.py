"""Build the held-out evaluation sets of the fictional company ヒノデ電機 (the README's eval table).

    python scripts/make_eval_sets.py eval-data
    whisper-adapt eval --test eval-data/test --general eval-data/general --nonspeech eval-data/nonspeech \
        --longform eval-data/longform --glossary eval-data/glossary.txt --model base --out eval-data/report

Writes, offline and reproducibly (same text, same files):
- `test/`: 16 sentences full of the company's words, spoken by jf_tebukuro, a voice that neither the
  shipped general set (scripts/make_general_set.py) nor the glossary's observations below use;
- `general/`: 10 everyday sentences by the same voice, none of them in the shipped general set, for
  forgetting: what an adapter must not lose;
- `nonspeech/`: four 15 s files without speech (faint room tone, noise, mains hum, keyboard clicks);
- `longform/`: one recording (about 5 minutes, most of it without speech) of 8 test sentences, each after
  10-45 s of room noise, next-room murmur, keyboard clicks or near-silence (`nonspeech.build_longform`),
  with its reference `meeting.json`;
- `glossary.txt`: the terms with their readings and the misrecognitions Whisper base produced for them on
  *other* sentences in *other* voices (jf_alpha, jm_kumo) — what a reviewer writes down while correcting
  drafts — so the replacement dictionary is not tuned on the test set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from whisper_adapt.audio import SAMPLE_RATE, write_wav
from whisper_adapt.demo import write_spoken_set
from whisper_adapt.nonspeech import build_longform, write_longform
from whisper_adapt.synth import synthesize_speech

VOICE = "jf_tebukuro"
GLOSSARY = """\
# ヒノデ電機 (fictional). Misrecognitions: base's output on other sentences and voices.
上期 (かみき) ← 紙木, 紙き, かみき
下期 (しもき) ← しもき, 霜木
ミライ計画 ← 未来計画
田中部長
ヒノデ電機 (ひのででんき) ← 火ので電気, 広で電気
朝霧工場 (あさぎりこうじょう) ← 朝切り工場, 朝切りこじょ
鳴海課長 (なるみかちょう) ← なるみ家庁, なるみカチョ
稟議書 (りんぎしょ) ← リン議書, リンギショ, リンギション
ソラトブ ← 空飛ぶ
月次締め (げつじじめ) ← 月時時目, ゲッツジジメ
"""
TEST = (
    "まず上期の売上について報告します。",
    "下期の目標は上期より一割高く設定しました。",
    "ミライ計画の進捗を田中部長に説明します。",
    "ヒノデ電機との契約は来月更新されます。",
    "朝霧工場の生産ラインが今週から再開しました。",
    "鳴海課長が稟議書を確認しています。",
    "新製品のソラトブは下期に発売する予定です。",
    "月次締めが終わったら上期の数字を共有します。",
    "ヒノデ電機の担当者が朝霧工場を見学に来ます。",
    "稟議書は金曜日までに提出してください。",
    "ミライ計画の予算は下期に見直します。",
    "田中部長と鳴海課長が出張から戻りました。",
    "ソラトブの試作品を朝霧工場で作ります。",
    "上期の月次締めは予定どおり完了しました。",
    "下期の採用計画について意見をください。",
    "ヒノデ電機のミライ計画は社内で評判です。",
)
GENERAL = (
    "今朝は電車がとても混んでいました。",
    "昼休みに近くの公園を散歩しました。",
    "会議の資料を三部コピーしてください。",
    "来週から新しいシステムが使えるようになります。",
    "週末は雨が降るそうです。",
    "駅前に新しいパン屋ができました。",
    "この件については明日お返事します。",
    "冷蔵庫の牛乳が切れていました。",
    "子供の運動会が日曜日にあります。",
    "出発の時間を十五分早めましょう。",
)
NONSPEECH_S = 15.0


def nonspeech_set(out: Path) -> None:
    rng = np.random.default_rng(0)
    n = int(NONSPEECH_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    clicks = np.zeros(n)
    for start in rng.integers(0, n - 400, 60):  # 4 key presses a second, each a 25 ms decaying burst
        clicks[start:start + 400] += rng.normal(0, 0.3, 400) * np.exp(-np.arange(400) / 60)
    files = {
        "room-tone.wav": rng.normal(0, 0.002, n),
        "noise.wav": np.cumsum(rng.normal(0, 0.02, n)) * 0.01 + rng.normal(0, 0.03, n),
        "hum.wav": 0.05 * np.sin(2 * np.pi * 50 * t) + 0.02 * np.sin(2 * np.pi * 150 * t),
        "keyboard.wav": clicks + rng.normal(0, 0.002, n),
    }
    (out / "nonspeech").mkdir(parents=True, exist_ok=True)
    for name, audio in files.items():
        write_wav(out / "nonspeech" / name, np.clip(audio, -1, 1).astype(np.float32))


def longform_set(out: Path) -> None:
    sentences = [(VOICE, text) for text in TEST[::2]]
    audio, reference = build_longform(sentences, synthesize_speech, np.random.default_rng(0))
    write_longform(out / "longform", "meeting", audio, reference)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "glossary.txt").write_text(GLOSSARY, encoding="utf-8")
    write_spoken_set(out / "test", TEST, VOICE, synthesize_speech)
    write_spoken_set(out / "general", GENERAL, VOICE, synthesize_speech)
    nonspeech_set(out)
    longform_set(out)
    print(f"wrote {len(TEST)} test clips, {len(GENERAL)} general clips, 4 non-speech files and a long-form "
          f"recording to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "eval-data"))
