"""The web-page loader: the article of a saved news page (tests/fixtures/documents/news.html)
without its navigation, footer or cookie banner, wrapped Chinese lines joined without a space."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.loaders import HTML, extract
from rag.loaders.clean import tidy
from rag.loaders.html import decode, parse, visible_text

NEWS = Path(__file__).resolve().parent / "fixtures" / "documents" / "news.html"

NEWS_TEXT = """长江口监测到中华鲟野生幼鱼群
据上海市水产研究所介绍，今年4月在长江口共监测到中华鲟野生幼鱼1,286尾，为近十年来的最高纪录。
研究人员表示，幼鱼数量的增加与长江十年禁渔政策的实施密切相关。The survey used acoustic telemetry tags on \
120 juveniles.
下表列出了近三年在长江口监测到的中华鲟野生幼鱼数量：
年份 | 监测数量（尾）
年份: 2022 | 监测数量（尾）: 563
年份: 2023 | 监测数量（尾）: 874
年份: 2024 | 监测数量（尾）: 1,286
中华鲟是国家一级重点保护野生动物，被誉为长江中的“活化石”。专家建议继续加强栖息地保护，减少航运和挖沙对幼鱼洄游通道的干扰。"""


def page(body: str, head: str = "<title>小页面</title>") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def test_news_page_keeps_the_article_and_its_table() -> None:
    got = extract(NEWS.read_bytes(), "news.html")
    assert got.media_type == HTML
    assert got.text == NEWS_TEXT
    assert got.title == "长江口监测到中华鲟野生幼鱼群"
    assert got.pages == ()


@pytest.mark.parametrize("boilerplate", ["首页", "国内新闻", "科技频道", "Cookie", "接受全部", "版权所有",
                                         "关于我们", "隐私政策"])
def test_news_page_drops_navigation_footer_and_cookie_banner(boilerplate: str) -> None:
    assert boilerplate not in extract(NEWS.read_bytes(), "news.html").text


def test_wrapped_lines_join_without_space_in_chinese_and_with_one_in_english() -> None:
    text = extract(NEWS.read_bytes(), "news.html").text
    assert "中华鲟野生幼鱼1,286尾" in text  # "幼鱼\n1,286尾" in the source
    assert "政策的实施密切相关" in text
    assert "used acoustic telemetry tags" in text


def test_a_wrap_next_to_an_inline_tag_joins_across_it() -> None:
    long = "<p>" + "这是一段足够长的正文，用来让页面像一篇真正的文章。" * 12 + "</p>"
    got = extract(page(f"<article><p>详情参见\n<b>年度报告</b>\n全文。Read the\n<i>annual</i> report.</p>"
                       f"{long}</article>"), "x.html")
    assert got.text.split("\n")[0] == "详情参见年度报告全文。Read the annual report."


def test_a_short_page_keeps_its_sentences_whole_and_drops_its_menu() -> None:
    got = extract(page("<nav><a href='/'>首页</a> <a href='/news'>新闻</a></nav>"
                       "<p>详情参见<a href='/r'>年度报告</a>全文。</p><footer>版权所有</footer>"),
                  "short.html")
    assert got.text == "详情参见年度报告全文。"


def test_a_tiny_page_falls_back_to_the_body_text() -> None:
    got = extract(page("<script>var x = '脚本';</script><div>只有一句话。</div>"), "tiny.html")
    assert got.text == "只有一句话。"
    assert got.title == "小页面"


def test_a_page_without_text_is_refused() -> None:
    with pytest.raises(DocumentError, match="no text"):
        extract(page("<div> </div><script>document.write('x')</script>"), "empty.html")


def test_gbk_page_with_meta_charset() -> None:
    data = ('<html><head><meta charset="gb2312"><title>标题</title></head>'
            "<body><p>简体中文网页。</p></body></html>")
    got = extract(data.encode("gbk"), "gbk.html")
    assert got.text == "简体中文网页。"


@pytest.mark.parametrize(("data", "expected"), [
    ("\ufeff<p>带签名</p>".encode(), "<p>带签名</p>"),
    ('<meta http-equiv="Content-Type" content="text/html; charset=GBK"><p>声明</p>'.encode("gbk"),
     '<meta http-equiv="Content-Type" content="text/html; charset=GBK"><p>声明</p>'),
    ("<p>未声明的国标编码</p>".encode("gb18030"), "<p>未声明的国标编码</p>"),
    ('<meta charset="utf-16"><p>谎报</p>'.encode(), '<meta charset="utf-16"><p>谎报</p>'),
])
def test_decode_by_bom_declaration_then_utf8_then_gb18030(data: bytes, expected: str) -> None:
    assert decode(data, "x.html") == expected


def test_visible_text_fallback_reads_blocks_and_rows_without_the_menu() -> None:
    root = parse("<html><body><header>站名</header><nav>首页</nav><p>一句<b>话</b>。</p>"
                 "<table><tr><th>名</th><td>值</td></tr></table><footer>版权</footer></body></html>",
                 "x.html")
    assert tidy(visible_text(root)) == "一句话。\n名 | 值"


def test_visible_text_fallback_pairs_rows_with_the_header_across_a_spanning_cell() -> None:
    root = parse("<html><body><p>季报。</p><table><tr><th colspan=2>季度</th><th>营收</th></tr>"
                 "<tr><td>第一季</td><td>一月至三月</td><td>3.2</td></tr></table></body></html>", "x.html")
    assert tidy(visible_text(root)) == "季报。\n季度 | 营收\n季度: 第一季 | 一月至三月 | 营收: 3.2"
