"""HF Gemma 3 text weights to a llama.cpp GGUF with the gguf library.

Tensor names come from gguf's own HF-to-GGUF name map. Gemma's RMSNorm multiplies by (1 + w);
llama.cpp multiplies by w, so norm weights are written +1 (transformers subtracts it again when
it loads a GGUF). The tokenizer, chat template and special ids are copied from the base GGUF.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from safetensors import safe_open

from raildebug.errors import InvalidRequest
from training.export.vocab import Vocab, write_vocab

ARCH = gguf.MODEL_ARCH.GEMMA3
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}


def write_model_gguf(hf_dir: Path, target: Path, vocab: Vocab, outtype: str, name: str) -> Path:
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in ("gemma3_text", "gemma3"):
        raise InvalidRequest(
            f"GGUF export supports Gemma 3 text models; {hf_dir} is {config.get('model_type')!r}"
        )
    config = config.get("text_config", config)
    if config["vocab_size"] != len(vocab.tokens):
        raise InvalidRequest(
            f"the model has {config['vocab_size']} token embeddings but the tokenizer GGUF has "
            f"{len(vocab.tokens)} tokens: set model.tokenizer_gguf to the base's own GGUF"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(target, gguf.MODEL_ARCH_NAMES[ARCH])
    _write_hparams(writer, config, name, FILE_TYPES[outtype])
    write_vocab(writer, vocab)
    names = gguf.get_tensor_name_map(ARCH, config["num_hidden_layers"])
    for hf_name, tensor in _tensors(hf_dir):
        if hf_name == "lm_head.weight":  # tied to token_embd in Gemma
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InvalidRequest(f"no GGUF name for tensor {hf_name}")
        data = tensor.float()
        if hf_name.endswith("norm.weight"):
            data = data + 1.0
        array = data.numpy()
        if outtype == "f16" and array.ndim == 2:
            array = array.astype(np.float16)
        writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return target


def _write_hparams(writer: gguf.GGUFWriter, c: dict[str, Any], name: str, ftype: int) -> None:
    writer.add_name(name)
    writer.add_context_length(c["max_position_embeddings"])
    writer.add_embedding_length(c["hidden_size"])
    writer.add_block_count(c["num_hidden_layers"])
    writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_head_count(c["num_attention_heads"])
    writer.add_head_count_kv(c["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(c["rms_norm_eps"])
    writer.add_key_length(c["head_dim"])
    writer.add_value_length(c["head_dim"])
    rope = c.get("rope_parameters") or {}
    base = rope.get("full_attention", rope).get("rope_theta", c.get("rope_theta", 1_000_000.0))
    writer.add_rope_freq_base(float(base))
    writer.add_sliding_window(c["sliding_window"])
    writer.add_file_type(ftype)


def _tensors(hf_dir: Path) -> list[tuple[str, torch.Tensor]]:
    tensors = []
    for shard in sorted(hf_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as handle:
            tensors += [(key, handle.get_tensor(key)) for key in handle.keys()]  # noqa: SIM118
    return tensors
