"""Every field of Search, Ingest and DeleteSource is bounded, and refusals stay short.

Before: an unknown fusion value was silently the default, a 1 MB source or NUL bytes were
stored, and error messages echoed whole offending values (past ~16 KB a status no longer fits
gRPC's metadata limit and Python clients get RESOURCE_EXHAUSTED "Stream removed").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from raildebug.domain import PassageFilter
from raildebug.errors import MAX_MESSAGE_BYTES, InvalidRequest
from raildebug.limits import MAX_METADATA_ENTRIES, MAX_SOURCE_CHARS
from raildebug.v1 import retriever_pb2
from services.retriever.index import RetrievalIndex
from services.retriever.models import SearchQuery, SourceDocument
from services.retriever.ports import ChunkStore, EmbeddingModel, SourceVersion
from services.retriever.wire import query_from_wire

MEGABYTE = "x" * 1_000_000


class _NoEmbedder:
    model_name = "none"
    dimension = 4

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> npt.NDArray[Any]:
        return np.zeros((len(texts), 4), dtype=np.float32)

    def encode_query(self, text: str) -> npt.NDArray[Any]:
        return np.zeros(4, dtype=np.float32)


class _RecordingStore:
    """Just enough of a ChunkStore to see what an ingest would write."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def source_hashes(self) -> dict[str, str]:
        return {}

    def documents_by_sha256(self) -> dict[str, str]:
        return {}

    def replace_sources(self, versions: Sequence[SourceVersion], *, refresh: bool = True) -> int:
        self.written += [v.source for v in versions]
        return sum(len(v.chunks) for v in versions)

    def refresh_indexes(self) -> None:
        pass

    def count(self, passage_filter: PassageFilter | None = None) -> int:
        return 0

    def delete_source(self, source: str, *, refresh: bool = True) -> int:
        return 0


def _index(tmp_path: Path) -> tuple[RetrievalIndex, _RecordingStore]:
    store = _RecordingStore()
    index = RetrievalIndex(
        tmp_path, embedder=cast(EmbeddingModel, _NoEmbedder()), store=cast(ChunkStore, store)
    )
    return index, store


def test_an_unknown_fusion_value_is_refused_not_read_as_the_default() -> None:
    request = retriever_pb2.SearchRequest(query="E73-B")
    request.fusion = 7  # type: ignore[assignment]  # what a newer or broken client may send
    with pytest.raises(InvalidRequest, match="unknown fusion value 7; use one of"):
        query_from_wire(request)
    request.fusion = retriever_pb2.FUSION_TYPE_RANKED
    assert query_from_wire(request).fusion.value == "rankedFusion"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (SourceDocument(source="docs/a\0.md", content="text"), "source .* control characters"),
        (SourceDocument(source="docs/\n.md", content="text"), "source .* control characters"),
        (SourceDocument(source="d" * (MAX_SOURCE_CHARS + 1), content="t"), "source is 1025"),
        (SourceDocument(source="docs/a.md", content="te\0xt"), "content contains NUL"),
        (SourceDocument(source="a.md", content="t", kind="doc\0"), "kind .* control"),
        (SourceDocument(source="a.md", content="t", language=MEGABYTE), "language is 1000000"),
        (SourceDocument(source="a.md", content="t", title="T\0"), "title contains NUL"),
        (
            SourceDocument(
                source="a.md",
                content="t",
                metadata={f"k{i}": "v" for i in range(MAX_METADATA_ENTRIES + 1)},
            ),
            "metadata has 33 entries",
        ),
        (SourceDocument(source="a.md", content="t", metadata={"sub system": "x"}), "key"),
        (SourceDocument(source="a.md", content="t", metadata={"subsystem": "a\0"}), "control"),
        (SourceDocument(source="a.md", content="t", metadata={"subsystem": MEGABYTE}), "256"),
    ],
)
def test_ingest_reports_unbounded_or_binary_fields_per_document(
    tmp_path: Path, document: SourceDocument, message: str
) -> None:
    index, store = _index(tmp_path)
    report = index.ingest([document])
    assert store.written == [] and report.documents_written == 0
    (failure,) = report.errors
    assert re.search(message, failure.message), failure.message
    assert len(failure.message.encode()) <= MAX_MESSAGE_BYTES
    assert len(failure.source) <= MAX_SOURCE_CHARS + 1


@pytest.mark.parametrize(
    ("passage_filter", "message"),
    [
        (PassageFilter(source_prefix=MEGABYTE), "filter.source_prefix is 1000000 characters"),
        (PassageFilter(source_prefix="src/\0"), "control characters"),
        (PassageFilter(metadata={"subsystem": MEGABYTE}), "is 1000000 characters"),
        (PassageFilter(metadata={MEGABYTE: "red"}), "key is 1000000 characters"),
        (PassageFilter(kinds=tuple(f"k{i}" for i in range(17))), "filter.kinds has 17 values"),
        (PassageFilter(languages=(MEGABYTE,)), "filter.languages is 1000000"),
        (PassageFilter(kinds=("video" * 1000,)), "filter.kinds is 5000 characters"),
    ],
)
def test_oversized_filters_are_refused_with_a_short_message(
    tmp_path: Path, passage_filter: PassageFilter, message: str
) -> None:
    index, _ = _index(tmp_path)
    with pytest.raises(InvalidRequest, match=message) as refused:
        index.search(SearchQuery(text="E73-B", filter=passage_filter))
    assert len(str(refused.value)) < 400


def test_unknown_values_are_echoed_clipped(tmp_path: Path) -> None:
    index, _ = _index(tmp_path)
    with pytest.raises(InvalidRequest, match="cannot filter on metadata key") as refused:
        index.search(SearchQuery(text="E73-B", filter=PassageFilter(metadata={"c" * 64: "red"})))
    assert "(64 characters)" not in str(refused.value)  # 64 fits: shown whole
    with pytest.raises(InvalidRequest, match="unknown kind") as refused:
        index.search(SearchQuery(text="E73-B", filter=PassageFilter(kinds=("v" * 64,))))
    assert len(str(refused.value)) < 300


def test_delete_source_refuses_control_characters_and_huge_paths(tmp_path: Path) -> None:
    index, _ = _index(tmp_path)
    with pytest.raises(InvalidRequest, match="control characters"):
        index.delete_source("docs/a.md\0")
    with pytest.raises(InvalidRequest, match="source is 1000000 characters"):
        index.delete_source(MEGABYTE)
    assert index.delete_source("docs/a.md") == 0
