"""The table rows every loader writes (rag.loaders.tables): under a header row each value is
paired with its column's name, so that a row found alone still says what its numbers are."""

from __future__ import annotations

import pytest

from rag.loaders.tables import looks_like_header, table_lines


def test_rows_under_a_header_pair_each_value_with_its_column() -> None:
    assert table_lines([["年份", "监测数量（尾）"], ["2022", "563"], ["2023", "874"]]) == [
        "年份 | 监测数量（尾）",
        "年份: 2022 | 监测数量（尾）: 563",
        "年份: 2023 | 监测数量（尾）: 874",
    ]


def test_a_first_row_of_values_is_no_header() -> None:
    assert table_lines([["上海", "36", "2019-06-01"], ["成都", "12", "2021-11-18"]]) == [
        "上海 | 36 | 2019-06-01",
        "成都 | 12 | 2021-11-18",
    ]


def test_a_lone_row_is_no_header() -> None:
    assert table_lines([["名", "值"]]) == ["名 | 值"]


def test_empty_cells_are_left_out_and_empty_rows_dropped() -> None:
    rows = [["产区", "", "产量"], [" ", "", ""], ["南投", "", " 1,850 "], ["", "备注", ""]]
    assert table_lines(rows) == ["产区 | 产量", "产区: 南投 | 产量: 1,850", "备注"]


def test_a_value_without_a_column_name_stands_bare() -> None:
    # a merged header cell leaves "" in the columns it also covers; a row may be longer than its header
    rows = [["季度", "", "营收"], ["第一季", "一月至三月", "3.2", "未审计"]]
    assert table_lines(rows) == ["季度 | 营收", "季度: 第一季 | 一月至三月 | 营收: 3.2 | 未审计"]


def test_no_rows_no_lines() -> None:
    assert table_lines([]) == []
    assert table_lines([["", ""], [""]]) == []


@pytest.mark.parametrize(("row", "header"), [
    (["项目", "2022年", "2023年"], True),
    (["城市", "研发经费（亿元）", "同比增长"], True),
    (["Name", "Q1"], True),
    (["年份", ""], False),  # one name is no header
    (["年份", "2023"], False),
    (["营收", "12.5亿元"], False),
    (["华东", "41.2%"], False),
    (["日期", "2023年3月28日"], False),
    (["时间", "09:30"], False),
])
def test_a_header_is_two_or_more_names_and_no_numbers_or_dates(row: list[str], header: bool) -> None:
    assert looks_like_header(row) is header
