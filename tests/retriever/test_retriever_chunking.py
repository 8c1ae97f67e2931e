"""Chunk boundaries, titles, line ranges and ids."""

from __future__ import annotations

import itertools

import pytest

from raildebug.errors import InvalidRequest
from services.retriever.chunking import (
    CODE_MAX_CHARS,
    DOC_MAX_CHARS,
    chunk_document,
    split_lines,
)
from services.retriever.models import Chunk, SourceDocument


def assert_exact_lines(doc: SourceDocument, chunks: list[Chunk]) -> None:
    """Every chunk's text is exactly its 1-based inclusive line range of the source."""
    lines = split_lines(doc.content)
    for chunk in chunks:
        assert 1 <= chunk.line_start <= chunk.line_end <= len(lines)
        assert chunk.text == "\n".join(lines[chunk.line_start - 1 : chunk.line_end])
        assert chunk.text.strip()


MARKDOWN = """\
Intro before any heading.

# Errors

## E73-B

Point fails to lock.

## E74-A

Throw timeout.

# Configuration

```python
# not a heading inside a fence
x = 1
```

Setext title
------------

Body under a setext heading.
"""


def test_markdown_titles_are_heading_paths_with_exact_lines() -> None:
    doc = SourceDocument("docs/errors.md", MARKDOWN)
    chunks = chunk_document(doc)
    assert [(c.title, c.line_start, c.line_end) for c in chunks] == [
        ("", 1, 1),
        # "# Errors" has no body of its own, so it stays with its first subsection.
        ("Errors > E73-B", 3, 7),
        ("Errors > E74-A", 9, 11),
        ("Configuration", 13, 18),
        ("Configuration > Setext title", 20, 23),
    ]
    assert_exact_lines(doc, chunks)
    assert all(c.kind == "doc" and c.language == "markdown" for c in chunks)


def test_rst_titles_follow_adornment_levels() -> None:
    doc = SourceDocument(
        "docs/guide.rst",
        "=====\nGuide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun it.\n\nUsage\n-----\n\nUse it.\n",
    )
    chunks = chunk_document(doc)
    assert [(c.title, c.line_start, c.line_end) for c in chunks] == [
        ("Guide", 1, 5),
        ("Guide > Install", 7, 10),
        ("Guide > Usage", 12, 15),
    ]
    assert_exact_lines(doc, chunks)


def test_long_section_is_windowed_with_overlap_and_same_title() -> None:
    paragraphs = [
        "\n".join(f"Paragraph {p} line {i}: the lock detection contact bounces." for i in range(5))
        for p in range(12)
    ]
    doc = SourceDocument("docs/long.md", "# Long\n\n" + "\n\n".join(paragraphs) + "\n")
    chunks = chunk_document(doc)
    assert len(chunks) > 1
    assert {c.title for c in chunks} == {"Long"}
    assert all(len(c.text) <= DOC_MAX_CHARS for c in chunks)
    assert_exact_lines(doc, chunks)
    for previous, current in itertools.pairwise(chunks):
        # consecutive windows overlap by one or two lines and together cover everything
        assert previous.line_end - 2 <= current.line_start <= previous.line_end
    assert chunks[0].line_start == 1
    assert chunks[-1].line_end == len(split_lines(doc.content))


def test_same_input_gives_same_ids_and_changed_text_new_ids() -> None:
    doc = SourceDocument("docs/errors.md", MARKDOWN)
    first = chunk_document(doc)
    second = chunk_document(SourceDocument("docs/errors.md", MARKDOWN))
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)

    changed = chunk_document(
        SourceDocument("docs/errors.md", MARKDOWN.replace("Throw timeout.", "Throw too slow."))
    )
    old_ids = {c.title: c.id for c in first}
    new_ids = {c.title: c.id for c in changed}
    assert new_ids["Errors > E74-A"] != old_ids["Errors > E74-A"]
    assert new_ids["Errors > E73-B"] == old_ids["Errors > E73-B"]
    # the same text under another source is another chunk
    moved = chunk_document(SourceDocument("docs/other.md", MARKDOWN))
    assert {c.id for c in moved}.isdisjoint(c.id for c in first)


def _c_function(name: str, body_lines: int) -> str:
    body = "\n".join(f"    pm->counter_{i} = read_input({i});" for i in range(body_lines))
    return f"int {name}(struct pm *pm)\n{{\n{body}\n\n    return 0;\n}}\n"


def test_code_chunk_keeps_leading_comment_with_its_function() -> None:
    source = (
        '#include "pmc.h"\n\n'
        + _c_function("pm_read_inputs", 30)
        + "\n/* Lock supervision: raise E73-B when the lock is late.\n"
        + " * Uses pm_lock_timeout_ms from the configuration. */\n\n"
        + _c_function("pm_check_lock", 30)
    )
    doc = SourceDocument("src/pmc.c", source)
    chunks = chunk_document(doc)
    assert_exact_lines(doc, chunks)
    lock_chunk = next(c for c in chunks if "int pm_check_lock" in c.text)
    assert lock_chunk.text.startswith("/* Lock supervision")
    assert lock_chunk.title == "pm_check_lock"
    assert lock_chunk.kind == "code" and lock_chunk.language == "c"
    first = next(c for c in chunks if "int pm_read_inputs" in c.text)
    assert "Lock supervision" not in first.text
    assert all(len(c.text) <= CODE_MAX_CHARS for c in chunks)


def test_small_code_blocks_are_packed_and_titled_by_their_names() -> None:
    source = (
        "import os\n\n\n"
        "# Where the config lives.\n"
        "def config_path():\n    return os.environ['CFG']\n\n\n"
        "class Loader:\n    def load(self):\n        return 1\n"
    )
    chunks = chunk_document(SourceDocument("tools/cfg.py", source))
    assert len(chunks) == 1
    assert chunks[0].title == "config_path, Loader, load"
    assert (chunks[0].line_start, chunks[0].line_end) == (1, 11)


def test_long_function_is_windowed_and_keeps_its_name() -> None:
    doc = SourceDocument("src/big.c", _c_function("pm_big_state_machine", 80))
    chunks = chunk_document(doc)
    assert len(chunks) > 1
    assert {c.title for c in chunks} == {"pm_big_state_machine"}
    assert_exact_lines(doc, chunks)


def test_text_is_chunked_in_line_windows() -> None:
    log = "\n".join(
        f"2024-11-25T10:00:{i:02d} PMC P12 E73-B lock late by {i} ms" for i in range(60)
    )
    doc = SourceDocument("logs/pmc.log", log)
    chunks = chunk_document(doc)
    assert len(chunks) > 1
    assert all(c.kind == "text" and c.title == "" for c in chunks)
    assert_exact_lines(doc, chunks)
    assert chunks[-1].line_end == 60


def test_document_title_heads_every_chunk_without_a_heading_of_its_own() -> None:
    body = "\n\n".join(f"Paragraph {i}: the RBC hands over supervision. " * 8 for i in range(12))
    doc = SourceDocument("p0521", body, title="SUBSET-026-5 Procedures: RBC/RBC Handover")
    chunks = chunk_document(doc)
    assert len(chunks) > 1
    assert {c.title for c in chunks} == {"SUBSET-026-5 Procedures: RBC/RBC Handover"}
    assert_exact_lines(doc, chunks)  # the title is carried, never inserted into the text
    sections = chunk_document(SourceDocument("docs/a.md", "# Points\n\nE73-B\n", title="Manual"))
    assert [c.title for c in sections] == ["Points"]


@pytest.mark.parametrize("content", ["", "   \n\n\t\n"])
def test_empty_document_is_rejected(content: str) -> None:
    with pytest.raises(InvalidRequest, match="empty document"):
        chunk_document(SourceDocument("docs/empty.md", content))


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="unknown kind"):
        chunk_document(SourceDocument("docs/a.md", "text", kind="video"))


def test_explicit_kind_and_metadata_are_kept() -> None:
    chunks = chunk_document(
        SourceDocument("notes/a.dat", "hello\nworld\n", kind="doc", metadata={"version": "4.3"})
    )
    assert [(c.kind, c.language, c.metadata) for c in chunks] == [
        ("doc", "text", {"version": "4.3"})
    ]


def test_c_typedef_names_and_trailer_joins_last_window() -> None:
    fields = "\n".join(
        f"    uint32_t field_{i}; /* field number {i} of the point */" for i in range(40)
    )
    source = (
        "#ifndef PMC_H\n#define PMC_H\n\n"
        "/** Inputs sampled every cycle. */\n"
        "typedef struct {\n    bool lock;\n} pm_inputs_t;\n\n"
        f"typedef struct {{\n{fields}\n}} pm_point_t;\n\n"
        "#endif /* PMC_H */\n"
    )
    doc = SourceDocument("src/pmc.h", source)
    chunks = chunk_document(doc)
    assert_exact_lines(doc, chunks)
    assert chunks[0].title == "PMC_H, pm_inputs_t"
    assert {c.title for c in chunks[1:]} == {"pm_point_t"}
    # the "#endif" trailer is packed onto the struct's last window, not a chunk of its own
    assert chunks[-1].text.endswith("#endif /* PMC_H */")
    assert "} pm_point_t;" in chunks[-1].text
