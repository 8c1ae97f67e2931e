"""The tokenizer part of a GGUF: read from one file, written into another (exports carry the
base's tokenizer unchanged), or cut down to a subset for tiny test models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np

_KEEP_TYPES = (gguf.TokenType.USER_DEFINED, gguf.TokenType.BYTE)
_TOKEN_IDS = ("bos", "eos", "unknown", "padding")


@dataclass(frozen=True)
class Vocab:
    model: str
    pre: str
    tokens: list[bytes]
    scores: list[float]
    types: list[int]
    special_ids: dict[str, int]  # bos, eos, unknown, padding
    flags: dict[str, bool]  # add_bos_token, add_eos_token, add_space_prefix, add_sep_token
    chat_template: str


def read_vocab(path: Path) -> Vocab:
    reader = gguf.GGUFReader(path)
    fields = reader.fields

    def value(key: str, default: Any = None) -> Any:
        return fields[key].contents() if key in fields else default

    tokens_field = fields["tokenizer.ggml.tokens"]
    return Vocab(
        model=str(value("tokenizer.ggml.model")),
        pre=str(value("tokenizer.ggml.pre", "default")),
        tokens=[bytes(tokens_field.parts[i]) for i in tokens_field.data],
        scores=[float(s) for s in value("tokenizer.ggml.scores", [])],
        types=[int(t) for t in value("tokenizer.ggml.token_type", [])],
        special_ids={
            name: int(value(f"tokenizer.ggml.{name}_token_id"))
            for name in _TOKEN_IDS
            if f"tokenizer.ggml.{name}_token_id" in fields
        },
        flags={
            name: bool(value(f"tokenizer.ggml.{name}"))
            for name in ("add_bos_token", "add_eos_token", "add_space_prefix", "add_sep_token")
            if f"tokenizer.ggml.{name}" in fields
        },
        chat_template=str(value("tokenizer.chat_template", "")),
    )


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unknown": writer.add_unk_token_id,
        "padding": writer.add_pad_token_id,
    }
    for name, token_id in vocab.special_ids.items():
        setters[name](token_id)
    flag_setters = {
        "add_bos_token": writer.add_add_bos_token,
        "add_eos_token": writer.add_add_eos_token,
        "add_space_prefix": writer.add_add_space_prefix,
        "add_sep_token": writer.add_add_sep_token,
    }
    for name, flag in vocab.flags.items():
        flag_setters[name](flag)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def subset_vocab(vocab: Vocab, used_ids: set[int]) -> Vocab:
    """The first special tokens, user-defined and byte tokens, single ASCII characters and the
    ids a dataset uses, in original order: any text still tokenizes (bytes fall back), with an
    embedding matrix a few thousand rows tall instead of 262k."""
    keep = [
        i
        for i, (token, token_type) in enumerate(zip(vocab.tokens, vocab.types, strict=True))
        if i in used_ids
        or i < 5
        or token_type in _KEEP_TYPES
        or (len(token) == 1 and token.isascii())
    ]
    index = {old: new for new, old in enumerate(keep)}
    return replace(
        vocab,
        tokens=[vocab.tokens[i] for i in keep],
        scores=[vocab.scores[i] for i in keep],
        types=[vocab.types[i] for i in keep],
        special_ids={k: index[v] for k, v in vocab.special_ids.items() if v in index},
    )


def write_vocab_only(target: Path, vocab: Vocab, architecture: str, source: Path) -> None:
    """A tensor-free GGUF carrying `vocab` and the source's model metadata (transformers loads
    a tokenizer from it with gguf_file=)."""
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, architecture)
    for key, field in reader.fields.items():
        if key.startswith(f"{architecture}.") and len(field.types) == 1:
            kind = field.types[0]
            writer.add_key_value(key, field.contents(), kind)
    writer.add_name("tokenizer subset")
    write_vocab(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def token_count(path: Path) -> int:
    return len(np.asarray(gguf.GGUFReader(path).fields["tokenizer.ggml.tokens"].data))
