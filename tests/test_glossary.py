from pathlib import Path

import pytest

from whisper_adapt.errors import GlossaryError
from whisper_adapt.glossary import (
    Glossary,
    Term,
    apply_replacements,
    count_terms,
    load_glossary,
    parse_glossary,
    prompt_text,
)

EVERY_SYNTAX = """\
# The fictional company's terms.
上期 (かみき) ← 紙木, 神木
  下期（しもき）<- 下木   # full-width parentheses, ASCII arrow, trailing comment

田中部長
ミライ計画 ← 未来計画、みらい計画
C# ← シーシャープ,シーシャープ
経営会議(けいえいかいぎ)
"""


def test_parse_every_syntax_variant():
    glossary = parse_glossary(EVERY_SYNTAX)
    assert glossary == Glossary(
        (
            Term("上期", "かみき", ("紙木", "神木")),
            Term("下期", "しもき", ("下木",)),
            Term("田中部長", None, ()),
            Term("ミライ計画", None, ("未来計画", "みらい計画")),
            Term("C#", None, ("シーシャープ",)),  # '#' inside a word is not a comment; repeat kept once
            Term("経営会議", "けいえいかいぎ", ()),
        )
    )


def test_blank_and_comment_only_text_is_an_empty_glossary():
    assert parse_glossary("\n  # nothing yet\n\n") == Glossary(())


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("上期\n(かみき)\n", 2, "empty term"),
        ("← 紙木", 1, "empty term"),
        ("上期 (かみき", 1, "unbalanced parentheses"),
        ("上期 かみき)", 1, "unbalanced parentheses"),
        ("上期（かみき", 1, "unbalanced parentheses"),
        ("上期 ()", 1, "empty reading"),
        ("上期 (かみき) 後", 1, "expected TERM or TERM (READING)"),
        ("上期 ← 紙木 ← 神木", 1, "more than one ←"),
        ("上期 ←", 1, "no misrecognitions after ←"),
        ("上期 ← 紙木,,神木", 1, "empty item"),
        ("上期 ← 紙木\n下期 ← 紙木", 2, "misrecognition '紙木' is already listed for '上期' on line 1"),
        ("上期 ← 上期", 1, "'上期' is listed as a misrecognition of itself"),
        ("上期\n下期 ← 上期", 2, "misrecognition '上期' is a term (line 1)"),
        ("上期 ← 下期\n下期", 2, "term '下期' is listed as a misrecognition of '上期' on line 1"),
        ("上期\n\n上期 (かみき)", 3, "term '上期' is already defined on line 1"),
    ],
)
def test_malformed_line_names_source_line_and_problem(text, line, problem):
    with pytest.raises(GlossaryError) as caught:
        parse_glossary(text, source="terms.txt")
    assert caught.value.path == "terms.txt"
    assert f"terms.txt: line {line}: " in str(caught.value)
    assert problem in str(caught.value)


def test_load_glossary_reads_utf8_with_bom_and_crlf(tmp_path: Path):
    path = tmp_path / "glossary.txt"
    path.write_bytes("\ufeff上期 (かみき) ← 紙木\r\n田中部長\r\n".encode())
    assert load_glossary(path) == Glossary((Term("上期", "かみき", ("紙木",)), Term("田中部長")))


def test_load_glossary_error_names_the_file_and_line(tmp_path: Path):
    path = tmp_path / "glossary.txt"
    path.write_text("上期\n下期 (しもき\n", encoding="utf-8")
    with pytest.raises(GlossaryError, match=r"glossary\.txt: line 2: unbalanced parentheses"):
        load_glossary(path)


def test_non_utf8_file_names_the_line_of_the_bad_byte(tmp_path: Path):
    path = tmp_path / "sjis.txt"
    path.write_bytes("上期\n下期\n".encode() + "田中部長\n".encode("shift_jis"))
    with pytest.raises(GlossaryError) as caught:
        load_glossary(path)
    assert caught.value.path == str(path)
    assert "line 3: not UTF-8" in str(caught.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(GlossaryError, match="file not found") as caught:
        load_glossary(tmp_path / "absent.txt")
    assert caught.value.path == str(tmp_path / "absent.txt")


def test_replacement_prefers_the_longest_misrecognition():
    glossary = parse_glossary("上期 ← かみき\n北上 ← かみきた")
    # Shortest first would give 上期たと上期.
    assert apply_replacements("かみきたとかみき", glossary) == "北上と上期"


def test_replacement_never_rescans_inserted_text():
    glossary = parse_glossary("上期 ← かみき\n木野 ← 期の")
    # Applied one after the other, 上期 + の would become 上木野.
    assert apply_replacements("かみきの報告", glossary) == "上期の報告"


def test_misrecognition_inside_a_longer_correct_term_is_left_alone():
    glossary = parse_glossary("上期 ← 神木\n神木町")
    assert apply_replacements("神木町の神木", glossary) == "神木町の上期"


def test_ascii_terms_match_only_whole_ascii_words():
    glossary = parse_glossary("AI ← エーアイ\nMAIL ← メール")
    assert count_terms("MAILとAIとAI活用とAIR", glossary) == {"AI": 2, "MAIL": 1}
    assert apply_replacements("メールとエーアイ", glossary) == "MAILとAI"


def test_replacement_with_an_empty_glossary_returns_the_text():
    assert apply_replacements("紙木", Glossary()) == "紙木"


def test_count_terms_longest_match_first_without_overlap():
    glossary = parse_glossary("上期\n上期末\n期末")
    # 上期末 is one 上期末 (not 上期 + 期末); the other 上期 and 期末 stand alone.
    assert count_terms("上期末の上期と期末と上期", glossary) == {"上期": 2, "上期末": 1, "期末": 1}


def test_count_terms_leftmost_wins_when_terms_overlap():
    glossary = parse_glossary("部長会議\n田中部長")
    assert count_terms("田中部長会議、部長会議", glossary) == {"部長会議": 1, "田中部長": 1}


def test_count_terms_lists_absent_terms_as_zero_in_file_order():
    glossary = parse_glossary("下期\n上期")
    assert list(count_terms("", glossary).items()) == [("下期", 0), ("上期", 0)]


def test_prompt_text_keeps_whole_terms_in_file_order():
    glossary = parse_glossary("上期 (かみき)\n下期\n田中部長\nミライ計画 ← 未来計画")
    assert prompt_text(glossary) == "上期、下期、田中部長、ミライ計画"
    assert prompt_text(glossary, max_chars=10) == "上期、下期、田中部長"  # 2+1+2+1+4 = 10
    assert prompt_text(glossary, max_chars=9) == "上期、下期"


def test_prompt_text_default_bound():
    glossary = Glossary(tuple(Term(f"用語{n:03d}") for n in range(50)))  # 5 characters each
    prompt = prompt_text(glossary)
    # 16 terms take 16*5 + 15 separators = 95 characters; a 17th would make 101.
    assert len(prompt) == 95
    assert prompt.endswith("用語015")


@pytest.mark.parametrize("text", ["", "\n\n", "   \n", "\ufeff"])
def test_a_glossary_file_without_terms_is_refused(tmp_path, text):
    """An empty glossary was accepted silently (and eval's "+prompt" system then differed from unadapted)."""
    path = tmp_path / "glossary.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GlossaryError, match="holds no terms") as error:
        load_glossary(path)
    assert str(path) in str(error.value)
