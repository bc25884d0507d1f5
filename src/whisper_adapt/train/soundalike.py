"""Which general sentences sound like the glossary: the replay that teaches the model where *not* to write
a term.

Adapting on a ward's words (与薬 よやく, 禁食 きんしょく, 経管栄養 けいかんえいよう) made Whisper write
予約 as 与薬, 近所 as 禁除 and ケーキ as 経期: the new words take over everyday words that share their
sounds. Replaying general sentences that hold those sounds, with their everyday spelling, is the direct
counter-example. A sentence's score is the summed rarity (inverse document frequency over the pool) of
the kana trigrams it shares with the terms' readings.

Readings are katakana: a term's reading from the glossary (or the term itself when written in kana), and
each packaged general sentence's reading stored beside its transcript (made by the TTS front end when the
set was built). Terms written in kanji without a reading, and clips without a reading, take no part.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from whisper_adapt.glossary import Glossary

_HIRAGANA_TO_KATAKANA = 0x30A1 - 0x3041
_VOWEL_ROWS = {"ア": "アカサタナハマヤラワガザダバパァャヮ", "イ": "イキシチニヒミリギジヂビピィ",
               "ウ": "ウクスツヌフムユルグズヅブプゥュヴ", "エ": "エケセテネヘメレゲゼデベペェ",
               "オ": "オコソトノホモヨロヲゴゾドボポォョ"}
_VOWEL = {kana: vowel for vowel, row in _VOWEL_ROWS.items() for kana in row}


def katakana(text: str) -> str:
    return "".join(chr(ord(ch) + _HIRAGANA_TO_KATAKANA) if "ぁ" <= ch <= "ゖ" else ch for ch in text)


def _unvoiced(text: str) -> str:
    """ジョ → ショ, バ → ハ: Whisper confuses voicing as readily as anything (近所 きんじょ → 禁除)."""
    return unicodedata.normalize("NFC", "".join(ch for ch in unicodedata.normalize("NFD", text)
                                                if ch not in "\u3099\u309a"))


def canonical(reading: str) -> str:
    """One spelling per sound: voicing dropped and long vowels written out, so a glossary's じょう and the
    TTS front end's ジョー (and けい / ケー) compare equal. Anything but kana becomes a space."""
    out: list[str] = []
    for ch in _unvoiced(katakana(reading)):
        before = _VOWEL.get(out[-1]) if out else None
        if ch == "ー" and before:
            ch = before
        elif (ch, before) in (("ウ", "オ"), ("イ", "エ")):
            ch = before
        elif not is_kana(ch):
            ch = " "
        out.append(ch)
    return "".join(out)


def is_kana(text: str) -> bool:
    return bool(text) and all("ぁ" <= ch <= "ゖ" or "ァ" <= ch <= "ヺ" or ch == "ー" for ch in text)


def term_readings(glossary: Glossary) -> list[str]:
    """Katakana readings of the terms that have one (given, or the term written in kana)."""
    readings = []
    for term in glossary.terms:
        reading = term.reading or (term.text if is_kana(term.text) else None)
        if reading:
            readings.append(canonical("".join(ch for ch in reading if not ch.isspace())))
    return readings


def trigrams(reading: str) -> set[str]:
    return {word[i : i + 3] for word in reading.split() for i in range(len(word) - 2)}


def sound_alike_scores(readings: Mapping[str, str], glossary: Glossary) -> dict[str, float]:
    """clip_id → how much the clip's reading sounds like the glossary (0: nothing shared)."""
    wanted = set().union(*(trigrams(r) for r in term_readings(glossary)))
    if not wanted or not readings:
        return {clip_id: 0.0 for clip_id in readings}
    clip_trigrams = {clip_id: trigrams(canonical(reading)) & wanted for clip_id, reading in readings.items()}
    frequency = Counter(b for found in clip_trigrams.values() for b in found)
    rarity = {b: math.log(len(readings) / count) for b, count in frequency.items()}
    return {clip_id: sum(rarity[b] for b in found) for clip_id, found in clip_trigrams.items()}


def most_alike(clip_ids: Sequence[str], scores: Mapping[str, float], count: int) -> list[str]:
    """Up to `count` of `clip_ids` with the highest positive scores, best first (ties keep input order)."""
    ranked = sorted((i for i in clip_ids if scores.get(i, 0.0) > 0), key=lambda i: -scores[i])
    return ranked[:count]
