"""rag.text.normalize: one test per rule, the offset map on the real seeds, and a property test."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import opencc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.ingest.documents import load_documents
from rag.text.chunk import split_sentences
from rag.text.normalize import VARIANTS, Normalized, is_traditional, normalize, to_simplified, to_traditional

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
T2S = opencc.OpenCC("t2s")  # checked against OpenCC directly, not through rag.text.normalize


def _check_origin(text: str, n: Normalized) -> None:
    assert len(n.origin) == len(n.text)
    assert n.original_length == len(text)
    assert all(0 <= i < len(text) for i in n.origin)
    assert all(a < b for a, b in zip(n.origin, n.origin[1:], strict=False))


def _maps_to(original: str, normalized: str) -> bool:
    """``normalized`` is what the original character becomes: itself, its NFKC or Simplified
    form, a variant's replacement, or a space for any whitespace."""
    if normalized == original:
        return True
    if normalized == " " and (original.isspace() or unicodedata.normalize("NFKC", original).isspace()):
        return True
    nfkc = unicodedata.normalize("NFKC", original)
    simple = T2S.convert(nfkc)
    return normalized in {nfkc, simple, VARIANTS.get(original, original), VARIANTS.get(simple, simple)}


# ---- 1. pinyin annotations --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("區(qū)", "区"),
        ("發(fā)展", "发展"),
        ("西咸新區(qū)", "西咸新区"),
        ("綠(lǜ)色", "绿色"),  # ü with a tone mark
        ("女(nǚ)士", "女士"),
        ("略(lüè)", "略"),  # ü plus a toned vowel elsewhere in the syllable
        ("經(jīng)驗交流會", "经验交流会"),
    ],
)
def test_pinyin_annotation_is_stripped(text: str, expected: str) -> None:
    n = normalize(text)
    assert n.text == expected
    _check_origin(text, n)


def test_pinyin_stripped_keeps_offsets_of_the_characters() -> None:
    text = "發(fā)展"
    n = normalize(text)
    assert n.origin == [0, 5]  # 發 at 0, 展 after the 4-char annotation
    assert text[n.origin[1]] == "展"


@pytest.mark.parametrize(
    "text",
    [
        "省(市)",  # a CJK word in parentheses
        "年度(2023)",  # digits
        "中(abc)",  # letters without a tone mark
        "a(qū)",  # after a non-CJK character
        "2023(fā)",  # after a digit
        "区 (qū)",  # a space between: not glued to the character
        "(qū)",  # nothing before it
    ],
)
def test_real_parentheses_are_kept(text: str) -> None:
    n = normalize(text)
    assert n.text == text
    assert n.origin == list(range(len(text)))


def test_real_parentheses_untouched_exactly() -> None:
    assert normalize("有关省(市)发展").text == "有关省(市)发展"
    assert normalize("(2023)").text == "(2023)"
    assert normalize("中(abc)").text == "中(abc)"
    assert normalize("a(qū)").text == "a(qū)"


# ---- 2. NFKC, OpenCC t2s, variants ------------------------------------------------------------
def test_opencc_traditional_to_simplified() -> None:
    assert normalize("國家發展改革委").text == "国家发展改革委"
    assert normalize("經驗交流會").text == "经验交流会"
    assert normalize("已经是简体").text == "已经是简体"


def test_variant_map() -> None:
    assert normalize("陜西").text == "陕西"
    assert normalize("來陜考察").text == "来陕考察"
    for variant, simplified in VARIANTS.items():
        assert normalize(variant).text == simplified


def test_nfkc_full_width() -> None:
    n = normalize("ＡＢＣ１２３：")
    assert n.text == "ABC123:"
    assert n.origin == list(range(7))


# ---- 3. boilerplate ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # empty image link, inline
        ("讲话。 ![]() ![]() 夏晓中指出", "讲话。 夏晓中指出"),
        ("![]()正文", "正文"),
        # login wall, Traditional and Simplified
        ("正文\n您需要 登錄 才可以下載或查看,沒有賬號?注冊\n下文", "正文\n下文"),
        ("正文\n您需要 登录 才可以下载或查看,没有账号?注册\n下文", "正文\n下文"),
        # view counter, with the pinyin annotation of the original and with a number
        ("瀏覽次數(shù):次\n11月18日", "11月18日"),
        ("上文\n浏览次数：123次\n下文", "上文\n下文"),
        # forum sign-up bait
        ("西安人都注冊了,還不快來?\n6月8日上午", "6月8日上午"),
        ("上文\n西安人都注册了,还不快来?\n下文", "上文\n下文"),
        # lone symbol lines
        ("上文\n×\n下文", "上文\n下文"),
        ("上文\n|\n下文", "上文\n下文"),
        ("上文\n  ×  \n下文", "上文\n下文"),
    ],
    ids=["image-inline", "image-start", "login-trad", "login-simp", "views-seed", "views-number",
         "bait-trad", "bait-simp", "times-line", "pipe-line", "times-padded"],
)
def test_boilerplate_removed_and_neighbours_kept(text: str, expected: str) -> None:
    n = normalize(text)
    assert n.text == expected
    _check_origin(text, n)
    for ch, i in zip(n.text, n.origin, strict=True):
        assert _maps_to(text[i], ch)


def test_boilerplate_rules_leave_lookalikes() -> None:
    # a symbol or a counter inside a sentence is content, not boilerplate
    assert normalize("3×4=12").text == "3×4=12"
    assert normalize("a | b").text == "a | b"
    assert normalize("![图](x.png)").text == "![图](x.png)"
    assert normalize("他们都注册了公司").text == "他们都注册了公司"


# ---- 4. whitespace ----------------------------------------------------------------------------
def test_whitespace_collapse() -> None:
    text = "  a  \t b\u3000c\n\n\n d  \n"
    n = normalize(text)
    assert n.text == "a b c\nd"
    _check_origin(text, n)
    assert [text[i] for i in n.origin] == ["a", " ", "b", "\u3000", "c", "\n", "d"]


def test_lone_surrogates_become_replacement_characters() -> None:
    # undecodable argv bytes (surrogateescape) and "\\ud800" in JSON arrive as lone surrogates
    text = "a\udcff區(qū)\ud800"
    n = normalize(text)
    assert n.text == "a\ufffd区\ufffd"
    assert n.origin == [0, 1, 2, 7]
    assert is_traditional("\udcff國家") and to_traditional("\udcff国") == "\ufffd國"


def test_empty_and_blank() -> None:
    assert normalize("").text == ""
    assert normalize("").origin == []
    assert normalize(" \n\t\n ").text == ""


# ---- the offset map on the real seeds ---------------------------------------------------------
SEED_DOCS = load_documents([SEEDS])


@pytest.mark.parametrize("doc", SEED_DOCS, ids=lambda d: d.doc_id)
def test_seed_offsets_round_trip(doc) -> None:  # type: ignore[no-untyped-def]
    text = doc.text
    n = normalize(text)
    _check_origin(text, n)
    assert n.text, "a seed normalizes to something"
    for i, ch in enumerate(n.text):
        assert _maps_to(text[n.origin[i]], ch), (i, text[n.origin[i]], ch)
    # the boilerplate the seeds are known to carry is gone, their content is not
    assert "浏览次数" not in n.text and "![]()" not in n.text and "还不快来" not in n.text
    assert "(qū)" not in n.text and "区(" not in n.text


@pytest.mark.parametrize("doc", SEED_DOCS, ids=lambda d: d.doc_id)
def test_seed_sentence_spans_normalize_back(doc) -> None:  # type: ignore[no-untyped-def]
    text = doc.text
    n = normalize(text)
    spans = split_sentences(n.text)
    assert len(spans) > 10
    for a, b in spans:
        start, end = n.span(a, b)
        assert 0 <= start < end <= len(text)
        assert normalize(text[start:end]).text == n.text[a:b]


def test_span_edges() -> None:
    text = "西咸新區(qū)成立"
    n = normalize(text)
    assert n.span(0, len(n.text)) == (0, len(text))
    assert text[slice(*n.span(0, 4))] == "西咸新區"  # the trailing annotation is not quoted
    assert n.span(2, 2) == (2, 2)
    assert n.span(len(n.text), len(n.text)) == (len(text), len(text))


# ---- property test ----------------------------------------------------------------------------
_PIECES = st.sampled_from([
    "(qū)", "(fā)", "(lǜ)", "(nǚ)", "(abc)", "(市)", "(2023)", "(", ")", "(q", "ū)", "![]()",
    "\n×\n", "\n|\n", "瀏覽次數(shù):次\n", "您需要 登錄 才可以下載或查看\n", "西安人都注冊了,還不快來?\n",
    "。", "！", "？", "；", "…", "”", ". ", "3.14", "\n", "\n\n", " ", "\t", "\u3000", "\r", "\xa0",
    "ＡＢ１", "ﬁ",
])
_CJK = st.sampled_from(list("區發展國陜西咸新区发省市乾隆著干後后裏里爲为臺台灣湾會议議"))
_TEXT = st.lists(
    st.one_of(_CJK, _PIECES, st.characters(codec="ascii"), st.characters()), max_size=80
).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_origin_property(text: str) -> None:
    n = normalize(text)
    _check_origin(text, n)
    assert n.text == n.text.strip(" \n")
    assert "  " not in n.text and "\n\n" not in n.text


# ---- script helpers ---------------------------------------------------------------------------
def test_to_traditional_and_is_traditional() -> None:
    assert to_traditional("国家发展改革委") == "國家發展改革委"
    assert is_traditional("國家發展改革委在福州新區召開")
    assert not is_traditional("国家发展改革委在福州新区召开")
    assert not is_traditional("hello 123")
    assert not is_traditional("")
    assert to_simplified(to_traditional("经验交流会")) == "经验交流会"
