"""Finds the GGUF file to serve: a configured path, or a catalog model by name."""

from __future__ import annotations

from pathlib import Path

from raildebug.errors import NotFound
from raildebug.observability.logging import get_logger
from services.inference import catalog

log = get_logger(__name__)


def resolve_model_path(
    model_path: Path | None, cache_dir: Path, model: str = catalog.DEFAULT_MODEL
) -> Path:
    """`model_path` if set (a path wins over a name), else catalog model `model`.

    A built-in model whose packages are installed is assembled on first use (the default Gemma
    3 270M ships with RailDebug); a missing package, or a truncated or corrupted file, is
    refused with a message naming the command that repairs it (`raildebug models fetch NAME`).
    """
    if model_path is not None:
        if not model_path.is_file():
            raise NotFound(
                f"model file {model_path} does not exist; set RAILDEBUG_INFERENCE_MODEL_PATH "
                "to a GGUF file, or unset it to serve RAILDEBUG_INFERENCE_MODEL "
                "(a name from `raildebug models list`)"
            )
        return model_path
    entry = catalog.lookup(model, cache_dir)
    target = entry.file_in(cache_dir)
    if entry.local or target.exists():
        return catalog.check(entry, cache_dir)
    log.info("assembling catalog model", model=entry.name, path=str(target))
    return catalog.fetch(entry, cache_dir, install=False, progress=False)


def check_lora_path(lora_path: Path | None) -> Path | None:
    """The adapter file to apply, or None; a configured path that is missing is an error."""
    if lora_path is not None and not lora_path.is_file():
        raise NotFound(
            f"LoRA adapter {lora_path} does not exist; set RAILDEBUG_INFERENCE_LORA_PATH to a GGUF "
            "LoRA adapter (raildebug train export writes export/adapter-lora.gguf), or unset it"
        )
    return lora_path
