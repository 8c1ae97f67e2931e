"""A deterministic stand-in embedder for tests that judge storage or plumbing, not semantics."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DIM = 16


class HashEmbedder:
    """Unit vectors from a hash of the text: equal texts embed equally, others differ."""

    model_name = "hash-test"
    dimension = DIM

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self.encode_query(t) for t in texts])

    def encode_query(self, text: str) -> npt.NDArray[np.float32]:
        raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:DIM], dtype=np.uint8)
        vector = raw.astype(np.float32) - 127.5
        return (vector / np.linalg.norm(vector)).astype(np.float32)
