"""Guards against Whisper's known failures on murmur and near-silence, as named pure functions.

They read only a segment's text, timings, words and confidence figures, so they run on any segment
source, including faster-whisper's batched pipeline, which skips Whisper's own guards. Each dropped
segment's reason starts with its rule's name and a colon ("low confidence: …"), which is what the
transcript counts drops by. `apply_guards` runs them in this order:

1. silence: no_speech_prob above its threshold while avg_logprob is not above its own (Whisper's rule);
2. low confidence: avg_logprob below a floor that real speech stays above, quiet or under murmur — what
   is left after temperature fallback when a window is garbage (issue #20: -2.89 on 53 s of mixed
   Japanese, Chinese and English that rule 1 let through because no_speech_prob was low);
3. loops: a unit of 1–20 characters repeated more than `max_repeats` times in a row is collapsed to one
   occurrence (上が上が上が上が… → 上が), which catches loops long before the compression ratio does;
4. no text: nothing but punctuation, symbols or spaces is left (e.g. "♪");
5. loop: compression ratio above 2.4 after the repair: a loop the collapse could not see (a long unit);
6. stock phrase: a segment consisting only of phrases Whisper invents on non-speech (ご視聴ありがとう
   ございました …), dropped only when something else also says it was not speech — see
   `_likely_non_speech` — so the same words spoken clearly in a meeting are kept;
7. too dense: more characters per second than anyone speaks;
8. foreign script (Japanese): `foreign_hanzi_min` or more hanzi that Japanese text does not use — forms
   outside JIS X 0208 and its Windows extensions (cp932), which is where Simplified-only forms such as
   这 们 说 么 fall, and `CHINESE_ONLY_HANZI` (Chinese pronouns and particles, 怎麼 嗎 們 …);
9. repeated: the same text in `repeated_segments_min` consecutive segments keeps only the first;
10. pauses: a segment is split where its words are more than `max_pause_s` apart, and each part spans
    its words only. faster-whisper's VAD concatenates the speech it keeps and maps times back per word,
    so a window's segment can start in one stretch of speech and end in another a minute later; split,
    no subtitle stays on screen through a long stretch VAD called silence;
11. foreign script (Japanese): a run of more than `latin_run_max_words` Latin-letter words in a row (an
    English sentence: translation drift) is cut out of the segment and kept among the dropped; a part
    left without letters is dropped whole. Product names, acronyms and URLs are shorter runs
    ("Microsoft Teams", "AWS", "https://…" count as 2, 1 and 1 words);
12. weak speech: when the caller knows where VAD heard speech (`speech_share`), a segment under which less
    than `min_speech_share` of the frames are speech is dropped unless the decoder was sure of it
    (avg_logprob at least `weak_speech_avg_logprob_min`). VAD lets through stretches of next-room murmur
    where it hears speech in a few frames; decoded alone, Whisper writes a sentence there, unsure of it
    (the adapted model 「仕方が良いので、気を付けます。」: speech in 20% of its frames, avg_logprob -1.11; base
    「あなたが一番良くなっています。」: 40%, -1.05). Spoken sentences measured 61% and more, and base decoded
    them at -0.62 or above.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from whisper_adapt.errors import WhisperAdaptError
from whisper_adapt.transcript import Segment

# Phrases Whisper writes on silence and music, learned from the closing credits of subtitled videos. Plain
# 「よろしくお願いします」 and 「以上です」 are left out on purpose: meetings are full of them.
STOCK_PHRASES: tuple[str, ...] = (
    "ご視聴ありがとうございました",
    "ご視聴ありがとうございます",
    "最後までご視聴いただきありがとうございました",
    "最後までご視聴頂きありがとうございました",
    "ご清聴ありがとうございました",
    "チャンネル登録お願いします",
    "チャンネル登録をお願いします",
    "チャンネル登録よろしくお願いします",
    "チャンネル登録をよろしくお願いします",
    "チャンネル登録お願いいたします",
    "チャンネル登録をお願いいたします",
    "高評価よろしくお願いします",
    "次回もお楽しみに",
    "字幕",
    "Thanks for watching",
    "Thank you for watching",
    "Please subscribe",
    "Subtitles by",
    "Subtitles by the Amara.org community",
)


# Hanzi that Chinese writes in nearly every sentence and Japanese text practically never: pronouns and
# sentence particles, and 裡 (Japanese writes 裏). Kyūjitai that Japanese names keep (澤 邊 齋 廣 濱 國 …)
# are deliberately absent, and so are characters Japanese uses in other words (那 in 旦那, 是 in 是非).
CHINESE_ONLY_HANZI = "們這麼嗎呢您妳她你怎哪啊吧嗯很沒對裡"


@dataclass(frozen=True)
class GuardOptions:
    # Whisper's own defaults, applied the way openai/whisper applies them.
    compression_ratio_max: float = 2.4
    no_speech_prob_max: float = 0.6
    avg_logprob_min: float = -1.0
    # "はいはいはい" (3) is speech; a fourth repeat in a row is a decoder loop.
    max_repeats: int = 3
    repeat_unit_max_chars: int = 20
    # Two people may both say 「はい」; three identical segments in a row is a loop across windows.
    repeated_segments_min: int = 3
    stock_phrases: tuple[str, ...] = STOCK_PHRASES
    # Signs that a stock phrase was not spoken: clear speech usually has no_speech_prob near 0 and
    # avg_logprob well above -0.7 (a memorized phrase decodes with confidence); and saying
    # 「ご視聴ありがとうございました」 (14 characters) takes about 2 s, so a segment stretching it past
    # 7 s (2 chars/s) is mostly silence.
    stock_no_speech_prob_min: float = 0.3
    stock_avg_logprob_min: float = -0.7
    stock_min_chars_per_s: float = 2.0
    # Fast Japanese speech is about 10–12 characters a second; 25 is twice that. Segments shorter than
    # density_floor_s are measured as if that long, since Whisper often squeezes a short 「はい」 to 0.1 s.
    max_chars_per_s: float = 25.0
    density_floor_s: float = 1.0
    # Below Whisper's -1.0, temperature fallback has already been tried; real speech with base stays above
    # this floor even quiet or under murmur (bench/logprob_floor.py), issue #20's garbage window was -2.89.
    avg_logprob_floor: float = -1.8
    # Two, not one: a single rare character can be a name; 怎麼 ("how") is already two.
    foreign_hanzi_min: int = 2
    chinese_only_hanzi: str = CHINESE_ONLY_HANZI
    # "Google Cloud Platform" is 3 words, "Software as a Service" 4; an English sentence is longer.
    latin_run_max_words: int = 4
    # A pause longer than this inside a segment splits it (None: never). Within a sentence words follow
    # each other without gaps; issue #20 requires no subtitle over more than 2 s of silence.
    max_pause_s: float | None = 1.0
    # Rule 12 (measured figures in the module docstring). None turns it off.
    min_speech_share: float | None = 0.5
    weak_speech_avg_logprob_min: float = -0.7

    def __post_init__(self) -> None:
        if self.max_repeats < 1 or self.repeat_unit_max_chars < 1:
            raise WhisperAdaptError("guard options: max_repeats and repeat_unit_max_chars must be at least 1")
        if self.repeated_segments_min < 2:
            raise WhisperAdaptError("guard options: repeated_segments_min must be at least 2")
        if self.max_chars_per_s <= 0 or self.density_floor_s <= 0:
            raise WhisperAdaptError("guard options: max_chars_per_s and density_floor_s must be positive")
        if self.foreign_hanzi_min < 1 or self.latin_run_max_words < 1:
            raise WhisperAdaptError("guard options: foreign_hanzi_min and latin_run_max_words must be at least 1")
        if self.max_pause_s is not None and self.max_pause_s <= 0:
            raise WhisperAdaptError("guard options: max_pause_s must be positive (or None to never split)")
        if self.min_speech_share is not None and not 0 <= self.min_speech_share <= 1:
            raise WhisperAdaptError("guard options: min_speech_share must be between 0 and 1 (or None)")


def _normalize(text: str) -> str:
    """NFKC, case-folded, only letters, digits and combining marks: what comparisons between texts use."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(char for char in folded if unicodedata.category(char)[0] in "LNM")


def compression_ratio(text: str) -> float:
    """UTF-8 bytes over zlib-compressed bytes, as Whisper computes it; loops compress well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def _loop_pattern(options: GuardOptions) -> re.Pattern[str]:
    # Lazy unit: the shortest unit that repeats wins, so 上が上が… collapses to 上が, not 上が上が.
    return re.compile(rf"(.{{1,{options.repeat_unit_max_chars}}}?)\1{{{options.max_repeats},}}", re.DOTALL)


def _is_loop(match: re.Match[str]) -> bool:
    # A unit with no letter is a number or punctuation: 1000000 or …… are not decoder loops.
    return any(unicodedata.category(char)[0] == "L" for char in match[1])


def count_loops(text: str, options: GuardOptions) -> int:
    """How many runs of a unit repeated more than `max_repeats` times in a row the text holds."""
    return sum(1 for match in _loop_pattern(options).finditer(text) if _is_loop(match))


def collapse_repeats(text: str, options: GuardOptions) -> str:
    """Each loop run collapsed to a single occurrence of its unit; other text is left as it is."""
    return _loop_pattern(options).sub(lambda match: match[1] if _is_loop(match) else match[0], text)


def is_stock_phrase(text: str, options: GuardOptions) -> bool:
    """Whether the text, normalized, is one or more stock phrases and nothing else."""
    pattern = _stock_pattern(options.stock_phrases)
    return pattern is not None and pattern.fullmatch(_normalize(text)) is not None


@lru_cache(maxsize=8)
def _stock_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    normalized = sorted({_normalize(phrase) for phrase in phrases} - {""}, key=len, reverse=True)
    return re.compile(f"(?:{'|'.join(map(re.escape, normalized))})+") if normalized else None


def looks_like_silence(segment: Segment, options: GuardOptions) -> bool:
    """Whisper's no-speech rule: likely silence, and the decoder was not confident enough to overrule it."""
    return segment.no_speech_prob > options.no_speech_prob_max and not (
        segment.avg_logprob > options.avg_logprob_min
    )


def _chars_per_s(text: str, segment: Segment, floor_s: float) -> float:
    return len(_normalize(text)) / max(segment.end_s - segment.start_s, floor_s)


def _likely_non_speech(segment: Segment, options: GuardOptions) -> bool:
    """Evidence, besides the words, that a stock phrase was invented rather than spoken."""
    return (
        segment.no_speech_prob > options.stock_no_speech_prob_min
        or segment.avg_logprob < options.stock_avg_logprob_min
        or _chars_per_s(segment.text, segment, floor_s=1e-3) < options.stock_min_chars_per_s
    )


def foreign_hanzi(text: str, options: GuardOptions) -> str:
    """The hanzi in `text` that Japanese text does not use (guard 8), in order."""
    return "".join(char for char in text if _is_hanzi(char) and (char in options.chinese_only_hanzi or not _in_cp932(char)))


def _is_hanzi(char: str) -> bool:
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def _in_cp932(char: str) -> bool:
    try:
        char.encode("cp932")
    except UnicodeEncodeError:
        return False
    return True


_LATIN_WORD = r"(?:https?://[!-~]+|[A-Za-zＡ-Ｚａ-ｚ][A-Za-zＡ-Ｚａ-ｚ0-9'’.@_-]*)"
_LATIN_RUN = re.compile(rf"{_LATIN_WORD}(?:[\s,.!?;:'\"()&/’-]+{_LATIN_WORD})*")


def latin_runs(text: str, options: GuardOptions) -> list[re.Match[str]]:
    """Runs of more than `latin_run_max_words` Latin-letter words in a row (guard 11)."""
    return [m for m in _LATIN_RUN.finditer(text) if len(re.findall(_LATIN_WORD, m[0])) > options.latin_run_max_words]


def split_at_pauses(segment: Segment, max_pause_s: float) -> list[Segment]:
    """The segment cut where its words are more than `max_pause_s` apart, each part spanning its own words
    (guard 10); a segment without word timings is returned as it is."""
    if not segment.words:
        return [segment]
    parts, current = [], [segment.words[0]]
    for word in segment.words[1:]:
        if word.start_s - current[-1].end_s > max_pause_s:
            parts.append(current)
            current = []
        current.append(word)
    parts.append(current)
    if len(parts) == 1:
        return [replace(segment, start_s=parts[0][0].start_s, end_s=parts[0][-1].end_s)]
    return [replace(segment, start_s=words[0].start_s, end_s=words[-1].end_s,
                    text="".join(word.text for word in words).strip(), words=tuple(words)) for words in parts]


def _check_segment(segment: Segment, options: GuardOptions, language: str | None) -> tuple[Segment | None, str]:
    """One segment through guards 1–8: (the segment, possibly repaired, "") or (None, why it was dropped)."""
    if looks_like_silence(segment, options):
        return None, (
            f"silence: no_speech_prob {segment.no_speech_prob:.2f} > {options.no_speech_prob_max}"
            f" and avg_logprob {segment.avg_logprob:.2f} <= {options.avg_logprob_min}"
        )
    if segment.avg_logprob < options.avg_logprob_floor:
        return None, f"low confidence: avg_logprob {segment.avg_logprob:.2f} < {options.avg_logprob_floor}"
    text = collapse_repeats(segment.text, options)
    if text != segment.text:
        # The word timings described the loop, so they no longer match the text.
        segment = replace(segment, text=text, words=())
    if not _normalize(text):
        return None, "no text: only punctuation, symbols or spaces"
    ratio = compression_ratio(text)
    if ratio > options.compression_ratio_max:
        return None, f"loop: compression ratio {ratio:.2f} > {options.compression_ratio_max}"
    if is_stock_phrase(text, options) and _likely_non_speech(segment, options):
        return None, "stock phrase: on non-speech"
    density = _chars_per_s(text, segment, options.density_floor_s)
    if density > options.max_chars_per_s:
        return None, f"too dense: {density:.1f} chars/s > {options.max_chars_per_s}"
    hanzi = foreign_hanzi(text, options) if language == "ja" else ""
    if len(hanzi) >= options.foreign_hanzi_min:
        return None, f"foreign script: {len(hanzi)} hanzi Japanese does not use ({hanzi[:12]})"
    return segment, ""


def apply_guards(
    segments: Sequence[Segment], options: GuardOptions = GuardOptions(), language: str | None = None,
    speech_share: Callable[[float, float], float] | None = None,
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Kept segments (text possibly repaired, split at pauses) and the dropped ones with the reason, in time
    order. `language` is the transcript's (the script rules apply to "ja"); `speech_share(start_s, end_s)`,
    the share of that stretch VAD calls speech, turns on rule 12."""
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    for segment in segments:
        checked, reason = _check_segment(segment, options, language)
        if checked is None:
            dropped.append((segment, reason))
        else:
            kept.append(checked)
    kept, repeats = _drop_repeated_segments(kept, options)
    dropped.extend(repeats)
    if options.max_pause_s is not None:
        kept = [part for segment in kept for part in split_at_pauses(segment, options.max_pause_s)]
    if language == "ja":
        kept, runs = _cut_latin_runs(kept, options)
        dropped.extend(runs)
    if speech_share is not None and options.min_speech_share is not None:
        kept, weak = _drop_weak_speech(kept, options, speech_share)
        dropped.extend(weak)
    dropped.sort(key=lambda item: item[0].start_s)
    return kept, dropped


def _cut_latin_runs(segments: list[Segment], options: GuardOptions) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    for segment in segments:
        runs = latin_runs(segment.text, options)
        for run in runs:
            words = len(re.findall(_LATIN_WORD, run[0]))
            dropped.append((replace(segment, text=run[0], words=()), f"foreign script: a Latin run of {words} words"))
        if not runs:
            kept.append(segment)
            continue
        pieces = [segment.text[a.end():b.start()] for a, b in zip(runs, runs[1:])]
        text = (segment.text[:runs[0].start()] + "".join(pieces) + segment.text[runs[-1].end():]).strip()
        if any(unicodedata.category(char)[0] == "L" for char in text):
            kept.append(replace(segment, text=text, words=()))  # the word timings no longer match the text
    return kept, dropped


def _drop_weak_speech(segments: list[Segment], options: GuardOptions, speech_share: Callable[[float, float], float]
                      ) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    for segment in segments:
        unsure = segment.avg_logprob < options.weak_speech_avg_logprob_min
        share = speech_share(segment.start_s, segment.end_s) if unsure else 1.0
        if share < options.min_speech_share:
            dropped.append((segment, f"weak speech: VAD heard speech in {share:.0%} of it < {options.min_speech_share:.0%}"
                                     f" and avg_logprob {segment.avg_logprob:.2f} < {options.weak_speech_avg_logprob_min}"))
        else:
            kept.append(segment)
    return kept, dropped


def _drop_repeated_segments(
    segments: list[Segment], options: GuardOptions
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    for _, group in itertools.groupby(segments, key=lambda segment: _normalize(segment.text)):
        run = list(group)
        if len(run) < options.repeated_segments_min:
            kept.extend(run)
            continue
        kept.append(run[0])
        reason = f"repeated: the same text {len(run)} times in a row"
        dropped.extend((segment, reason) for segment in run[1:])
    return kept, dropped
