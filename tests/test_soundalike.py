"""Choosing replay that sounds like the glossary."""

from __future__ import annotations

from whisper_adapt.glossary import parse_glossary
from whisper_adapt.train.soundalike import canonical, most_alike, sound_alike_scores, term_readings


def test_readings_compare_by_sound_not_spelling():
    assert canonical("ちょうかい") == canonical("チョーカイ")  # glossary hiragana vs TTS long-vowel mark
    assert canonical("けいき") == canonical("ケーキ")
    assert canonical("きんじょ") == canonical("キンショ")  # voicing is a common confusion
    assert canonical("ヨヤク、シマシタ。").split() == ["ヨヤク", "シマシタ"]
    glossary = parse_glossary("与薬 (よやく)\nアマツバメ\n品保\n")
    assert term_readings(glossary) == ["ヨヤク", "アマツハメ"]  # 品保 has no reading: left out


def test_sentences_sharing_a_terms_sounds_score_and_rank_first():
    glossary = parse_glossary("与薬 (よやく)\n経企 (けいき)\n")
    readings = {"yoyaku": "シカイシャノヨヤクヲシマシタ。", "plain": "キョーワハレデス。",
                "cake": "ケーキヲカイマシタ。", "keiki": "ケーキガヨクナッタ。"}
    scores = sound_alike_scores(readings, glossary)
    assert scores["plain"] == 0 and all(scores[k] > 0 for k in ("yoyaku", "cake", "keiki"))
    assert most_alike(list(readings), scores, 2)[0] == "yoyaku"  # ヨヤク is rarer in the pool than ケエキ
    assert "plain" not in most_alike(list(readings), scores, 4)


def test_assemble_replays_the_packaged_sentences_that_sound_like_the_terms(tmp_path):
    from whisper_adapt.labeled import LabeledClip
    from whisper_adapt.train.assemble import AssembleOptions, assemble, shipped_general_set

    glossary = parse_glossary("与薬 (よやく)\n")
    clips = []
    for index in range(20):
        path = tmp_path / f"c{index}.wav"
        path.write_bytes(b"x" * (index + 1))
        clips.append(LabeledClip(f"c{index}", path, f"{index}時の与薬です。", recording=f"r{index}"))
    alike = assemble(clips, glossary, AssembleOptions(sound_alike_share=1.0))
    plain = assemble(clips, glossary, AssembleOptions(sound_alike_share=0.0))
    held = {c.clip_id for c in alike.general}
    assert held == {c.clip_id for c in plain.general}  # the forgetting check is drawn the same way
    yoyaku = {c.clip_id for c in shipped_general_set() if "予約" in c.text} - held
    assert yoyaku and yoyaku <= {c.clip_id for c in alike.replay[: len(yoyaku)]}
    assert len(alike.replay) == len(plain.replay)
    assert alike.description["sound_alike_share"] == 1.0
