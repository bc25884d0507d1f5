"""The glossary: an organization's terms, their readings and the misrecognitions seen for them.

File format (UTF-8 text, edited by hand; a byte-order mark is accepted):

    # Terms of the fictional company. '#' starts a comment.
    上期 (かみき) ← 紙木, 神木
    下期（しもき）<- 下木
    田中部長
    ミライ計画 ← 未来計画、みらい計画

- One term per line: the term, then optionally its reading in parentheses (ASCII `( )` or
  full-width `（ ）`), then optionally `←` (or `<-`) and the misrecognitions seen for it, separated
  by `,` or `、`.
- `#` at the start of a line or after a space starts a comment, so a term such as `C#` keeps its `#`.
  Blank lines are ignored; whitespace around each part is trimmed.
- A term is defined on one line only: a second line for the same term is an error (rather than a
  merge), so the file stays the one place to read everything about a term and two lines never give
  it conflicting readings.
- A misrecognition belongs to one term and is never itself a term; otherwise replacing it would be
  ambiguous.

Matching (for counting terms and replacing misrecognitions) is exact, case- and width-sensitive,
leftmost first and, at one position, longest first: with terms 上期 and 上期末, "上期末" counts as
上期末 only. A term or misrecognition that starts or ends with an ASCII letter or digit only matches
where it is not part of a longer ASCII word, so the term "AI" is not found inside "MAIL".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from whisper_adapt.errors import GlossaryError

# Whisper keeps at most 223 prompt tokens. Measured with the base model's tokenizer, a typical business
# glossary costs about 1.1 tokens per character, so 100 characters is roughly half of that window: the
# text decoded so far still fits next to it, and a short prompt is less likely to be echoed on silence.
PROMPT_MAX_CHARS = 100

_ARROW = re.compile(r"←|<-")
_LIST_SEPARATOR = re.compile(r"[,、，]")
_COMMENT = re.compile(r"(?:^|\s)#.*")
_OPEN, _CLOSE = "(（", ")）"
_HEAD = re.compile(r"(?P<text>[^()（）]*?)\s*(?:[(（](?P<reading>[^()（）]*)[)）])?")


@dataclass(frozen=True)
class Term:
    text: str
    reading: str | None = None
    misrecognitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Glossary:
    terms: tuple[Term, ...] = ()


def load_glossary(path: str | Path) -> Glossary:
    """Read and parse a glossary file; every problem is a GlossaryError naming the file (and line)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise GlossaryError("file not found", path) from e
    except OSError as e:
        raise GlossaryError(f"cannot read the file: {e.strerror}", path) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise GlossaryError(f"line {line}: not UTF-8 text (save the file as UTF-8)", path) from e
    glossary = parse_glossary(text.removeprefix("\ufeff"), source=str(path))
    if not glossary.terms:  # e.g. the wrong file, or one saved before anything was typed into it
        raise GlossaryError("holds no terms (write one term per line)", path)
    return glossary


def parse_glossary(text: str, source: str = "<string>") -> Glossary:
    """Parse glossary text; `source` names it in error messages."""
    terms: list[Term] = []
    term_lines: dict[str, int] = {}
    owners: dict[str, tuple[str, int]] = {}  # misrecognition -> (its term, line)
    # split("\n") rather than splitlines(): line numbers must match what an editor shows.
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            term = _parse_line(line)
            if term is None:
                continue
            _check_conflicts(term, term_lines, owners)
        except _LineProblem as e:
            raise GlossaryError(f"line {number}: {e}", source) from None
        term_lines[term.text] = number
        owners.update({wrong: (term.text, number) for wrong in term.misrecognitions})
        terms.append(term)
    return Glossary(tuple(terms))


class _LineProblem(ValueError):
    """A malformed line; parse_glossary turns it into a GlossaryError with the file and line number."""


def _parse_line(line: str) -> Term | None:
    content = _COMMENT.sub("", line).strip()
    if not content:
        return None
    parts = _ARROW.split(content)
    if len(parts) > 2:
        raise _LineProblem("more than one ← on the line")
    text, reading = _parse_head(parts[0].strip())
    wrongs = _parse_misrecognitions(parts[1]) if len(parts) == 2 else ()
    return Term(text, reading, wrongs)


def _parse_head(head: str) -> tuple[str, str | None]:
    """Split `TERM (READING)` into the term and its reading (None when there is none)."""
    match = _HEAD.fullmatch(head)
    if match is None:
        if _unbalanced(head):
            raise _LineProblem("unbalanced parentheses")
        raise _LineProblem("expected TERM or TERM (READING)")
    text, reading = match["text"].strip(), match["reading"]
    if not text:
        raise _LineProblem("empty term")
    if reading is None:
        return text, None
    if not reading.strip():
        raise _LineProblem("empty reading in parentheses")
    return text, reading.strip()


def _unbalanced(head: str) -> bool:
    depth = 0
    for char in head:
        depth += (char in _OPEN) - (char in _CLOSE)
        if depth < 0:
            return True
    return depth != 0


def _parse_misrecognitions(tail: str) -> tuple[str, ...]:
    wrongs = [item.strip() for item in _LIST_SEPARATOR.split(tail)]
    if not any(wrongs):
        raise _LineProblem("no misrecognitions after ←")
    if not all(wrongs):
        raise _LineProblem("empty item in the list of misrecognitions")
    return tuple(dict.fromkeys(wrongs))  # the same one twice on a line is harmless: keep one


def _check_conflicts(term: Term, term_lines: dict[str, int], owners: dict[str, tuple[str, int]]) -> None:
    """Reject a term that clashes with itself or with an earlier line."""
    if term.text in term_lines:
        raise _LineProblem(f"term '{term.text}' is already defined on line {term_lines[term.text]}")
    if term.text in owners:
        owner, line = owners[term.text]
        raise _LineProblem(f"term '{term.text}' is listed as a misrecognition of '{owner}' on line {line}")
    for wrong in term.misrecognitions:
        if wrong == term.text:
            raise _LineProblem(f"'{wrong}' is listed as a misrecognition of itself")
        if wrong in term_lines:
            raise _LineProblem(f"misrecognition '{wrong}' is a term (line {term_lines[wrong]})")
        if wrong in owners:
            owner, line = owners[wrong]
            raise _LineProblem(f"misrecognition '{wrong}' is already listed for '{owner}' on line {line}")


def count_terms(text: str, glossary: Glossary) -> dict[str, int]:
    """Occurrences of each term in `text`, non-overlapping, leftmost then longest (see module doc)."""
    counts = {term.text: 0 for term in glossary.terms}
    pattern = _alternation(tuple(counts))
    if pattern is not None:
        for match in pattern.finditer(text):
            counts[match[0]] += 1
    return counts


def apply_replacements(text: str, glossary: Glossary) -> str:
    """Replace every misrecognition with its term in one left-to-right pass.

    Terms take part in the match, mapped to themselves, so a misrecognition inside a longer correct
    term is left alone; and the single pass never looks again at text it has inserted.
    """
    table = _replacement_table(glossary)
    pattern = _alternation(tuple(table))
    if pattern is None:
        return text
    return pattern.sub(lambda match: table[match[0]], text)


@lru_cache(maxsize=16)
def _replacement_table(glossary: Glossary) -> dict[str, str]:
    table = {term.text: term.text for term in glossary.terms}
    for term in glossary.terms:
        table.update({wrong: term.text for wrong in term.misrecognitions})
    return table


def find_matches(text: str, glossary: Glossary) -> list[tuple[int, int, str]]:
    """(start, end, term) for every term and known misrecognition in `text`, left to right, never
    overlapping: exactly the places `apply_replacements` reads."""
    table = _replacement_table(glossary)
    pattern = _alternation(tuple(table))
    return [] if pattern is None else [(m.start(), m.end(), table[m[0]]) for m in pattern.finditer(text)]


@lru_cache(maxsize=32)
def _alternation(texts: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching any of `texts`, longest first, so that at each position the longest wins."""
    if not texts:
        return None
    ordered = sorted(texts, key=len, reverse=True)
    return re.compile("|".join(_literal(text) for text in ordered))


def _literal(text: str) -> str:
    # A term beginning or ending with an ASCII letter or digit must not match inside a longer word.
    before = r"(?<![A-Za-z0-9])" if _is_ascii_alnum(text[0]) else ""
    after = r"(?![A-Za-z0-9])" if _is_ascii_alnum(text[-1]) else ""
    return before + re.escape(text) + after


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def prompt_text(glossary: Glossary, max_chars: int = PROMPT_MAX_CHARS) -> str:
    """The terms joined with 、, for Whisper's initial prompt or faster-whisper's `hotwords`.

    Whole terms in file order, stopping before the first that would pass `max_chars`: the terms the
    file lists first win, and no term is cut in half. Whisper would otherwise truncate silently.
    """
    chosen: list[str] = []
    length = 0
    for term in glossary.terms:
        added = len(term.text) + (1 if chosen else 0)
        if length + added > max_chars:
            break
        chosen.append(term.text)
        length += added
    return "、".join(chosen)
