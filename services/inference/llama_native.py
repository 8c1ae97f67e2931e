"""Thin owners of llama.cpp's C objects (model, context, batch) through llama-cpp-python's ctypes.

The high-level `Llama` class drives one sequence; continuous batching needs the context, the
batch and the KV memory directly. Only the engine thread touches a `NativeContext`; the model's
vocabulary is read-only after loading, so tokenizing from caller threads is safe.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import llama_cpp

# llama.cpp logs every tensor while loading; keep its errors, drop the chatter.
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)

_PIECE_BUFFER = 256


class NativeModel:
    """A loaded GGUF: weights, vocabulary, metadata, and optionally a LoRA adapter.

    The adapter (a GGUF LoRA, e.g. `raildebug train export`'s adapter-lora.gguf) stays in its
    own precision on top of the base weights: a quantized base keeps the whole fine-tune, which
    re-quantizing merged weights onto the base's own grid would partly erase.
    """

    def __init__(
        self, path: Path, n_gpu_layers: int, lora_path: Path | None = None, lora_scale: float = 1.0
    ) -> None:
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 2**31 - 1 if n_gpu_layers < 0 else n_gpu_layers
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ValueError(f"llama.cpp could not load {path}; is it a GGUF model file?")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_layers = int(llama_cpp.llama_model_n_layer(model))
        self.lora: llama_cpp.llama_adapter_lora_p | None = None
        self.lora_scale = lora_scale
        if lora_path is not None:
            adapter = llama_cpp.llama_adapter_lora_init(model, str(lora_path).encode())
            if not adapter:
                self.close()
                raise ValueError(
                    f"llama.cpp could not load the LoRA adapter {lora_path} onto {path}; is it "
                    "a GGUF LoRA made for this base model?"
                )
            self.lora = adapter

    def meta(self, key: str) -> str:
        size = 4096
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buffer, size)
            if n < 0:
                return ""
            if n < size:
                return buffer.value.decode("utf-8", errors="replace")
            size = n + 1

    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, True, True)
        if n < 0:  # cannot happen with one slot per byte plus specials, but be exact anyway
            capacity = -n
            tokens = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, True, True)
        return list(tokens[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        buffer = ctypes.create_string_buffer(_PIECE_BUFFER)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, _PIECE_BUFFER, 0, special)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, -n, 0, special)
        return buffer.raw[:n]

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def special_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", errors="replace")

    @property
    def bos(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self.vocab))

    def close(self) -> None:
        if self.lora is not None:
            llama_cpp.llama_adapter_lora_free(self.lora)
            self.lora = None
        if self.model is not None:
            llama_cpp.llama_model_free(self.model)
            self.model = None


class NativeContext:
    """One llama context with `n_seq_max` sequences sharing a unified KV cache.

    Unified cells let sequences share a prompt prefix without copying KV data, and the full-size
    sliding-window cache keeps old positions around so a prefix stays reusable.
    """

    def __init__(
        self, model: NativeModel, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int
    ) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = True
        params.swa_full = True
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not ctx:
            raise ValueError(f"llama.cpp could not create a context of {n_ctx} cells")
        self.ctx = ctx
        if model.lora is not None:
            pointer = ctypes.cast(model.lora, llama_cpp.llama_adapter_lora_p_ctypes)
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(pointer)
            scales = (ctypes.c_float * 1)(model.lora_scale)
            if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales):
                self.close()
                raise ValueError("llama.cpp could not apply the LoRA adapter to the context")
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))

    def decode(self, batch: TokenBatch) -> int:
        return int(llama_cpp.llama_decode(self.ctx, batch.batch))

    def forget(self, seq_id: int, from_pos: int = 0) -> None:
        """Drop the sequence's KV cells at positions >= from_pos."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq_id, from_pos, -1)

    def share_prefix(self, source: int, target: int, length: int) -> None:
        """Give `target` the source's first `length` positions (same cells, no copy)."""
        llama_cpp.llama_memory_seq_rm(self.memory, target, -1, -1)
        llama_cpp.llama_memory_seq_cp(self.memory, source, target, 0, length)

    def close(self) -> None:
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None


class TokenBatch:
    """A reusable llama_batch: tokens of several sequences, each with its position."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.size = 0

    def clear(self) -> None:
        self.size = 0
        self.batch.n_tokens = 0

    def add(self, token: int, pos: int, seq_id: int, wants_logits: bool) -> int:
        """Append one token; returns its index (the one to sample from when it has logits)."""
        i = self.size
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = wants_logits
        self.size += 1
        b.n_tokens = self.size
        return i

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def close(self) -> None:
        if self.capacity:
            llama_cpp.llama_batch_free(self.batch)
            self.capacity = 0
