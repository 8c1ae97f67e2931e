"""OpenTelemetry instruments of the retriever (scraped from /metrics on metrics_port): search and
leg durations, passages returned, ingest counts and duration, store size. Names live in
raildebug.observability.conventions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from raildebug.observability import conventions as conv
from raildebug.observability.metrics import counter, gauge, histogram, meter

_meter = meter("raildebug.retriever")

search_duration = histogram(_meter, conv.METRIC_RETRIEVAL_SEARCH_DURATION)
leg_duration = histogram(_meter, conv.METRIC_RETRIEVAL_LEG_DURATION)
passages_returned = histogram(_meter, conv.METRIC_RETRIEVAL_SEARCH_PASSAGES)
ingest_duration = histogram(_meter, conv.METRIC_RETRIEVAL_INGEST_DURATION)
ingested_documents = counter(_meter, conv.METRIC_RETRIEVAL_INGEST_DOCUMENTS)
ingested_chunks = counter(_meter, conv.METRIC_RETRIEVAL_INGEST_CHUNKS)
store_chunks = gauge(_meter, conv.METRIC_RETRIEVAL_STORE_CHUNKS)

KEYWORD_LEG = conv.RETRIEVAL_MODE_KEYWORD
VECTOR_LEG = conv.RETRIEVAL_MODE_VECTOR
HYBRID_LEG = conv.RETRIEVAL_MODE_HYBRID  # one native hybrid query (Weaviate) instead of both

T = TypeVar("T")


def timed_leg(leg: str, run: Callable[[], T]) -> T:
    """Run one search leg and record how long it took."""
    started = time.perf_counter()
    try:
        return run()
    finally:
        leg_duration.record(time.perf_counter() - started, {conv.ATTR_RETRIEVAL_LEG: leg})


def search_mode(alpha: float) -> str:
    """Which legs ran: alpha 0 is keyword only, 1 vector only, anything between both."""
    if alpha <= 0.0:
        return conv.RETRIEVAL_MODE_KEYWORD
    if alpha >= 1.0:
        return conv.RETRIEVAL_MODE_VECTOR
    return conv.RETRIEVAL_MODE_HYBRID


def searched(seconds: float, alpha: float, fusion: str, passages: int, store_size: int) -> None:
    attributes = {conv.ATTR_RETRIEVAL_MODE: search_mode(alpha), conv.ATTR_RETRIEVAL_FUSION: fusion}
    search_duration.record(seconds, attributes)
    passages_returned.record(passages, attributes)
    store_chunks.set(store_size)


def ingested(
    seconds: float,
    *,
    written: int,
    unchanged: int,
    duplicates: int,
    failed: int,
    chunks: int,
    store_size: int,
) -> None:
    ingest_duration.record(seconds)
    for outcome, count in (
        (conv.INGEST_WRITTEN, written),
        (conv.INGEST_UNCHANGED, unchanged),
        (conv.INGEST_DUPLICATE, duplicates),
        (conv.INGEST_FAILED, failed),
    ):
        if count:
            ingested_documents.add(count, {conv.ATTR_RETRIEVAL_INGEST_OUTCOME: outcome})
    ingested_chunks.add(chunks)
    store_chunks.set(store_size)
