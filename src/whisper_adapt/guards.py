"""Guards against Whisper's known failures on murmur and near-silence, as named pure functions.

They read only a segment's text, timings and confidence figures, so they run on any segment source,
including faster-whisper's batched pipeline, which skips Whisper's own guards. `apply_guards` runs them
in this order:

1. silence: no_speech_prob above its threshold while avg_logprob is not above its own (Whisper's rule);
2. loops: a unit of 1–20 characters repeated more than `max_repeats` times in a row is collapsed to one
   occurrence (上が上が上が上が… → 上が), which catches loops long before the compression ratio does;
3. empty: nothing but punctuation, symbols or spaces is left (e.g. "♪");
4. compression ratio above 2.4 after the repair: a loop the collapse could not see (a long unit);
5. stock phrases: a segment consisting only of phrases Whisper invents on non-speech (ご視聴ありがとう
   ございました …), dropped only when something else also says it was not speech — see
   `_likely_non_speech` — so the same words spoken clearly in a meeting are kept;
6. density: more characters per second than anyone speaks;
7. across segments: the same text in `repeated_segments_min` consecutive segments keeps only the first.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections.abc import Sequence
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

    def __post_init__(self) -> None:
        if self.max_repeats < 1 or self.repeat_unit_max_chars < 1:
            raise WhisperAdaptError("guard options: max_repeats and repeat_unit_max_chars must be at least 1")
        if self.repeated_segments_min < 2:
            raise WhisperAdaptError("guard options: repeated_segments_min must be at least 2")
        if self.max_chars_per_s <= 0 or self.density_floor_s <= 0:
            raise WhisperAdaptError("guard options: max_chars_per_s and density_floor_s must be positive")


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


def _check_segment(segment: Segment, options: GuardOptions) -> tuple[Segment | None, str]:
    """One segment through guards 1–6: (the segment, possibly repaired, "") or (None, why it was dropped)."""
    if looks_like_silence(segment, options):
        return None, (
            f"silence: no_speech_prob {segment.no_speech_prob:.2f} > {options.no_speech_prob_max}"
            f" and avg_logprob {segment.avg_logprob:.2f} <= {options.avg_logprob_min}"
        )
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
        return None, "stock phrase on non-speech"
    density = _chars_per_s(text, segment, options.density_floor_s)
    if density > options.max_chars_per_s:
        return None, f"too dense: {density:.1f} chars/s > {options.max_chars_per_s}"
    return segment, ""


def apply_guards(
    segments: Sequence[Segment], options: GuardOptions = GuardOptions()
) -> tuple[list[Segment], list[tuple[Segment, str]]]:
    """Kept segments (text possibly repaired) and the dropped ones with the reason, in time order."""
    kept: list[Segment] = []
    dropped: list[tuple[Segment, str]] = []
    for segment in segments:
        checked, reason = _check_segment(segment, options)
        if checked is None:
            dropped.append((segment, reason))
        else:
            kept.append(checked)
    kept, repeats = _drop_repeated_segments(kept, options)
    dropped.extend(repeats)
    dropped.sort(key=lambda item: item[0].start_s)
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
        reason = f"repeats the previous segment ({len(run)} in a row)"
        dropped.extend((segment, reason) for segment in run[1:])
    return kept, dropped
