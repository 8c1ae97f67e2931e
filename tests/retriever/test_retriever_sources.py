"""File discovery, kind/language inference and reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest, NotFound
from services.retriever.sources import (
    infer_kind_language,
    iter_source_files,
    read_source_document,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docs/a.md", ("doc", "markdown")),
        ("docs/A.MARKDOWN", ("doc", "markdown")),
        ("docs/a.rst", ("doc", "rst")),
        ("logs/a.log", ("text", "text")),
        ("notes.txt", ("text", "text")),
        ("src/a.c", ("code", "c")),
        ("src/a.h", ("code", "c")),
        ("src/a.cpp", ("code", "cpp")),
        ("src/a.hpp", ("code", "cpp")),
        ("tools/a.py", ("code", "python")),
        ("src/a.adb", ("code", "ada")),
        ("src/a.ads", ("code", "ada")),
        ("src/A.java", ("code", "java")),
        ("src/a.rs", ("code", "rust")),
        ("src/a.go", ("code", "go")),
        ("web/a.ts", ("code", "typescript")),
        ("ci/run.sh", ("code", "shell")),
        ("cfg/a.yml", ("code", "yaml")),
        ("cfg/a.toml", ("code", "toml")),
        ("cfg/a.json", ("code", "json")),
        ("cfg/a.ini", ("code", "ini")),
        ("Makefile", ("text", "text")),
    ],
)
def test_infer_kind_language(name: str, expected: tuple[str, str]) -> None:
    assert infer_kind_language(name) == expected


def _tree(root: Path) -> None:
    files = {
        "README.md": "# Readme\n",
        "docs/b.md": "# B\n",
        "docs/a.rst": "A\n=\n",
        "docs/drafts/old.md": "# Old\n",
        "src/pmc.c": "int x;\n",
        "src/notes.unknown": "plain\n",
        ".hidden/secret.md": "# no\n",
        "src/.env.md": "# no\n",
        ".git/config.md": "# no\n",
        "src/__pycache__/x.py": "x = 1\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "src/blob.c").write_bytes(b"\x7fELF\x00\x01binary")


def test_iter_source_files_is_sorted_and_skips_hidden_cache_and_binary(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = [rel for rel, _ in iter_source_files(tmp_path)]
    assert found == ["README.md", "docs/a.rst", "docs/b.md", "docs/drafts/old.md", "src/pmc.c"]
    for rel, absolute in iter_source_files(tmp_path):
        assert absolute == (tmp_path / rel).resolve()


def test_iter_source_files_globs(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert [rel for rel, _ in iter_source_files(tmp_path, ["*.md"], ["docs/drafts/**"])] == [
        "README.md",
        "docs/b.md",
    ]
    # an include glob admits files of unknown extension
    assert [rel for rel, _ in iter_source_files(tmp_path, ["src/*"])] == [
        "src/notes.unknown",
        "src/pmc.c",
    ]
    assert [rel for rel, _ in iter_source_files(tmp_path, ["**/*.rst"])] == ["docs/a.rst"]


def test_iter_source_files_missing_root(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(iter_source_files(tmp_path / "nope"))


def test_read_source_document(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_bytes(b"\xef\xbb\xbf# Title\r\nline\r\n")
    doc = read_source_document(tmp_path, "docs/a.md", {"subsystem": "points"})
    assert doc.source == "docs/a.md"
    assert doc.content == "# Title\nline\n"
    assert (doc.kind, doc.language) == ("doc", "markdown")
    assert doc.metadata == {"subsystem": "points"}
    same = read_source_document(tmp_path, tmp_path / "docs/a.md")
    assert same.source == "docs/a.md"


def test_read_source_document_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InvalidRequest, match=r"latin1\.txt: is not valid UTF-8.*0xe9"):
        read_source_document(tmp_path, "latin1.txt")
    with pytest.raises(NotFound, match=r"missing\.md"):
        read_source_document(tmp_path, "missing.md")
    with pytest.raises(InvalidRequest, match="outside the ingest root"):
        read_source_document(tmp_path / "sub", tmp_path / "latin1.txt")
    (tmp_path / "bin.c").write_bytes(b"\x00\x01\x02")
    with pytest.raises(InvalidRequest, match="binary"):
        read_source_document(tmp_path, "bin.c")
