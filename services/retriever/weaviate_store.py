"""Weaviate storage for chunks: the LanceDB store's behaviour, served by a Weaviate server.

Chosen with RAILDEBUG_RETRIEVER_STORE_BACKEND=weaviate; RetrievalIndex cannot tell the two apart.

Layout
* Collection `<name>` (weaviate_collection, default RailDebugChunks): one object per chunk with
  our own vector (no vectorizer module, cosine HNSW). Its id is uuid5 of the chunk id and of the
  source version (`generation`) it belongs to: rewriting a version is idempotent, and two
  versions of a file can coexist while one replaces the other.
* `search_text` holds the terms of services.retriever.analysis (the Lance store's analyzer),
  whitespace-tokenized, so BM25 keeps `pm_lock_timeout_ms` whole and queries are analyzed the
  same way; `text` is word-tokenized with Weaviate's English stop words, stock Weaviate, for the
  evaluation baseline (KeywordAnalyzer.PLAIN). Weaviate indexes on write: nothing to refresh.
* Source, kind, language and every FILTERABLE_METADATA key are field-tokenized filterable
  properties, so filters run inside Weaviate before ranking (never a post-filter that starves
  the top k). Weaviate trims field values and has no escape for `like` wildcards, so hits are
  also checked exactly here; only values with edge whitespace, or `*`/`?` in a source prefix,
  can make a list shorter than asked.
* Collection `<name>State`: a `source` record per stored source (its current generation,
  fingerprint, content digest, chunk count), a `batch` record per write in progress (the
  journal) and one `meta` record (embedding model, dimension, epoch).

Replacing sources without transactions
Weaviate has no multi-object transaction, so a batch is swapped by visibility:
 1. bump the epoch and write a journal (state `writing`) listing each source's new and old
    generation; readers hide the generations a `writing` journal introduces;
 2. import the new chunks (a per-object error aborts the batch, which is rolled back);
 3. flip the journal to `committed`, one object update, so one step for the whole batch:
    readers now hide the old generations instead;
 4. roll forward: point the source records at the new generations, delete the old generations'
    objects, delete the journal.
A read takes the journals and the epoch, queries with the hidden generations excluded, then takes
them again and re-runs the query if they changed, so a search sees the old or the new version of
a batch, never a mix. At startup and before every write, journals a crash left behind are
resolved (`writing`: rolled back, `committed`: rolled forward); startup then deletes objects
whose generation no record knows (orphans). One writer per collection is assumed, as the Lance
store's write lock assumes one per directory: a second process writing the same collection would
roll back the first one's batch in progress.

Errors: an unreachable server raises WeaviateUnavailable (NotReady: UNAVAILABLE) naming the URL,
and every call recovers once the server is back; refused credentials raise Misconfigured.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import weaviate
from weaviate.classes.aggregate import GroupByAggregate
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections import Collection
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import (
    AuthenticationFailedError,
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateInsertManyAllFailedError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)
from weaviate.util import generate_uuid5

from raildebug.domain import PassageFilter
from raildebug.errors import Misconfigured, NotReady, RailDebugError, clip
from raildebug.observability.logging import get_logger
from services.retriever.analysis import analyze, analyze_all
from services.retriever.models import (
    FILTERABLE_METADATA,
    Chunk,
    FusionMethod,
    KeywordAnalyzer,
    StoreStats,
)
from services.retriever.ports import Hits, SourceVersion
from services.retriever.store import check_filter

log = get_logger(__name__)

BACKEND = "weaviate"
DEFAULT_COLLECTION = "RailDebugChunks"
DEFAULT_GRPC_PORT = 50051
STATE_SUFFIX = "State"
ANALYZED_PROPERTY = "search_text"
PLAIN_PROPERTY = "text"
# The metadata keys stored as filterable properties (a module name so a test can play an older
# release that had fewer).
METADATA_PROPERTIES: tuple[str, ...] = FILTERABLE_METADATA
INSERT_BATCH = 200  # objects per insert_many call
_DELETE_GROUP = 100  # generations per delete_many filter
_READ_ATTEMPTS = 3
_PAGE = 1000
_DETAIL_CHARS = 300

_RECORD_SOURCE, _RECORD_BATCH, _RECORD_META = "source", "batch", "meta"
_WRITING, _COMMITTED = "writing", "committed"
_META_ID = generate_uuid5("raildebug-meta")

_CHUNK_FIELDS = [
    "chunk_id",
    "source",
    "text",
    "line_start",
    "line_end",
    "kind",
    "language",
    "title",
    "metadata_json",
]
_STATE_FIELDS = [
    "record",
    "source",
    "generation",
    "source_hash",
    "document_sha256",
    "chunks",
    "state",
    "epoch",
    "payload",
]

T = TypeVar("T")


class WeaviateUnavailable(NotReady):
    """The Weaviate server did not answer; the message names its URL."""


# --- layout -------------------------------------------------------------------------------------


def _text(
    name: str,
    tokenization: Tokenization = Tokenization.FIELD,
    *,
    filterable: bool = True,
    searchable: bool = False,
) -> Property:
    return Property(
        name=name,
        data_type=DataType.TEXT,
        tokenization=tokenization,
        index_filterable=filterable,
        index_searchable=searchable,
    )


def _int(name: str) -> Property:
    return Property(
        name=name, data_type=DataType.INT, index_filterable=False, index_range_filters=False
    )


def chunk_properties() -> list[Property]:
    """Properties of the chunk collection (the metadata ones as METADATA_PROPERTIES says now)."""
    return [
        _text("chunk_id"),
        _text("source"),
        _text("generation"),
        _text("kind"),
        _text("language"),
        *(_text(key) for key in METADATA_PROPERTIES),
        _text("title", filterable=False),
        _text("metadata_json", filterable=False),
        _int("line_start"),
        _int("line_end"),
        _text(PLAIN_PROPERTY, Tokenization.WORD, filterable=False, searchable=True),
        _text(ANALYZED_PROPERTY, Tokenization.WHITESPACE, filterable=False, searchable=True),
    ]


# Without these the stored objects cannot be searched or replaced correctly: never migrated.
CORE_CHUNK_PROPERTIES = frozenset(
    {"chunk_id", "source", "generation", "kind", "language", "title", "metadata_json"}
    | {"line_start", "line_end", PLAIN_PROPERTY, ANALYZED_PROPERTY}
)


def state_properties() -> list[Property]:
    return [
        _text("record"),
        _text("source"),
        _text("generation"),
        _text("source_hash", filterable=False),
        _text("document_sha256", filterable=False),
        _text("state", filterable=False),
        _text("payload", filterable=False),
        _int("chunks"),
        _int("epoch"),
    ]


def chunk_uuid(chunk_id: str, generation: str) -> str:
    """Deterministic object id: the same chunk of the same source version is one object."""
    return str(generate_uuid5(f"{chunk_id}\0{generation}"))


def source_uuid(source: str) -> str:
    return str(generate_uuid5(f"source\0{source}"))


def generation_of(version: SourceVersion) -> str:
    """The source version's id: equal inputs give equal ids, so a re-run rewrites in place."""
    digest = hashlib.sha256()
    for part in (version.source, version.source_hash, *(c.id for c in version.chunks)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


# --- filters ------------------------------------------------------------------------------------


def _all(filters: Sequence[_Filters | None]) -> _Filters | None:
    present = [f for f in filters if f is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Filter.all_of(present)


def _like_prefix(prefix: str) -> str:
    """A `like` pattern for values starting with `prefix`; wildcards in it match any character."""
    return prefix.replace("*", "?") + "*"


def build_filter(passage_filter: PassageFilter) -> _Filters | None:
    """Translate a PassageFilter to a Weaviate filter; None when nothing is filtered.

    Raises InvalidRequest for a metadata key that is not filterable (as the Lance store does).
    """
    check_filter(passage_filter)
    clauses: list[_Filters | None] = []
    for prop, values in (("kind", passage_filter.kinds), ("language", passage_filter.languages)):
        wanted = sorted({v for v in values if v})
        if wanted:
            clauses.append(Filter.by_property(prop).contains_any(wanted))
    if passage_filter.source_prefix:
        clauses.append(
            Filter.by_property("source").like(_like_prefix(passage_filter.source_prefix))
        )
    for key in FILTERABLE_METADATA:
        value = passage_filter.metadata.get(key, "")
        if value:
            clauses.append(Filter.by_property(key).equal(value))
    return _all(clauses)


def matches(chunk: Chunk, passage_filter: PassageFilter | None) -> bool:
    """The exact check behind build_filter (Weaviate trims values and cannot escape `*`)."""
    if passage_filter is None:
        return True
    kinds = {k for k in passage_filter.kinds if k}
    languages = {v for v in passage_filter.languages if v}
    return (
        (not kinds or chunk.kind in kinds)
        and (not languages or chunk.language in languages)
        and chunk.source.startswith(passage_filter.source_prefix)
        and all(
            chunk.metadata.get(key, "") == value
            for key, value in passage_filter.metadata.items()
            if value
        )
    )


def _hidden_filter(hidden: frozenset[str]) -> _Filters | None:
    return _all([Filter.by_property("generation").not_equal(g) for g in sorted(hidden)])


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One source of a batch: the generation it gets ("" deletes it) and the one it replaces."""

    source: str
    new: str
    old: str
    source_hash: str = ""
    document_sha256: str = ""
    chunks: int = 0


@dataclass(frozen=True)
class _Journal:
    id: str
    state: str
    writer: str
    started: float
    entries: tuple[_Entry, ...]

    @property
    def introduced(self) -> set[str]:
        return {e.new for e in self.entries if e.new and e.new != e.old}

    @property
    def retired(self) -> set[str]:
        return {e.old for e in self.entries if e.old and e.old != e.new}

    @property
    def hidden(self) -> set[str]:
        return self.introduced if self.state == _WRITING else self.retired


@dataclass(frozen=True)
class _SourceRecord:
    source: str
    generation: str
    source_hash: str
    document_sha256: str
    chunks: int


@dataclass(frozen=True)
class _Snapshot:
    epoch: int
    journals: tuple[tuple[str, str], ...]  # (id, state), sorted
    hidden: frozenset[str]


def _journal(object_id: object, props: Mapping[str, Any]) -> _Journal:
    payload = json.loads(str(props.get("payload") or "{}"))
    entries = tuple(_Entry(**entry) for entry in payload.get("entries", []))
    return _Journal(
        id=str(object_id),
        state=str(props.get("state") or _WRITING),
        writer=str(payload.get("writer", "")),
        started=float(payload.get("started", 0.0)),
        entries=entries,
    )


def _source_record(props: Mapping[str, Any]) -> _SourceRecord:
    return _SourceRecord(
        source=str(props.get("source") or ""),
        generation=str(props.get("generation") or ""),
        source_hash=str(props.get("source_hash") or ""),
        document_sha256=str(props.get("document_sha256") or ""),
        chunks=int(props.get("chunks") or 0),
    )


def _chunk(props: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=str(props.get("chunk_id") or ""),
        source=str(props.get("source") or ""),
        text=str(props.get("text") or ""),
        line_start=int(props.get("line_start") or 0),
        line_end=int(props.get("line_end") or 0),
        kind=str(props.get("kind") or ""),
        language=str(props.get("language") or ""),
        title=str(props.get("title") or ""),
        metadata=json.loads(str(props.get("metadata_json") or "{}")),
    )


def _sorted_hits(hits: Hits) -> Hits:
    hits.sort(key=lambda hit: (-hit[1], hit[0].id))
    return hits


# --- the store ----------------------------------------------------------------------------------


class WeaviateChunkStore:
    """Chunks in a Weaviate collection; concurrent searches plus one writer (as Lance)."""

    def __init__(
        self,
        url: str,
        dimension: int,
        *,
        embedding_model: str = "",
        collection: str = DEFAULT_COLLECTION,
        api_key: str | None = None,
        grpc_port: int = DEFAULT_GRPC_PORT,
        grpc_host: str = "",
        timeout_s: float = 30.0,
        insert_batch_size: int = INSERT_BATCH,
    ) -> None:
        if insert_batch_size < 1:
            raise ValueError("insert_batch_size must be at least 1")
        self.url = url.rstrip("/")
        self.dimension = dimension
        self.embedding_model = embedding_model
        self.collection_name = collection
        self.state_name = collection + STATE_SUFFIX
        self._insert_batch = insert_batch_size
        self._writer = uuid.uuid4().hex  # names this process's journals in the log
        self._write_lock = threading.Lock()
        # Why the server counts as down (set and cleared by ping(), which the retriever's health
        # watch runs); None: up.
        self._down: str | None = None
        self._client = self._connect(api_key, grpc_host, grpc_port, timeout_s)
        try:
            self._open()
        except BaseException:
            self._client.close()
            raise

    # --- connection -----------------------------------------------------------------------------

    def _connect(
        self, api_key: str | None, grpc_host: str, grpc_port: int, timeout_s: float
    ) -> Any:
        """REST at the URL; gRPC at grpc_host (default: the URL's host), TLS when https."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("",):
            raise Misconfigured(
                f"weaviate_url {clip(self.url)} is not an http(s)://host[:port] URL; set "
                "RAILDEBUG_RETRIEVER_WEAVIATE_URL to the server's REST address, without a path"
            )
        secure = parts.scheme == "https"
        with self._talking("connecting"):
            return weaviate.connect_to_custom(
                http_host=parts.hostname,
                http_port=parts.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=grpc_host or parts.hostname,
                grpc_port=grpc_port,
                grpc_secure=secure,
                auth_credentials=Auth.api_key(api_key) if api_key else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(init=timeout_s, query=timeout_s, insert=timeout_s * 4)
                ),
                # The init checks ask PyPI for the newest client: no network beyond Weaviate.
                skip_init_checks=True,
            )

    def close(self) -> None:
        """Close the connections (searches after this fail with NotReady)."""
        self._client.close()

    def ping(self) -> None:
        """Raise WeaviateUnavailable unless the server reports ready (a cheap REST call)."""
        try:
            ready = bool(self._client.is_ready())
        except WeaviateBaseError as error:
            failure = self._domain_error(error, "checking it is ready")
            if isinstance(failure, WeaviateUnavailable):
                self._down = str(failure)
            raise failure from error
        if not ready:
            self._down = (
                f"Weaviate at {self.url} is not ready; start it or fix "
                "RAILDEBUG_RETRIEVER_WEAVIATE_URL, then retry"
            )
            raise WeaviateUnavailable(self._down)
        self._down = None

    def drop(self) -> None:
        """Delete both collections (the chunks and their bookkeeping), then close: for scratch
        collections such as an evaluation's; a serving store is never dropped."""
        with self._write_lock, self._talking(f"dropping collection {self.collection_name}"):
            self._client.collections.delete([self.collection_name, self.state_name])
        self.close()

    @contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        """Turn the client's errors into domain errors whose message says what to do; while
        the last ping found the server down, fail at once instead of waiting out a timeout."""
        down = self._down
        if down is not None:
            raise WeaviateUnavailable(f"{down} (while {what})")
        try:
            yield
        except RailDebugError:
            raise
        except WeaviateBaseError as error:
            raise self._domain_error(error, what) from error

    def _domain_error(self, error: WeaviateBaseError, what: str) -> Exception:
        detail = " ".join(str(error).split())[:_DETAIL_CHARS]
        status = getattr(error, "status_code", None)
        if (
            status in (401, 403)
            or isinstance(error, AuthenticationFailedError)
            or "UNAUTHENTICATED" in detail
            or "PERMISSION_DENIED" in detail
        ):
            return Misconfigured(
                f"Weaviate at {self.url} refused the retriever's credentials while {what} "
                f"({detail}); set RAILDEBUG_RETRIEVER_WEAVIATE_API_KEY to a key the server "
                "accepts (AUTHENTICATION_APIKEY_ALLOWED_KEYS) with access to "
                f"{self.collection_name} and {self.state_name}"
            )
        unreachable = (
            WeaviateConnectionError,
            WeaviateGRPCUnavailableError,
            WeaviateTimeoutError,
            WeaviateStartUpError,
            WeaviateClosedClientError,
        )
        if isinstance(error, unreachable) or status in (502, 503, 504) or not self._answers():
            return WeaviateUnavailable(
                f"Weaviate at {self.url} is not reachable while {what} ({detail}); start it or "
                "fix RAILDEBUG_RETRIEVER_WEAVIATE_URL / _WEAVIATE_GRPC_PORT, then retry"
            )
        return error  # the server answered and refused: its own message is the best there is

    def _answers(self) -> bool:
        """Whether the server answers REST at all (any status, even a refusal)."""
        client = getattr(self, "_client", None)
        if client is None:
            return False
        try:
            client.get_meta()
        except WeaviateBaseError as error:
            return getattr(error, "status_code", None) is not None
        return True

    # --- opening --------------------------------------------------------------------------------

    def _open(self) -> None:
        with self._talking(f"opening collection {self.collection_name}"):
            collections = self._client.collections
            has_chunks = collections.exists(self.collection_name)
            has_state = collections.exists(self.state_name)
            if has_chunks and not has_state:
                existing = collections.get(self.collection_name)
                if self._total(existing) > 0:
                    raise NotReady(
                        f"Weaviate collection {self.collection_name} at {self.url} holds objects "
                        f"but no {self.state_name} bookkeeping, so RailDebug did not write it; "
                        "set RAILDEBUG_RETRIEVER_WEAVIATE_COLLECTION to another name, or delete "
                        "that collection and re-ingest"
                    )
            if not has_chunks:
                if has_state:  # its chunks are gone: the bookkeeping describes nothing
                    log.warning("dropping orphaned state collection", collection=self.state_name)
                    collections.delete(self.state_name)
                    has_state = False
                self._create(
                    self.collection_name,
                    chunk_properties(),
                    Configure.Vectors.self_provided(
                        vector_index_config=Configure.VectorIndex.hnsw(
                            distance_metric=VectorDistances.COSINE
                        )
                    ),
                )
            if not has_state:
                self._create(
                    self.state_name,
                    state_properties(),
                    Configure.Vectors.self_provided(
                        vector_index_config=Configure.VectorIndex.flat()
                    ),
                )
            self._chunks: Collection[Any, Any] = collections.get(self.collection_name)
            self._state: Collection[Any, Any] = collections.get(self.state_name)
            self._check_meta()
            self._migrate()
        with self._write_lock:
            self._recover()
            self._sweep_orphans()

    def _create(self, name: str, properties: list[Property], vectors: Any) -> None:
        try:
            self._client.collections.create(name, properties=properties, vector_config=vectors)
        except WeaviateBaseError:
            if not self._client.collections.exists(name):  # not another replica's race
                raise
        log.info("created Weaviate collection", collection=name, url=self.url)

    def _check_meta(self) -> None:
        found = self._state.query.fetch_object_by_id(_META_ID)
        if found is None:
            self._state.data.insert(
                {
                    "record": _RECORD_META,
                    "epoch": 0,
                    "payload": json.dumps(
                        {"embedding_model": self.embedding_model, "dimension": self.dimension}
                    ),
                },
                uuid=_META_ID,
            )
            return
        meta = json.loads(str(found.properties.get("payload") or "{}"))
        stored_dim = meta.get("dimension")
        where = f"Weaviate collection {self.collection_name} at {self.url}"
        if stored_dim != self.dimension:
            raise NotReady(
                f"{where} holds {stored_dim}-dimensional vectors but the embedding model "
                f"produces {self.dimension}; set RAILDEBUG_RETRIEVER_WEAVIATE_COLLECTION to a "
                "new name, or delete this collection and re-ingest"
            )
        stored_model = str(meta.get("embedding_model") or "")
        if stored_model and self.embedding_model and stored_model != self.embedding_model:
            raise NotReady(
                f"{where} was built with embedding model {stored_model!r}, not "
                f"{self.embedding_model!r}; set RAILDEBUG_RETRIEVER_WEAVIATE_COLLECTION to a new "
                "name, or delete this collection and re-ingest"
            )

    def _migrate(self) -> None:
        """Add the properties a newer layout has; the next ingest rewrites the stored sources."""
        for collection, wanted in (
            (self._state, state_properties()),
            (self._chunks, chunk_properties()),
        ):
            config = collection.config.get()
            present = {p.name: p for p in config.properties}
            analyzed = present.get(ANALYZED_PROPERTY)
            if (
                collection is self._chunks
                and analyzed is not None
                and analyzed.tokenization != Tokenization.WHITESPACE
            ):
                raise NotReady(
                    f"property {ANALYZED_PROPERTY} of Weaviate collection "
                    f"{self.collection_name} at {self.url} is tokenized as "
                    f"{analyzed.tokenization}, not whitespace, so BM25 would split identifiers; "
                    "use a new collection name or delete this one and re-ingest"
                )
            missing = [p for p in wanted if p.name not in present]
            if not missing:
                continue
            if collection is self._chunks:
                core = sorted(p.name for p in missing if p.name in CORE_CHUNK_PROPERTIES)
                if core and self._total(collection) > 0:
                    raise NotReady(
                        f"Weaviate collection {self.collection_name} at {self.url} lacks "
                        f"property(ies) {', '.join(core)} that its chunks need; use a new "
                        "collection name, or delete this one and re-ingest"
                    )
            for prop in missing:
                collection.config.add_property(prop)
            names = [p.name for p in missing]
            log.info("added Weaviate properties", collection=collection.name, properties=names)
            if collection is self._chunks:
                self._invalidate_fingerprints()

    def _invalidate_fingerprints(self) -> None:
        """Make every stored source look changed, so the next ingest writes the new properties.

        The rewrite lands on the same generation (same fingerprint and chunks), in place.
        """
        for record in self._source_records():
            self._state.data.update(source_uuid(record.source), properties={"source_hash": ""})

    # --- bookkeeping ----------------------------------------------------------------------------

    @staticmethod
    def _total(collection: Collection[Any, Any], where: _Filters | None = None) -> int:
        return int(collection.aggregate.over_all(filters=where, total_count=True).total_count or 0)

    def _source_records(self, sources: Sequence[str] | None = None) -> list[_SourceRecord]:
        """The `source` records, of `sources` only when given."""
        if sources is not None:
            if not sources:
                return []
            found = self._state.query.fetch_objects(
                filters=Filter.by_id().contains_any([source_uuid(s) for s in sources]),
                limit=len(sources),
                return_properties=_STATE_FIELDS,
            )
            objects: Iterator[Any] = iter(found.objects)
        else:
            objects = iter(self._state.iterator(return_properties=_STATE_FIELDS, cache_size=_PAGE))
        return [
            _source_record(o.properties)
            for o in objects
            if o.properties.get("record") == _RECORD_SOURCE
        ]

    def _journals_and_epoch(self) -> tuple[list[_Journal], int]:
        found = self._state.query.fetch_objects(
            filters=Filter.by_property("record").not_equal(_RECORD_SOURCE),
            limit=_PAGE,
            return_properties=_STATE_FIELDS,
        )
        journals: list[_Journal] = []
        epoch = 0
        for o in found.objects:
            if o.properties.get("record") == _RECORD_BATCH:
                journals.append(_journal(o.uuid, o.properties))
            elif o.properties.get("record") == _RECORD_META:
                epoch = int(o.properties.get("epoch") or 0)
        journals.sort(key=lambda j: (j.started, j.id))
        return journals, epoch

    def _snapshot(self) -> _Snapshot:
        journals, epoch = self._journals_and_epoch()
        hidden: set[str] = set()
        for journal in journals:
            hidden |= journal.hidden
        return _Snapshot(epoch, tuple(sorted((j.id, j.state) for j in journals)), frozenset(hidden))

    def _consistent(self, what: str, run: Callable[[_Filters | None], T]) -> T:
        """Run a read with unfinished generations hidden; again if a write moved meanwhile."""
        with self._talking(what):
            before = self._snapshot()
            for _ in range(_READ_ATTEMPTS):
                result = run(_hidden_filter(before.hidden))
                after = self._snapshot()
                if after == before:
                    break
                before = after
            return result

    def _bump_epoch(self) -> None:
        _, epoch = self._journals_and_epoch()
        self._state.data.update(_META_ID, properties={"epoch": epoch + 1})

    def _begin(self, entries: Sequence[_Entry], state: str) -> _Journal:
        journal = _Journal(uuid.uuid4().hex, state, self._writer, time.time(), tuple(entries))
        self._bump_epoch()
        payload = {
            "writer": journal.writer,
            "started": journal.started,
            "entries": [asdict(e) for e in entries],
        }
        self._state.data.insert(
            {"record": _RECORD_BATCH, "state": state, "payload": json.dumps(payload)},
            uuid=journal.id,
        )
        return journal

    def _recover(self) -> None:
        """Finish or undo what earlier writers left half done (crash, killed server)."""
        journals, _ = self._journals_and_epoch()
        for journal in journals:
            log.warning(
                "resolving an interrupted Weaviate write",
                collection=self.collection_name,
                state=journal.state,
                sources=len(journal.entries),
                other_writer=journal.writer != self._writer,
                age_s=round(time.time() - journal.started, 1),
            )
            if journal.state == _WRITING:
                self._roll_back(journal)
            else:
                self._roll_forward(journal)

    def _roll_back(self, journal: _Journal) -> None:
        self._delete_generations(journal.introduced)
        self._state.data.delete_by_id(journal.id)

    def _roll_forward(self, journal: _Journal) -> None:
        upserts = [
            DataObject(
                properties={
                    "record": _RECORD_SOURCE,
                    "source": e.source,
                    "generation": e.new,
                    "source_hash": e.source_hash,
                    "document_sha256": e.document_sha256,
                    "chunks": e.chunks,
                },
                uuid=source_uuid(e.source),
            )
            for e in journal.entries
            if e.new
        ]
        if upserts:
            result = self._state.data.insert_many(upserts)
            if result.errors:
                first = next(iter(result.errors.values()))
                raise NotReady(
                    f"Weaviate at {self.url} refused {len(result.errors)} source record(s) "
                    f"({clip(first.message, 200)}); the next write retries"
                )
        for e in journal.entries:
            if not e.new:
                self._state.data.delete_by_id(source_uuid(e.source))
        self._delete_generations(journal.retired)
        self._state.data.delete_by_id(journal.id)

    def _delete_generations(self, generations: set[str]) -> int:
        """Delete every chunk object of `generations`; returns how many went."""
        deleted = 0
        ordered = sorted(generations)
        for start in range(0, len(ordered), _DELETE_GROUP):
            group = ordered[start : start + _DELETE_GROUP]
            where = Filter.by_property("generation").contains_any(group)
            while True:  # one call deletes at most the server's QUERY_MAXIMUM_RESULTS
                result = self._chunks.data.delete_many(where=where)
                if result.failed:
                    raise NotReady(
                        f"Weaviate at {self.url} failed to delete {result.failed} chunk(s) of "
                        "an old version; the next write retries"
                    )
                deleted += int(result.successful)
                if not result.matches or not result.successful:
                    break
        return deleted

    def _sweep_orphans(self) -> None:
        """Delete chunk objects whose generation no source record holds (at startup)."""
        known = {record.generation for record in self._source_records()}
        groups = self._chunks.aggregate.over_all(
            group_by=GroupByAggregate(prop="generation", limit=len(known) + 10_000),
            total_count=True,
        ).groups
        orphans = {str(g.grouped_by.value) for g in groups} - known
        if orphans:
            log.warning(
                "deleting orphaned chunks",
                collection=self.collection_name,
                generations=len(orphans),
            )
            self._bump_epoch()
            self._delete_generations(orphans)

    # --- writes ---------------------------------------------------------------------------------

    def _objects(self, version: SourceVersion, generation: str) -> list[DataObject[Any, Any]]:
        matrix = np.asarray(version.vectors, dtype=np.float32)
        if matrix.shape != (len(version.chunks), self.dimension):
            raise ValueError(
                f"expected {len(version.chunks)} vectors of dimension {self.dimension}, "
                f"got shape {matrix.shape}"
            )
        objects: list[DataObject[Any, Any]] = []
        for chunk, vector in zip(version.chunks, matrix, strict=True):
            properties: dict[str, Any] = {
                "chunk_id": chunk.id,
                "source": chunk.source,
                "generation": generation,
                "text": chunk.text,
                "line_start": chunk.line_start,
                "line_end": chunk.line_end,
                "kind": chunk.kind,
                "language": chunk.language,
                "title": chunk.title,
                "metadata_json": json.dumps(chunk.metadata, sort_keys=True),
                ANALYZED_PROPERTY: analyze_all((chunk.title, chunk.text)),
            }
            for key in METADATA_PROPERTIES:
                properties[key] = chunk.metadata.get(key, "")
            objects.append(
                DataObject(
                    properties=properties,
                    uuid=chunk_uuid(chunk.id, generation),
                    vector=vector.tolist(),
                )
            )
        return objects

    def _insert(self, source: str, objects: list[DataObject[Any, Any]]) -> None:
        for start in range(0, len(objects), self._insert_batch):
            group = objects[start : start + self._insert_batch]
            try:
                result = self._chunks.data.insert_many(group)
            except WeaviateInsertManyAllFailedError as error:
                raise NotReady(
                    f"Weaviate at {self.url} rejected every chunk of {clip(source)} "
                    f"({clip(str(error), 200)})"
                ) from error
            if result.errors:
                first = next(iter(result.errors.values()))
                raise NotReady(
                    f"Weaviate at {self.url} rejected {len(result.errors)} of {len(group)} "
                    f"chunks of {clip(source)} ({clip(first.message, 200)})"
                )

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
        """Make `chunks` the only chunks of `source`, in one visible step; returns them written."""
        version = SourceVersion(source, list(chunks), vectors, source_hash, document_sha256)
        return self.replace_sources([version], refresh=refresh)

    def replace_sources(self, versions: Sequence[SourceVersion], *, refresh: bool = True) -> int:
        """Replace several sources as one batch (readers see all of it or none); returns rows.

        `refresh` is accepted for the interface: Weaviate indexes on write.
        """
        for version in versions:
            if any(chunk.source != version.source for chunk in version.chunks):
                raise ValueError(f"every chunk must belong to {version.source!r}")
        if len({v.source for v in versions}) != len(versions):
            raise ValueError("each source may appear only once per batch")
        if not versions:
            return 0
        generations = {v.source: generation_of(v) if v.chunks else "" for v in versions}
        objects = {v.source: self._objects(v, generations[v.source]) for v in versions}
        with self._write_lock, self._talking("replacing sources"):
            self._recover()
            current = {r.source: r for r in self._source_records([v.source for v in versions])}
            entries = [
                _Entry(
                    source=v.source,
                    new=generations[v.source],
                    old=current[v.source].generation if v.source in current else "",
                    source_hash=v.source_hash,
                    document_sha256=v.document_sha256,
                    chunks=len(v.chunks),
                )
                for v in versions
            ]
            if all(not e.new and not e.old for e in entries):
                return 0  # only empty versions of sources that are not stored
            journal = self._begin(entries, _WRITING)
            try:
                for v in versions:
                    self._insert(v.source, objects[v.source])
                self._state.data.update(journal.id, properties={"state": _COMMITTED})
            except BaseException:
                self._try(lambda: self._roll_back(journal), "rolling back a failed write")
                raise
            self._roll_forward(journal)
        return sum(len(v.chunks) for v in versions)

    def _try(self, step: Callable[[], None], what: str) -> None:
        """A clean-up that may fail too (server gone): the next write or startup redoes it."""
        try:
            step()
        except Exception as error:
            log.warning(f"{what} failed; the next write finishes it", error=str(error)[:200])

    def delete_source(self, source: str, *, refresh: bool = True) -> int:
        """Delete every chunk of `source`; returns how many were deleted (0: unknown source)."""
        with self._write_lock, self._talking("deleting a source"):
            self._recover()
            records = self._source_records([source])
            if not records:
                return 0
            record = records[0]
            deleted = self._total(
                self._chunks, Filter.by_property("generation").equal(record.generation)
            )
            journal = self._begin([_Entry(source, "", record.generation)], _COMMITTED)
            self._roll_forward(journal)
        return deleted

    def refresh_indexes(self) -> None:
        """Nothing to do: Weaviate's BM25 and vector indexes are current after every write."""

    # --- reads ----------------------------------------------------------------------------------

    def source_hashes(self) -> dict[str, str]:
        """Every stored source with its fingerprint (after finishing interrupted writes)."""
        with self._write_lock, self._talking("reading source fingerprints"):
            self._recover()
            return {r.source: r.source_hash for r in self._source_records()}

    def source_hash(self, source: str) -> str | None:
        """The fingerprint stored for `source`; None if the source is not stored."""
        with self._talking("reading a source fingerprint"):
            records = self._source_records([source])
        return records[0].source_hash if records else None

    def documents_by_sha256(self) -> dict[str, str]:
        """Content digest -> the stored source holding that content (to store duplicates once)."""
        with self._talking("reading content digests"):
            records = sorted(self._source_records(), key=lambda r: r.source)
        found: dict[str, str] = {}
        for record in records:
            if record.document_sha256:
                found.setdefault(record.document_sha256, record.source)
        return found

    def keyword_search(
        self,
        text: str,
        limit: int,
        passage_filter: PassageFilter | None = None,
        *,
        analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER,
    ) -> Hits:
        """BM25 hits for `text`, best first, as (chunk, raw BM25 score).

        The query is a bag of terms (Weaviate's BM25 has no query language), so quotes or "AND"
        in an engineer's log line cannot break it.
        """
        if limit < 1:
            return []
        query, prop = self._keyword_query(text, analyzer)
        if not query:
            return []
        where = build_filter(passage_filter) if passage_filter is not None else None

        def run(hidden: _Filters | None) -> Hits:
            found = self._chunks.query.bm25(
                query=query,
                query_properties=[prop],
                limit=limit,
                filters=_all([where, hidden]),
                return_metadata=MetadataQuery(score=True),
                return_properties=_CHUNK_FIELDS,
            )
            return [(_chunk(o.properties), float(o.metadata.score or 0.0)) for o in found.objects]

        hits = self._consistent("searching (BM25)", run)
        return _sorted_hits([hit for hit in hits if matches(hit[0], passage_filter)])

    @staticmethod
    def _keyword_query(text: str, analyzer: KeywordAnalyzer) -> tuple[str, str]:
        if analyzer is KeywordAnalyzer.PLAIN:
            return text.strip(), PLAIN_PROPERTY
        return " ".join(analyze(text)), ANALYZED_PROPERTY

    def vector_search(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        passage_filter: PassageFilter | None = None,
    ) -> Hits:
        """Nearest chunks by cosine, best first, as (chunk, cosine similarity)."""
        if limit < 1:
            return []
        where = build_filter(passage_filter) if passage_filter is not None else None
        query_vector = np.asarray(vector, dtype=np.float32).tolist()

        def run(hidden: _Filters | None) -> Hits:
            found = self._chunks.query.near_vector(
                near_vector=query_vector,
                limit=limit,
                filters=_all([where, hidden]),
                return_metadata=MetadataQuery(distance=True),
                return_properties=_CHUNK_FIELDS,
            )
            return [
                (_chunk(o.properties), 1.0 - float(o.metadata.distance or 0.0))
                for o in found.objects
            ]

        hits = self._consistent("searching (vector)", run)
        return _sorted_hits([hit for hit in hits if matches(hit[0], passage_filter)])

    def native_hybrid_search(
        self,
        text: str,
        vector: npt.NDArray[np.float32],
        limit: int,
        alpha: float,
        fusion: FusionMethod = FusionMethod.RELATIVE_SCORE,
        passage_filter: PassageFilter | None = None,
        *,
        analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER,
    ) -> Hits:
        """Weaviate's own hybrid query (server-side fusion), best first, as (chunk, score).

        The keyword half runs over the same property and terms as keyword_search, so comparing
        this with our fusion of the two legs isolates the fusion.
        """
        if limit < 1:
            return []
        query, prop = self._keyword_query(text, analyzer)
        where = build_filter(passage_filter) if passage_filter is not None else None
        fusion_type = (
            HybridFusion.RANKED if fusion is FusionMethod.RANKED else HybridFusion.RELATIVE_SCORE
        )
        query_vector = np.asarray(vector, dtype=np.float32).tolist()

        def run(hidden: _Filters | None) -> Hits:
            found = self._chunks.query.hybrid(
                query=query or None,
                vector=query_vector,
                alpha=alpha,
                fusion_type=fusion_type,
                query_properties=[prop],
                limit=limit,
                filters=_all([where, hidden]),
                return_metadata=MetadataQuery(score=True),
                return_properties=_CHUNK_FIELDS,
            )
            return [(_chunk(o.properties), float(o.metadata.score or 0.0)) for o in found.objects]

        hits = self._consistent("searching (hybrid)", run)
        return _sorted_hits([hit for hit in hits if matches(hit[0], passage_filter)])

    def count(self, passage_filter: PassageFilter | None = None) -> int:
        """Number of stored chunks (matching `passage_filter` when given)."""
        where = build_filter(passage_filter) if passage_filter is not None else None
        return self._consistent(
            "counting chunks", lambda hidden: self._total(self._chunks, _all([where, hidden]))
        )

    def stats(self) -> StoreStats:
        """Counts for the Stats RPC and health checks (aggregations, no scan)."""

        def run(hidden: _Filters | None) -> tuple[int, dict[str, int]]:
            result = self._chunks.aggregate.over_all(
                filters=hidden,
                group_by=GroupByAggregate(prop="kind", limit=1000),
                total_count=True,
            )
            by_kind = {str(g.grouped_by.value): int(g.total_count or 0) for g in result.groups}
            return self._total(self._chunks, hidden), by_kind

        passages, by_kind = self._consistent("reading store statistics", run)
        with self._talking("counting sources"):
            sources = self._total(self._state, Filter.by_property("record").equal(_RECORD_SOURCE))
        return StoreStats(
            passages=passages,
            sources=sources,
            embedding_model=self.embedding_model,
            embedding_dim=self.dimension,
            backend=BACKEND,
            passages_by_kind=dict(sorted(by_kind.items())),
        )
