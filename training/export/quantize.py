"""llama.cpp's own quantizer, called through llama-cpp-python (same code as llama-quantize)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import llama_cpp

from raildebug.errors import InvalidRequest

FTYPES = {
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}


def quantize(source: Path, target: Path, kind: str) -> Path:
    if kind not in FTYPES:
        raise InvalidRequest(f"unknown quantization {kind!r}; choose from {sorted(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    if status != 0 or not target.is_file():
        raise RuntimeError(f"llama.cpp failed to quantize {source} to {kind} (status {status})")
    return target
