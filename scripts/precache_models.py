"""Bake the packaged models into a container image at build time, and prove they load offline.

Why at build time: pods run with a read-only root filesystem and no egress to model hubs, so the
GGUF cannot be assembled on first start and a broken model must fail the image build, not the
first request in production.

    python scripts/precache_models.py --gguf-dir /opt/raildebug/models --prune  # inference image
    python scripts/precache_models.py --check-embeddings                 # retriever image
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.inference.catalog import CatalogEntry


def cache_gguf(target_dir: Path, model: str, *, prune: bool = False) -> dict[str, object]:
    """Assemble catalog model `model` into `target_dir`, verified against its sha256.

    `prune` (image builds): keep only that file, so a derived model's base GGUF and the wheels
    its parts came in do not ship in the image.
    """
    from services.inference import catalog

    entry = catalog.lookup(model, target_dir)
    path = catalog.fetch(entry, target_dir, install=True, progress=False)
    if prune:
        _prune(entry, target_dir)
    return {"model": entry.name, "path": str(path), "sha256": entry.sha256}


def _prune(entry: CatalogEntry, target_dir: Path) -> None:
    import subprocess

    from services.inference import catalog

    packages: list[str] = []
    base_name = entry.requantized_from
    while base_name:
        base = catalog.lookup(base_name, target_dir)
        base.file_in(target_dir).unlink(missing_ok=True)
        packages += [spec.split("==")[0] for spec in base.packages]
        base_name = base.requantized_from
    packages += [spec.split("==")[0] for spec in entry.packages]
    if packages:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", *packages], check=True)


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
    parser.add_argument("--gguf-dir", type=Path, help="assemble the model's GGUF here")
    parser.add_argument(
        "--model",
        default=None,
        help="catalog name to bake (default: the inference service's default model)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="keep only the baked file: delete a derived model's base GGUF and uninstall the "
        "packages its parts came in (image builds)",
    )
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
            from services.inference.catalog import DEFAULT_MODEL

            model = args.model or DEFAULT_MODEL
            cached.append(cache_gguf(args.gguf_dir, model, prune=args.prune))
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
