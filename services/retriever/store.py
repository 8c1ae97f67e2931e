"""LanceDB storage for chunks: one embedded on-disk table with a BM25 index and raw vectors.

Why this shape:
* One row per chunk; the filterable metadata keys are real columns so filters run as SQL
  predicates before ranking (prefilter), never as a post-filter that could starve the top k.
* Re-ingesting a source is a single merge_insert transaction (insert the new chunks, delete
  that source's chunks that are gone), so a concurrent search sees the old or the new version
  of a file, never a half-written mix. Lance is multi-version, so searches take no lock; one
  writer lock serialises writes.
* Full-text search is LanceDB's native BM25 index on `text`. Lance searches rows added after
  the index was built with a flat scan, but scores them with separate statistics; `optimize()`
  after each write batch folds them into the index so BM25 scores stay comparable.
* Vectors are searched exactly (flat, cosine): at the corpus sizes a debug desk ingests
  (thousands to ~100k chunks) that costs milliseconds and never misses a neighbour.
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
from lancedb.index import FTS
from lancedb.query import LanceVectorQueryBuilder
from lancedb.table import Table

from raildebug.errors import InvalidRequest, NotReady
from raildebug.telemetry import get_logger
from services.retriever.models import FILTERABLE_METADATA, Chunk, PassageFilter, StoreStats

log = get_logger(__name__)

BACKEND = "lancedb"
TABLE_NAME = "chunks"
_MODEL_KEY = b"raildebug.embedding_model"
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


def build_where(passage_filter: PassageFilter) -> str | None:
    """Translate a PassageFilter to a SQL predicate; None when nothing is filtered.

    Only fixed column names reach the SQL text; every user value goes through sql_string.
    Raises InvalidRequest for a metadata key that is not filterable.
    """
    unknown = sorted(set(passage_filter.metadata) - set(FILTERABLE_METADATA))
    if unknown:
        raise InvalidRequest(
            f"cannot filter on metadata key(s) {', '.join(map(repr, unknown))}; "
            f"filterable keys are: {', '.join(FILTERABLE_METADATA)}"
        )
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
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dimension = dimension
        self.embedding_model = embedding_model
        self._table_name = table_name
        self._schema = chunk_schema(dimension, embedding_model)
        self._write_lock = threading.Lock()
        self._db = lancedb.connect(str(self.directory))
        self._table: Table | None = None  # set once the first chunk is written
        try:
            table = self._db.open_table(table_name)
        except (ValueError, FileNotFoundError):
            log.info("empty chunk store", directory=str(self.directory))
        else:
            self._check_compatible(table)
            self._ensure_fts_index(table)
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
    def _ensure_fts_index(table: Table) -> None:
        if not any(
            index.index_type == "FTS" and list(index.columns) == ["text"]
            for index in table.list_indices()
        ):
            table.create_index("text", config=FTS(), replace=True)

    # --- writes -----------------------------------------------------------------------------

    def _rows(
        self, chunks: Sequence[Chunk], vectors: npt.NDArray[np.float32], source_hash: str
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
        refresh: bool = True,
    ) -> int:
        """Make `chunks` the only rows of `source`, atomically; returns rows written.

        With refresh=False the BM25 index is not updated (call refresh_indexes() after a
        batch): new rows are still found, through a flat scan.
        """
        if any(chunk.source != source for chunk in chunks):
            raise ValueError(f"every chunk must belong to {source!r}")
        if not chunks:
            self.delete_source(source, refresh=refresh)
            return 0
        rows = self._rows(chunks, vectors, source_hash)
        with self._write_lock:
            if self._table is None:
                table = self._db.create_table(self._table_name, data=rows, schema=self._schema)
                self._ensure_fts_index(table)
                self._table = table  # published only once searchable
            else:
                (
                    self._table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(f"source = {sql_string(source)}")
                    .execute(rows)
                )
                if refresh:
                    self._refresh_locked()
        return len(chunks)

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

    def keyword_search(
        self, text: str, limit: int, where: str | None = None
    ) -> list[tuple[Chunk, float]]:
        """BM25 hits for `text`, best first, as (chunk, raw BM25 score)."""
        table = self._table
        if table is None or limit < 1 or not text.strip():
            return []
        query = table.search(text, query_type="fts", fts_columns="text")
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_CHUNK_COLUMNS, "_score"]).limit(limit).to_arrow().to_pylist()
        hits = [(_chunk_from_row(row), float(row["_score"])) for row in rows]
        hits.sort(key=lambda hit: (-hit[1], hit[0].id))
        return hits

    def vector_search(
        self, vector: npt.NDArray[np.float32], limit: int, where: str | None = None
    ) -> list[tuple[Chunk, float]]:
        """Nearest chunks by cosine, best first, as (chunk, cosine similarity)."""
        table = self._table
        if table is None or limit < 1:
            return []
        builder = table.search(np.asarray(vector, dtype=np.float32), query_type="vector")
        if not isinstance(builder, LanceVectorQueryBuilder):  # narrows the type for mypy
            raise TypeError(f"unexpected vector query builder {type(builder).__name__}")
        query = builder.distance_type("cosine")
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_CHUNK_COLUMNS, "_distance"]).limit(limit).to_arrow().to_pylist()
        hits = [(_chunk_from_row(row), 1.0 - float(row["_distance"])) for row in rows]
        hits.sort(key=lambda hit: (-hit[1], hit[0].id))
        return hits

    def count(self, where: str | None = None) -> int:
        """Number of stored chunks (matching `where` when given)."""
        table = self._table
        if table is None:
            return 0
        return int(table.count_rows(where) if where else table.count_rows())

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
