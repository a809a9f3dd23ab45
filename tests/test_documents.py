"""rag.ingest.documents: finding, naming and loading real files from tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag.errors import DocumentError, RagError
from rag.ingest.documents import Document, decode, find_files, load_documents


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_txt_and_md_loaded(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "甲文档。")
    _write(tmp_path / "b.md", "# 标题\n乙文档。")
    _write(tmp_path / "c.markdown", "丙")
    docs = {d.doc_id: d for d in load_documents([tmp_path])}
    assert set(docs) == {"a", "b", "c"}
    assert docs["a"].text == "甲文档。"
    assert docs["b"].text == "# 标题\n乙文档。"
    assert docs["a"].path == str(tmp_path / "a.txt")


def test_single_file_path(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.txt", "内容")
    (doc,) = load_documents([path])
    assert doc.doc_id == "one" and doc.text == "内容"
    (doc,) = load_documents([str(path)])  # str paths too
    assert doc.doc_id == "one"


def test_folder_walked_recursively_and_other_suffixes_ignored(tmp_path: Path) -> None:
    _write(tmp_path / "top.txt", "一")
    _write(tmp_path / "sub" / "deeper" / "inner.md", "二")
    _write(tmp_path / "sub" / "tool.exe", b"MZ\x90\x00")
    _write(tmp_path / "sub" / "notes.csv", "a,b")
    assert sorted(d.doc_id for d in load_documents([tmp_path])) == ["sub/deeper/inner", "top"]
    _, skipped = find_files([tmp_path])  # the passed-over files are listed, with the reason
    assert sorted(Path(s.path).name for s in skipped) == ["notes.csv", "tool.exe"]
    assert all("unsupported file type" in s.reason for s in skipped)


def test_dot_folders_and_dot_files_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "kept.txt", "留")
    _write(tmp_path / ".git" / "description.txt", "skip")
    _write(tmp_path / "sub" / ".cache" / "x.txt", "skip")
    _write(tmp_path / ".hidden.txt", "skip")
    assert [d.doc_id for d in load_documents([tmp_path])] == ["kept"]


def test_dot_in_the_given_folder_path_itself_is_fine(tmp_path: Path) -> None:
    root = tmp_path / ".data"
    _write(root / "a.txt", "甲")
    assert [d.doc_id for d in load_documents([root])] == ["a"]


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = _write(tmp_path / "table.csv", "a,b")
    with pytest.raises(DocumentError, match=r"table\.csv.*unsupported"):
        load_documents([path])
    noext = _write(tmp_path / "README", "text")
    with pytest.raises(DocumentError, match="unsupported"):
        load_documents([noext])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file"):
        load_documents([tmp_path / "nope"])
    assert issubclass(DocumentError, RagError)


def test_binary_file_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "bin.txt", b"abc\x00\x01\x02def" * 10)
    with pytest.raises(DocumentError, match=r"bin\.txt.*binary"):
        load_documents([tmp_path])
    with pytest.raises(DocumentError, match="binary"):
        load_documents([path])


def test_a_nul_past_the_first_page_is_still_binary(tmp_path: Path) -> None:
    _write(tmp_path / "late.txt", "正常的开头。".encode() * 2000 + b"\x00\x01\x02")
    with pytest.raises(DocumentError, match="binary"):
        load_documents([tmp_path])


def test_control_characters_refused_as_binary(tmp_path: Path) -> None:
    _write(tmp_path / "ctl.txt", b"\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e" * 2)
    with pytest.raises(DocumentError, match="binary"):
        load_documents([tmp_path])


def test_gb18030_decodes(tmp_path: Path) -> None:
    text = "国家级新区工作经验交流会在福州召开。"
    _write(tmp_path / "gb.txt", text.encode("gb18030"))
    (doc,) = load_documents([tmp_path])
    assert doc.text == text
    assert doc.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_utf8_bom_stripped(tmp_path: Path) -> None:
    _write(tmp_path / "bom.txt", "\ufeff你好".encode())
    (doc,) = load_documents([tmp_path])
    assert doc.text == "你好"


def test_invalid_bytes_refused(tmp_path: Path) -> None:
    _write(tmp_path / "bad.txt", b"ok \xff\xfe\xfd text")
    with pytest.raises(DocumentError, match=r"bad\.txt.*not valid"):
        load_documents([tmp_path])


def test_doc_id_is_the_relative_path_so_same_stems_never_collide(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "README.md", "一")
    _write(tmp_path / "b" / "README.md", "二")
    _write(tmp_path / "policy" / "2024" / "handbook.txt", "三")
    docs = {d.doc_id: d.text for d in load_documents([tmp_path])}
    assert docs == {"a/README": "一", "b/README": "二", "policy/2024/handbook": "三"}
    # the same folder ingested again, or from another working directory: the same ids
    assert {d.doc_id for d in load_documents([tmp_path / "policy"])} == {"2024/handbook"}


def test_files_differing_only_by_suffix_keep_it(tmp_path: Path) -> None:
    _write(tmp_path / "x" / "report.txt", "文本")
    _write(tmp_path / "x" / "report.md", "# 标题")
    _write(tmp_path / "x" / "other.txt", "其他")
    assert sorted(d.doc_id for d in load_documents([tmp_path])) == [
        "x/other", "x/report.md", "x/report.txt"]


def test_a_name_taken_across_two_folders_is_skipped_not_fatal(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "README.md", "一")
    _write(tmp_path / "b" / "README.md", "二")
    files, skipped = find_files([tmp_path / "a", tmp_path / "b"])
    assert [f.doc_id for f in files] == ["README"]
    (row,) = skipped
    assert row.path == str(tmp_path / "b" / "README.md") and "taken by" in row.reason


def test_same_file_twice_is_not_a_duplicate(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.txt", "一")
    assert [d.doc_id for d in load_documents([path, tmp_path])] == ["x"]


def test_crlf_and_cr_normalized(tmp_path: Path) -> None:
    _write(tmp_path / "win.txt", "第一行\r\n第二行\r第三行\n".encode())
    (doc,) = load_documents([tmp_path])
    assert doc.text == "第一行\n第二行\n第三行\n"
    assert decode(b"a\r\nb", "x") == "a\nb"


def test_doc_id_and_sha256_stable(tmp_path: Path) -> None:
    _write(tmp_path / "000_6326ffad47e9d9fc.txt", "同样的内容")
    _write(tmp_path / "other" / "copy.txt", "同样的内容")
    docs = {d.doc_id: d for d in load_documents([tmp_path])}
    assert set(docs) == {"000_6326ffad47e9d9fc", "other/copy"}
    expected = hashlib.sha256("同样的内容".encode()).hexdigest()
    assert docs["other/copy"].sha256 == docs["000_6326ffad47e9d9fc"].sha256 == expected
    again = {d.doc_id: d for d in load_documents([tmp_path])}
    assert again["other/copy"].sha256 == expected
    assert Document.from_text("copy", "同样的内容").sha256 == expected


def test_sha_is_of_the_decoded_text_source_sha_of_the_bytes(tmp_path: Path) -> None:
    # the same text as UTF-8 with CRLF and as GB18030 with LF: same document content, same sha;
    # the bytes differ, and source_sha256 (what ingest compares before parsing) says so
    _write(tmp_path / "u" / "a.txt", "文本\r\n".encode())
    _write(tmp_path / "g" / "b.txt", "文本\n".encode("gb18030"))
    docs = {d.doc_id: d for d in load_documents([tmp_path])}
    a, b = docs["u/a"], docs["g/b"]
    assert a.text == b.text == "文本\n"
    assert a.sha256 == b.sha256
    assert a.source_sha256 == hashlib.sha256("文本\r\n".encode()).hexdigest() != b.source_sha256
