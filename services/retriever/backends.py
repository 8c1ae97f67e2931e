"""Builds the retrieval index over the store backend the settings choose (lancedb or weaviate).

The Weaviate store is imported only when chosen, so the embedded default never loads its client.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from raildebug.observability.logging import get_logger
from raildebug.settings import RetrieverSettings
from services.retriever.embedding import Embedder
from services.retriever.index import RetrievalIndex
from services.retriever.ports import ChunkStore, EmbeddingModel

log = get_logger(__name__)

_RETRY_S = 2.0


def build_index(
    settings: RetrieverSettings,
    embedder: EmbeddingModel | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RetrievalIndex:
    """The index the retriever service serves, on the configured store."""
    model: EmbeddingModel = embedder if embedder is not None else Embedder()
    store = open_weaviate_store(settings, model, sleep=sleep) if _weaviate(settings) else None
    return RetrievalIndex(
        settings.store_dir,
        embedder=model,
        store=store,
        max_per_source=settings.max_per_source,
        hybrid=settings.weaviate_hybrid if _weaviate(settings) else "fusion",
    )


def _weaviate(settings: RetrieverSettings) -> bool:
    return settings.store_backend == "weaviate"


def open_weaviate_store(
    settings: RetrieverSettings,
    embedder: EmbeddingModel,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ChunkStore:
    """Connect, retrying an unreachable server for weaviate_startup_wait_s (it may start later).

    Refused credentials or an incompatible collection fail at once: waiting cannot fix them.
    """
    from services.retriever.weaviate_store import WeaviateChunkStore, WeaviateUnavailable

    key = settings.weaviate_api_key
    deadline = time.monotonic() + settings.weaviate_startup_wait_s
    while True:
        try:
            return WeaviateChunkStore(
                settings.weaviate_url,
                embedder.dimension,
                embedding_model=embedder.model_name,
                collection=settings.weaviate_collection,
                api_key=key.get_secret_value() if key is not None else None,
                grpc_port=settings.weaviate_grpc_port,
                grpc_host=settings.weaviate_grpc_host,
                timeout_s=settings.weaviate_timeout_s,
            )
        except WeaviateUnavailable as error:
            if time.monotonic() >= deadline:
                raise
            log.warning("waiting for Weaviate", url=settings.weaviate_url, error=str(error))
            sleep(_RETRY_S)
