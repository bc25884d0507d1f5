"""Scoring functions against hand-computed cases, and CER against an independent implementation."""

from __future__ import annotations

import math

import pytest

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.evaluate import (
    EditCounts, TermScore, char_diff, char_edits, hallucination, normalize_text, paired_bootstrap, pooled_cer,
    pooled_char_edits, pooled_wer, term_scores, token_edits, tokenize,
)
from whisper_adapt.glossary import parse_glossary

GLOSSARY = parse_glossary("上期 (かみき) ← 紙木\n下期\nAI\nミライ計画\n")


@pytest.mark.parametrize("raw, scored", [
    ("「上期」の売上は、３０％増えました！", "上期の売上は30増えました"),  # punctuation, symbols, full-width digits
    ("ＡＩ　ｶﾀｶﾅ と ケーキ♪", "AIカタカナとケーキ"),  # NFKC; spaces of any width; ー is a letter and stays
    ("はい。\nいいえ…\t", "はいいいえ"),  # line breaks, tabs, ellipsis
    ("", ""),
])
def test_normalization_removes_what_is_not_speech(raw, scored):
    assert normalize_text(raw) == scored


@pytest.mark.parametrize("raw, scored", [
    ("三", "3"), ("十五", "15"), ("二十五", "25"), ("百二十三", "123"), ("千二百", "1200"),
    ("二〇二五年三月", "2025年3月"),  # no unit: read digit by digit
    ("三百万円", "3000000円"), ("300万円", "3000000円"), ("1,500万", "15000000"), ("一億二千万", "120000000"),
    ("2025年", "2025年"),  # ASCII digits alone are left as they are
    ("一緒に十分", "1緒に10分"),  # the rule is lexical (documented): both sides are rewritten alike
])
def test_numeral_normalization(raw, scored):
    assert normalize_text(raw, numerals=True) == scored
    assert normalize_text(raw) == normalize_text(raw, numerals=False)


def test_numerals_make_kanji_and_digits_score_equal_only_when_enabled():
    assert char_edits("売上は三百万円", "売上は300万円", numerals=True).edits == 0
    assert char_edits("売上は三百万円", "売上は300万円").edits == 3  # 三百 → 300: two substitutions, one insertion


def test_char_edits_kanji_kana_mismatch():
    # 上期 vs 紙木: two substitutions; り and げ of 売り上げ: two insertions. 5 reference characters.
    counts = char_edits("上期の売上", "紙木の売り上げ")
    assert counts == EditCounts(substitutions=2, deletions=0, insertions=2, reference_length=5)
    assert counts.rate == pytest.approx(4 / 5)
    # かみき for 上期: two substitutions and one insertion; kana are not folded to kanji.
    assert char_edits("上期の売上", "かみきの売上").edits == 3


def test_char_edits_empty_texts():
    assert char_edits("報告します", "") == EditCounts(deletions=5, reference_length=5)
    assert char_edits("。", "はい") == EditCounts(insertions=2, reference_length=0)
    assert char_edits("。", "はい").rate == math.inf
    assert char_edits("", "").rate == 0.0


def test_cer_is_pooled_over_clips_not_averaged():
    references, hypotheses = ["上期の売上について報告します", "はい"], ["上期の売上について報告します", "いいえ"]
    # はい → いいえ: は→い and an inserted え. Clip CERs are 0 and 1 (mean 0.5); pooled: 2 edits / 16 chars.
    assert pooled_cer(references, hypotheses) == pytest.approx(2 / 16)
    assert pooled_char_edits(references, hypotheses) == EditCounts(substitutions=1, insertions=1, reference_length=16)


def test_pooled_cer_counts_insertions_on_clips_without_reference_text():
    assert pooled_cer(["上期", "…"], ["上期", "ご視聴"]) == pytest.approx(3 / 2)


def test_mismatched_lists_are_an_error():
    with pytest.raises(WhisperAdaptError, match="2 references but 1 hypotheses"):
        pooled_cer(["a", "b"], ["a"])


def test_cer_matches_an_independent_implementation():
    """The same pooled CER as torchmetrics' CharErrorRate (its own edit distance) on normalized text.

    (Hugging Face `evaluate`'s cer cannot be used here: its metric script is fetched from the Hub at
    load time, and tests run offline. torchmetrics computes the same quantity, Σ edits / Σ reference chars.)
    """
    from torchmetrics.text import CharErrorRate

    references = ["まず上期の売上について報告します。", "下期の計画は、来週決めます！", "ミライ計画のＡＩ担当は田中です",
                  "はい", "本日の会議を始めます"]
    hypotheses = ["まず紙木の売り上げについて報告します", "しもきの計画は来週決めます。", "未来計画のAI担当は田中です",
                  "", "本日の会議を始めますご視聴ありがとうございました"]
    expected = CharErrorRate()([normalize_text(h) for h in hypotheses], [normalize_text(r) for r in references])
    assert pooled_cer(references, hypotheses) == pytest.approx(float(expected), abs=1e-6)


def test_wer_counts_morpheme_edits():
    assert tokenize("上期の売上について報告します") == ["上期", "の", "売上", "に", "つい", "て", "報告", "し", "ます"]
    assert tokenize("紙木の売り上げについて報告します")[:4] == ["紙", "木", "の", "売り上げ"]
    # 上期 → 紙 木 (one substitution, one insertion), 売上 → 売り上げ (one substitution): 3 of 9 tokens.
    assert token_edits("上期の売上について報告します", "紙木の売り上げについて報告します") == EditCounts(2, 0, 1, 9)
    assert pooled_wer(["上期の売上について報告します", "はい"], ["上期の売上について報告します", ""]) == pytest.approx(1 / 10)


def test_char_diff_aligns_normalized_text():
    assert char_diff("上期の売上、について", "紙木の売り上げについて") == [
        ("substitute", "上期", "紙木"), ("equal", "の売", "の売"), ("insert", "", "り"), ("equal", "上", "上"),
        ("insert", "", "げ"), ("equal", "について", "について")]
    assert char_diff("はい", "") == [("delete", "はい", "")]
    assert char_diff("", "えー") == [("insert", "", "えー")]


def test_term_recall_counts_each_occurrence():
    references = ["上期と下期の話です", "上期の売上と上期の利益", "今日は晴れ"]
    hypotheses = ["紙木と下期の話です", "上期の売上と上期の利益と上期", "今日は上期"]
    scores = term_scores(references, hypotheses, GLOSSARY)
    # 上期 said 1 + 2 + 0 = 3; recognized min(0,1) + min(3,2) + min(1,0) = 2; written 0 + 3 + 1 = 4.
    assert scores.per_term["上期"] == TermScore(said=3, written=4, recognized=2)
    assert scores.per_term["上期"].recall == pytest.approx(2 / 3)
    assert scores.per_term["上期"].precision == pytest.approx(2 / 4)
    assert scores.per_term["上期"].false_alarms == 2  # one extra in clip 2, one where nobody said it (clip 3)
    assert scores.per_term["下期"] == TermScore(1, 1, 1)
    assert scores.per_term["AI"] == TermScore(0, 0, 0) and scores.per_term["AI"].recall is None
    assert scores.total == TermScore(said=4, written=5, recognized=3)
    assert scores.recall == pytest.approx(3 / 4) and scores.precision == pytest.approx(3 / 5)


def test_term_recall_kana_is_not_the_term_and_width_is_folded():
    scores = term_scores(["上期のＡＩ", "ミライ計画"], ["かみきのAI", "ミライ、計画"], GLOSSARY)
    assert scores.per_term["上期"].recognized == 0  # かみき is what adaptation must fix: not counted
    assert scores.per_term["AI"].recognized == 1  # ＡＩ and AI are the same once NFKC-normalized
    assert scores.per_term["ミライ計画"].recognized == 1  # punctuation Whisper put inside a term is ignored


def test_term_recall_on_empty_hypotheses():
    scores = term_scores(["上期と下期", "上期"], ["", ""], GLOSSARY)
    assert scores.total == TermScore(said=3, written=0, recognized=0)
    assert scores.recall == 0.0 and scores.precision is None


def test_terms_equal_after_normalization_are_rejected():
    with pytest.raises(WhisperAdaptError, match="the same when scored"):
        term_scores(["x"], ["x"], parse_glossary("AI\nＡＩ\n"))


def test_hallucination_figures():
    figures = hallucination(["ご視聴ありがとうございました", "", "上が上が上が上が上が"], [60.0, 30.0, 30.0])
    assert figures.minutes == pytest.approx(2.0)
    assert figures.chars == 14 + 10
    assert figures.chars_per_minute == pytest.approx(12.0)
    assert figures.loops == 1


def test_paired_bootstrap_of_identical_systems_is_exactly_zero():
    references = ["上期の売上", "下期の計画", "はい"] * 4
    assert paired_bootstrap(references, references, references, n=200) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_finds_a_consistent_difference_and_is_reproducible():
    references = [f"今日は{i}番目の会議です" for i in range(30)]
    better = list(references)
    worse = [r[:-1] for r in references]  # every clip loses its last character
    delta, low, high = paired_bootstrap(references, better, worse, n=500, seed=1)
    assert delta == pytest.approx(pooled_cer(references, worse) - pooled_cer(references, better))
    assert 0 < low <= delta <= high
    assert paired_bootstrap(references, better, worse, n=500, seed=1) == (delta, low, high)
    # B better than A: the sign flips.
    assert paired_bootstrap(references, worse, better, n=500, seed=1)[2] < 0


def test_paired_bootstrap_interval_contains_zero_for_mixed_changes():
    references = ["上期の売上", "下期の計画", "本日の会議", "来週の予定"] * 5
    a = ["紙木の売上", "下期の計画", "本日の会議", "来週の予定"] * 5
    b = ["上期の売上", "下期の計画", "本日の怪奇", "来週の予定"] * 5  # fixes one clip, breaks another
    delta, low, high = paired_bootstrap(references, a, b, n=1000)
    assert delta == 0.0 and low < 0 < high


def test_paired_bootstrap_needs_references():
    with pytest.raises(WhisperAdaptError, match="at least one clip"):
        paired_bootstrap([], [], [])
    with pytest.raises(WhisperAdaptError, match="references but"):
        paired_bootstrap(["a"], ["a"], [])
