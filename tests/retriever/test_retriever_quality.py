"""Search quality safeguards and ingestion rules, through RetrievalIndex with real models."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fpdf import FPDF

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest
from services.retriever.chunking import chunk_document
from services.retriever.index import RetrievalIndex
from services.retriever.models import (
    WEAVIATE_PROFILE,
    DuplicateDocument,
    RankingProfile,
    SearchQuery,
    SourceDocument,
)
from services.retriever.sources import read_source_document

PUMP_DOCS = [
    SourceDocument(
        f"docs/pump-{i}.md",
        f"# Pump note {i}\n\nThe hydraulic pump pressure relief valve opens too early; "
        f"inspect the relief valve spring and the pump pressure sensor (note {i}).\n",
    )
    for i in range(8)
]
CODE_ONLY = SourceDocument(
    "docs/codes.md", "# Codes\n\nXQ-77-B is raised by the cooling controller firmware.\n"
)


def test_exact_identifier_match_survives_fusion(index: RetrievalIndex) -> None:
    assert index.ingest([*PUMP_DOCS, CODE_ONLY]).errors == []
    query = SearchQuery("hydraulic pump pressure relief valve XQ-77-B", k=3, alpha=0.75)

    without = index.search(query, profile=replace(RankingProfile(), pin_exact_identifiers=False))
    assert "docs/codes.md" not in [p.chunk.source for p in without.passages]  # fusion drops it

    result = index.search(query)
    assert len(result.passages) == 3
    pinned = [p for p in result.passages if p.chunk.source == "docs/codes.md"]
    assert len(pinned) == 1 and pinned[0].pinned
    assert pinned[0].exact_matches == ("xq-77-b",)
    assert pinned[0].keyword_score > 0
    assert all(not p.pinned and p.exact_matches == () for p in result.passages if p != pinned[0])


def test_keyword_leg_matches_identifier_parts_and_stems(loaded_index: RetrievalIndex) -> None:
    # "locking timeouts" shares no whole word with pm_lock_timeout_ms, only its stemmed parts
    hits = loaded_index.search(SearchQuery("locking timeouts", k=5, alpha=0.0)).passages
    assert "pm_lock_timeout_ms" in hits[0].chunk.text
    assert {"docs/errors-points.md", "src/pmc/pmc_lock.c"} <= {p.chunk.source for p in hits}
    # Weaviate's word tokenizer neither stems nor keeps the identifier whole
    plain = loaded_index.search(
        SearchQuery("locking timeouts", k=5, alpha=0.0), profile=WEAVIATE_PROFILE
    )
    assert plain.passages == []


def test_query_syntax_in_user_text_is_searched_literally(loaded_index: RetrievalIndex) -> None:
    text = 'error "E73-B" (lock) AND NOT: pm_lock_timeout_ms'
    for profile in (RankingProfile(), WEAVIATE_PROFILE):
        result = loaded_index.search(SearchQuery(text, k=3), profile=profile)
        assert result.passages[0].chunk.source in {"docs/errors-points.md", "src/pmc/pmc_lock.c"}


def test_near_duplicate_chunks_from_two_sources_come_back_once(index: RetrievalIndex) -> None:
    body = (
        "# Axle counter reset\n\nAfter a reset the section stays disturbed until a sweep "
        "run with at least ace_min_sweep_axles axles has passed.\n"
    )
    copy = body.replace("has passed.", "has passed through.")
    index.ingest([SourceDocument("docs/a.md", body), SourceDocument("docs/b.md", copy)])
    query = SearchQuery("section disturbed after reset sweep run", k=5)
    assert [p.chunk.source for p in index.search(query).passages] == ["docs/a.md"]
    raw = index.search(query, profile=replace(RankingProfile(), drop_near_duplicates=False))
    assert sorted(p.chunk.source for p in raw.passages) == ["docs/a.md", "docs/b.md"]


def test_cap_per_source(index: RetrievalIndex, store_dir: Path) -> None:
    sections = "\n".join(
        f"## Section {i}\n\nThe point machine lock fails in case {i}.\n" for i in range(6)
    )
    long_doc = SourceDocument("docs/long.md", "# Long\n\n" + sections)
    assert len(chunk_document(long_doc)) >= 6
    other = SourceDocument("docs/other.md", "# Other\n\nA point machine lock note.\n")
    index.ingest([long_doc, other])
    query = SearchQuery("point machine lock fails", k=5, max_per_source=2)
    assert [p.chunk.source for p in index.search(query).passages].count("docs/long.md") == 2
    uncapped = index.search(replace(query, max_per_source=0)).passages
    assert [p.chunk.source for p in uncapped].count("docs/long.md") == 5
    default = RetrievalIndex(store_dir, embedder=index.embedder, max_per_source=1)
    assert len(default.search(replace(query, max_per_source=None)).passages) == 2


@pytest.mark.parametrize("cap", [-1, 101, True, 1.5])
def test_bad_cap_is_rejected(loaded_index: RetrievalIndex, cap: object) -> None:
    with pytest.raises(InvalidRequest, match="max_per_source must be an integer from 0"):
        loaded_index.search(SearchQuery("lock", max_per_source=cap))  # type: ignore[arg-type]


def test_identical_content_is_stored_once(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    before = loaded_index.stats()
    copy = replace(corpus[0], source="vendor/errors-points-copy.md")
    report = loaded_index.ingest([copy])
    assert report.duplicates == [DuplicateDocument(copy.source, corpus[0].source)]
    assert (report.documents_written, report.chunks_written) == (0, 0)
    assert loaded_index.stats() == before
    # once the holder is gone, the copy is stored on the next ingest
    loaded_index.delete_source(corpus[0].source)
    again = loaded_index.ingest([copy])
    assert (again.documents_written, again.duplicates) == (1, [])
    assert loaded_index.stats().passages == before.passages


def test_a_source_changed_into_a_duplicate_loses_its_old_rows(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    now_a_copy = replace(corpus[2], content=corpus[1].content)
    report = loaded_index.ingest([now_a_copy])
    assert report.duplicates == [DuplicateDocument(corpus[2].source, corpus[1].source)]
    assert corpus[2].source not in {
        p.chunk.source
        for p in loaded_index.search(SearchQuery("track circuit occupied", k=10)).passages
    }


def _pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    path.write_bytes(bytes(pdf.output()))
    return path


def test_pdf_manual_is_ingested_page_by_page(tmp_path: Path, index: RetrievalIndex) -> None:
    _pdf(
        tmp_path / "manual.pdf",
        [
            "Point machine manual\nIntroduction to the PM-400 family.",
            "Fault E73-B\nThe lock was not confirmed within pm_lock_timeout_ms.\n"
            "Adjust the lock slide.",
        ],
    )
    doc = read_source_document(tmp_path, tmp_path / "manual.pdf", {"subsystem": "points"})
    assert (doc.kind, doc.language) == ("doc", "pdf")
    assert index.ingest([doc]).errors == []
    top = index.search(SearchQuery("E73-B lock slide", k=1)).passages[0]
    assert top.chunk.title == "page 2"
    assert top.chunk.metadata == {"subsystem": "points"}
    lines = doc.content.split("\n")
    assert lines[top.chunk.line_start - 1] == "Fault E73-B"  # line numbers of the extracted text


def test_unreadable_pdfs_are_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n\x00garbage that is not a PDF")
    with pytest.raises(InvalidRequest, match=r"broken\.pdf: is not a readable PDF"):
        read_source_document(tmp_path, tmp_path / "broken.pdf")
    _pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(InvalidRequest, match=r"scan\.pdf: PDF has no text layer"):
        read_source_document(tmp_path, tmp_path / "scan.pdf")


def test_filters_apply_to_both_legs(loaded_index: RetrievalIndex) -> None:
    query = SearchQuery("E73-B lock", k=10, filter=PassageFilter(kinds=("code",)))
    for alpha in (0.0, 0.5, 1.0):
        sources = {
            p.chunk.source for p in loaded_index.search(replace(query, alpha=alpha)).passages
        }
        assert sources == {"src/pmc/pmc_lock.c"}


def test_identifier_queries_lean_on_the_keyword_leg(loaded_index: RetrievalIndex) -> None:
    only_code = loaded_index.search(SearchQuery("E73-B", k=3, alpha=0.5))
    assert only_code.alpha == 0.0  # a bare code: keyword only
    assert all(p.vector_score == 0.0 for p in only_code.passages)
    mixed = loaded_index.search(SearchQuery("E73-B point fails to lock", k=3, alpha=0.5))
    assert mixed.alpha == pytest.approx(0.5 * (1 - 1 / 4))  # E73-B, point, fails, lock
    prose = loaded_index.search(SearchQuery("point fails to lock", k=3, alpha=0.5))
    assert prose.alpha == 0.5
    explicit = loaded_index.search(SearchQuery("E73-B", k=3, alpha=1.0))
    assert explicit.alpha == 1.0 and explicit.passages[0].vector_score > 0
    baseline = loaded_index.search(SearchQuery("E73-B", k=3, alpha=0.5), profile=WEAVIATE_PROFILE)
    assert baseline.alpha == 0.5
