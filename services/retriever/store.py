"""LanceDB storage for chunks: one embedded on-disk table with a BM25 index and raw vectors.

Why this shape:
* One row per chunk; the filterable metadata keys are real columns so filters run as SQL
  predicates before ranking (prefilter), never as a post-filter that could starve the top k.
* A batch of sources is replaced by a single merge_insert transaction (insert the new chunks,
  delete those sources' chunks that are gone), so a concurrent search, or the store after a
  crash, sees the old or the new version of a file, never a half-written mix. Lance is
  multi-version, so searches take no lock; one writer lock serialises writes.
* Full-text search is LanceDB's native BM25 index, over `search_text`: the terms our own
  analyzer (services.retriever.analysis) produced, joined by spaces and indexed with a plain
  whitespace tokenizer. LanceDB's tokenizers split `pm_lock_timeout_ms` and cannot keep it
  whole as well, so the analysis happens here and queries are analyzed the same way. A second
  BM25 index over the raw `text` with a Weaviate-like word tokenizer (no stemming) is built on
  first use, only for the evaluation baseline. Lance searches rows added after an index was
  built with a flat scan but scores them with separate statistics; `optimize()` after each
  write batch folds them into the index so BM25 scores stay comparable.
* Vectors are searched exactly (flat, cosine) while the table is small: that never misses a
  neighbour and costs a few milliseconds. From VECTOR_INDEX_MIN_ROWS rows on, a flat scan
  takes ~150 ms per query on two cores, so an IVF_HNSW_SQ index is built at the next refresh
  (optimize() keeps it current after that); its partitions are few enough that the default
  nprobes visits all of them, which keeps recall close to exact.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, IvfHnswSq
from lancedb.query import FullTextOperator, LanceVectorQueryBuilder, MatchQuery
from lancedb.table import Table

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest, NotReady, clip
from raildebug.observability.logging import get_logger
from services.retriever.analysis import analyze, analyze_all
from services.retriever.models import FILTERABLE_METADATA, Chunk, KeywordAnalyzer, StoreStats
from services.retriever.ports import SourceVersion

log = get_logger(__name__)

BACKEND = "lancedb"
TABLE_NAME = "chunks"
_MODEL_KEY = b"raildebug.embedding_model"
ANALYZED_COLUMN = "search_text"
VECTOR_INDEX_MIN_ROWS = 50_000
_ROWS_PER_PARTITION = 10_000
# Our analyzer already lower-cased, split, stemmed and dropped stop words: index its terms as is.
_ANALYZED_FTS = FTS(
    base_tokenizer="whitespace",
    lower_case=False,
    stem=False,
    remove_stop_words=False,
    ascii_folding=False,
    max_token_length=None,
)
# Weaviate's default `word` tokenization: lower-cased alphanumeric runs, no stemming.
_PLAIN_FTS = FTS(base_tokenizer="simple", lower_case=True, stem=False, remove_stop_words=True)
_CHUNK_COLUMNS = (
    "id",
    "source",
    "text",
    "line_start",
    "line_end",
    "kind",
    "language",
    "title",
    "metadata_json",
)


def chunk_schema(dimension: int, embedding_model: str = "") -> pa.Schema:
    """The table schema; the embedding model is recorded so a model swap is detected."""
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("line_start", pa.int32(), nullable=False),
        pa.field("line_end", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("metadata_json", pa.string(), nullable=False),
        *(pa.field(key, pa.string(), nullable=False) for key in FILTERABLE_METADATA),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("document_sha256", pa.string(), nullable=False),
        pa.field(ANALYZED_COLUMN, pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
    ]
    return pa.schema(fields, metadata={_MODEL_KEY: embedding_model.encode()})


def sql_string(value: str) -> str:
    """A SQL string literal: single quotes doubled (backslashes are literal in Lance SQL)."""
    return "'" + value.replace("'", "''") + "'"


def _in_list(column: str, values: Iterable[str]) -> str | None:
    wanted = sorted({v for v in values if v})
    if not wanted:
        return None
    return f"{column} IN ({', '.join(sql_string(v) for v in wanted)})"


def check_filter(passage_filter: PassageFilter) -> None:
    """Raise InvalidRequest for a metadata key that is not a filterable column."""
    unknown = sorted(set(passage_filter.metadata) - set(FILTERABLE_METADATA))
    if unknown:
        raise InvalidRequest(
            f"cannot filter on metadata key(s) {', '.join(map(clip, unknown))}; "
            f"filterable keys are: {', '.join(FILTERABLE_METADATA)}"
        )


def build_where(passage_filter: PassageFilter) -> str | None:
    """Translate a PassageFilter to a SQL predicate; None when nothing is filtered.

    Only fixed column names reach the SQL text; every user value goes through sql_string.
    Raises InvalidRequest for a metadata key that is not filterable.
    """
    check_filter(passage_filter)
    clauses = [
        _in_list("kind", passage_filter.kinds),
        _in_list("language", passage_filter.languages),
    ]
    if passage_filter.source_prefix:
        clauses.append(f"starts_with(source, {sql_string(passage_filter.source_prefix)})")
    for key in FILTERABLE_METADATA:
        value = passage_filter.metadata.get(key, "")
        if value:
            clauses.append(f"{key} = {sql_string(value)}")
    present = [clause for clause in clauses if clause]
    return " AND ".join(f"({clause})" for clause in present) if present else None


def _match_any(text: str, column: str) -> MatchQuery:
    """BM25 over `column` for any of the terms of `text` (no query-language parsing)."""
    return MatchQuery(
        text,
        column,
        boost=1.0,
        fuzziness=0,
        max_expansions=50,
        operator=FullTextOperator.OR,
        prefix_length=0,
        document_granularity=None,
    )


def _chunk_from_row(row: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=row["id"],
        source=row["source"],
        text=row["text"],
        line_start=int(row["line_start"]),
        line_end=int(row["line_end"]),
        kind=row["kind"],
        language=row["language"],
        title=row["title"],
        metadata=json.loads(row["metadata_json"] or "{}"),
    )


class LanceChunkStore:
    """Chunk rows in a LanceDB directory; safe for concurrent searches plus one writer."""

    def __init__(
        self,
        directory: Path,
        dimension: int,
        *,
        embedding_model: str = "",
        table_name: str = TABLE_NAME,
        vector_index_min_rows: int = VECTOR_INDEX_MIN_ROWS,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dimension = dimension
        self.embedding_model = embedding_model
        self._table_name = table_name
        self._vector_index_min_rows = vector_index_min_rows
        self._schema = chunk_schema(dimension, embedding_model)
        self._write_lock = threading.Lock()
        self._db = lancedb.connect(str(self.directory))
        self._table: Table | None = None  # set once the first chunk is written
        self._plain_ready = False  # the baseline word index exists (see _plain_indexed)
        try:
            table = self._db.open_table(table_name)
        except (ValueError, FileNotFoundError):
            log.info("empty chunk store", directory=str(self.directory))
        else:
            self._check_compatible(table)
            self._ensure_fts_index(table, ANALYZED_COLUMN, _ANALYZED_FTS)
            self._table = table

    # --- opening ----------------------------------------------------------------------------

    def _check_compatible(self, table: Table) -> None:
        schema: pa.Schema = table.schema
        vector_type = schema.field("vector").type if "vector" in schema.names else None
        stored_dim = getattr(vector_type, "list_size", None)
        if stored_dim != self.dimension:
            raise NotReady(
                f"chunk store {self.directory} holds {stored_dim}-dimensional vectors but the "
                f"embedding model produces {self.dimension}; use a new store directory or "
                "delete this one and re-ingest"
            )
        stored_model = (schema.metadata or {}).get(_MODEL_KEY, b"").decode()
        if stored_model and self.embedding_model and stored_model != self.embedding_model:
            raise NotReady(
                f"chunk store {self.directory} was built with embedding model {stored_model!r}, "
                f"not {self.embedding_model!r}; use a new store directory or re-ingest into an "
                "empty one"
            )
        missing = [f.name for f in self._schema if f.name not in schema.names]
        if missing:
            raise NotReady(
                f"chunk store {self.directory} lacks column(s) {', '.join(missing)} (written by "
                "an older version); delete the directory and re-ingest"
            )

    @staticmethod
    def _ensure_fts_index(table: Table, column: str, config: FTS) -> None:
        """Create the BM25 index on `column` unless present (also after a crash mid-create)."""
        if not any(
            index.index_type == "FTS" and list(index.columns) == [column]
            for index in table.list_indices()
        ):
            table.create_index(column, config=config, replace=True)

    # --- writes -----------------------------------------------------------------------------

    def _rows(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        source_hash: str,
        document_sha256: str,
    ) -> pa.Table:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(chunks), self.dimension):
            raise ValueError(
                f"expected {len(chunks)} vectors of dimension {self.dimension}, "
                f"got shape {matrix.shape}"
            )
        columns: dict[str, Any] = {
            "id": [c.id for c in chunks],
            "source": [c.source for c in chunks],
            "text": [c.text for c in chunks],
            "line_start": [c.line_start for c in chunks],
            "line_end": [c.line_end for c in chunks],
            "kind": [c.kind for c in chunks],
            "language": [c.language for c in chunks],
            "title": [c.title for c in chunks],
            "metadata_json": [json.dumps(c.metadata, sort_keys=True) for c in chunks],
        }
        for key in FILTERABLE_METADATA:
            columns[key] = [c.metadata.get(key, "") for c in chunks]
        columns["content_hash"] = [source_hash] * len(chunks)
        columns["document_sha256"] = [document_sha256] * len(chunks)
        columns[ANALYZED_COLUMN] = [analyze_all((c.title, c.text)) for c in chunks]
        columns["vector"] = pa.FixedSizeListArray.from_arrays(
            pa.array(matrix.reshape(-1), type=pa.float32()), self.dimension
        )
        return pa.Table.from_pydict(columns, schema=self._schema)

    def replace_source(
        self,
        source: str,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        source_hash: str,
        *,
        document_sha256: str = "",
        refresh: bool = True,
    ) -> int:
        """Make `chunks` the only rows of `source`, atomically; returns rows written.

        `source_hash` is the fingerprint that decides whether a re-ingest is unchanged;
        `document_sha256` identifies the content alone, to find duplicates under other paths.
        With refresh=False the BM25 index is not updated (call refresh_indexes() after a
        batch): new rows are still found, through a flat scan.
        """
        version = SourceVersion(source, list(chunks), vectors, source_hash, document_sha256)
        return self.replace_sources([version], refresh=refresh)

    def replace_sources(self, versions: Sequence[SourceVersion], *, refresh: bool = True) -> int:
        """Replace several sources in one transaction (all or none); returns rows written.

        One commit per batch instead of per file is what makes bulk ingests fast; a reader
        or a crash sees either none or all of the batch.
        """
        for version in versions:
            if any(chunk.source != version.source for chunk in version.chunks):
                raise ValueError(f"every chunk must belong to {version.source!r}")
        if len({v.source for v in versions}) != len(versions):
            raise ValueError("each source may appear only once per batch")
        parts = [
            self._rows(v.chunks, v.vectors, v.source_hash, v.document_sha256)
            for v in versions
            if v.chunks
        ]
        emptied = [v.source for v in versions if not v.chunks]
        if not parts:
            for source in emptied:
                self.delete_source(source, refresh=refresh)
            return 0
        rows = pa.concat_tables(parts)
        scope = _in_list("source", (v.source for v in versions)) or "false"
        with self._write_lock:
            if self._table is None:
                table = self._db.create_table(self._table_name, data=rows, schema=self._schema)
                self._ensure_fts_index(table, ANALYZED_COLUMN, _ANALYZED_FTS)
                self._table = table  # published only once searchable
            else:
                (
                    self._table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(scope)
                    .execute(rows)
                )
                if refresh:
                    self._refresh_locked()
        return int(rows.num_rows)

    def delete_source(self, source: str, *, refresh: bool = True) -> int:
        """Delete every chunk of `source`; returns how many were deleted (0: unknown source)."""
        with self._write_lock:
            if self._table is None:
                return 0
            predicate = f"source = {sql_string(source)}"
            deleted = int(self._table.count_rows(predicate))
            if deleted:
                self._table.delete(predicate)
                if refresh:
                    self._refresh_locked()
        return deleted

    def refresh_indexes(self) -> None:
        """Fold rows written since the last refresh into the BM25 index and compact files."""
        with self._write_lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        if self._table is not None:
            self._table.optimize()
            self._ensure_vector_index(self._table)

    def _ensure_vector_index(self, table: Table) -> None:
        """Build the ANN index once the table is large enough for a flat scan to be slow."""
        if any(list(index.columns) == ["vector"] for index in table.list_indices()):
            return
        rows = int(table.count_rows())
        if rows < self._vector_index_min_rows:
            return
        log.info("building vector index", rows=rows)
        table.create_index(
            "vector",
            config=IvfHnswSq(
                distance_type="cosine", num_partitions=max(1, rows // _ROWS_PER_PARTITION)
            ),
        )

    def has_vector_index(self) -> bool:
        """Whether vector searches go through the ANN index (large stores) or scan flat."""
        table = self._table
        return table is not None and any(
            list(index.columns) == ["vector"] for index in table.list_indices()
        )

    # --- reads ------------------------------------------------------------------------------

    def source_hash(self, source: str) -> str | None:
        """The content hash stored with `source`'s chunks; None if the source is not stored."""
        table = self._table
        if table is None:
            return None
        rows = (
            table.search()
            .where(f"source = {sql_string(source)}")
            .select(["content_hash"])
            .limit(1)
            .to_arrow()
        )
        return str(rows.column("content_hash")[0].as_py()) if rows.num_rows else None

    def source_hashes(self) -> dict[str, str]:
        """Every stored source with its content hash, read in one scan (for bulk ingests)."""
        table = self._table
        if table is None:
            return {}
        rows = table.search().select(["source", "content_hash"]).limit(None).to_arrow()
        return dict(
            zip(
                rows.column("source").to_pylist(),
                rows.column("content_hash").to_pylist(),
                strict=True,
            )
        )

    def documents_by_sha256(self) -> dict[str, str]:
        """Content digest -> the stored source holding that content (to store duplicates once)."""
        table = self._table
        if table is None:
            return {}
        rows = table.search().select(["source", "document_sha256"]).limit(None).to_arrow()
        found: dict[str, str] = {}
        for source, digest in zip(
            rows.column("source").to_pylist(),
            rows.column("document_sha256").to_pylist(),
            strict=True,
        ):
            if digest:
                found.setdefault(digest, source)
        return found

    def keyword_search(
        self,
        text: str,
        limit: int,
        passage_filter: PassageFilter | None = None,
        *,
        analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER,
    ) -> list[tuple[Chunk, float]]:
        """BM25 hits for `text`, best first, as (chunk, raw BM25 score).

        The query goes in as a MatchQuery (OR of its terms), never through a query parser, so
        quotes, parentheses or "AND" in an engineer's log line cannot break the search.
        """
        table = self._table
        if table is None or limit < 1:
            return []
        if analyzer is KeywordAnalyzer.PLAIN:
            table = self._plain_indexed(table)
            if not text.strip():
                return []
            match = _match_any(text, "text")
        else:
            terms = analyze(text)
            if not terms:
                return []
            match = _match_any(" ".join(terms), ANALYZED_COLUMN)
        query = table.search(match, query_type="fts")
        where = build_where(passage_filter) if passage_filter is not None else None
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_CHUNK_COLUMNS, "_score"]).limit(limit).to_arrow().to_pylist()
        hits = [(_chunk_from_row(row), float(row["_score"])) for row in rows]
        hits.sort(key=lambda hit: (-hit[1], hit[0].id))
        return hits

    def _plain_indexed(self, table: Table) -> Table:
        """The table with its baseline word index (built on first use, kept fresh after)."""
        if not self._plain_ready:
            with self._write_lock:
                self._ensure_fts_index(table, "text", _PLAIN_FTS)
                self._plain_ready = True
        return table

    def vector_search(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        passage_filter: PassageFilter | None = None,
        *,
        exact: bool = False,
    ) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine, best first, as (chunk, cosine similarity).

        `exact` scans every row even when the ANN index exists (to measure its recall).
        """
        table = self._table
        if table is None or limit < 1:
            return []
        builder = table.search(np.asarray(vector, dtype=np.float32), query_type="vector")
        if not isinstance(builder, LanceVectorQueryBuilder):  # narrows the type for mypy
            raise TypeError(f"unexpected vector query builder {type(builder).__name__}")
        query = builder.distance_type("cosine")
        if exact:
            query = query.bypass_vector_index()
        where = build_where(passage_filter) if passage_filter is not None else None
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_CHUNK_COLUMNS, "_distance"]).limit(limit).to_arrow().to_pylist()
        hits = [(_chunk_from_row(row), 1.0 - float(row["_distance"])) for row in rows]
        hits.sort(key=lambda hit: (-hit[1], hit[0].id))
        return hits

    def count(self, passage_filter: PassageFilter | None = None) -> int:
        """Number of stored chunks (matching `passage_filter` when given)."""
        table = self._table
        if table is None:
            return 0
        where = build_where(passage_filter) if passage_filter is not None else None
        return int(table.count_rows(where) if where else table.count_rows())

    def ping(self) -> None:
        """Embedded: the store is this process's own directory, nothing to reach."""

    def stats(self) -> StoreStats:
        """Counts for the Stats RPC and health checks (scans two narrow columns)."""
        table = self._table
        by_kind: dict[str, int] = {}
        passages = sources = 0
        if table is not None:
            rows = table.search().select(["source", "kind"]).limit(None).to_arrow()
            passages = rows.num_rows
            if passages:
                sources = int(pc.count_distinct(rows.column("source")).as_py())
                counts = rows.group_by("kind").aggregate([("kind", "count")])
                by_kind = {
                    str(kind): int(n)
                    for kind, n in zip(
                        counts.column("kind").to_pylist(),
                        counts.column("kind_count").to_pylist(),
                        strict=True,
                    )
                }
        return StoreStats(
            passages=passages,
            sources=sources,
            embedding_model=self.embedding_model,
            embedding_dim=self.dimension,
            backend=BACKEND,
            passages_by_kind=dict(sorted(by_kind.items())),
        )
