"""The adapter alone as a llama.cpp LoRA GGUF, applied to the base GGUF at load time
(`Llama(model_path=base, lora_path=adapter)`, or `llama-server --lora`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gguf
from safetensors.torch import load_file

from raildebug.errors import InvalidRequest
from training.export.gguf_model import ARCH

_LORA_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")


def write_lora_gguf(adapter_dir: Path, target: Path, n_layers: int) -> Path:
    settings = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if settings.get("use_dora") or settings.get("use_rslora"):
        raise InvalidRequest("llama.cpp LoRA adapters support plain LoRA only (no DoRA/rsLoRA)")
    names = gguf.get_tensor_name_map(ARCH, n_layers)
    writer = gguf.GGUFWriter(target, gguf.MODEL_ARCH_NAMES[ARCH])
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    # llama.cpp scales by alpha / rank, the same factor PEFT uses.
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(settings["lora_alpha"]))
    for key, tensor in sorted(load_file(str(adapter_dir / "adapter_model.safetensors")).items()):
        match = _LORA_KEY.match(key)
        if match is None:
            raise InvalidRequest(f"unexpected tensor {key} in {adapter_dir}")
        base_name = names.get_name(match.group(1) + ".weight", try_suffixes=(".weight",))
        if base_name is None:
            raise InvalidRequest(f"no GGUF tensor for adapted layer {match.group(1)}")
        writer.add_tensor(f"{base_name}.lora_{match.group(2).lower()}", tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return target
