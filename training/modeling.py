"""Base models and adapters.

Every base (HF path, GGUF file, tiny random config) is first materialised once as a plain
full-precision HF directory; training, QLoRA quantization and merging all load from it, so the
adapter is always merged into the same full-precision weights it was trained against.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from raildebug.errors import InvalidRequest
from training.config import LoraSection, ModelSection, TrainingConfig

BASE_DIRNAME = "base"
TOKENIZER_CACHE = Path.home() / ".cache" / "raildebug" / "tokenizers"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


PACKAGED_GEMMA = "gemma-3-270m"


def packaged_gguf() -> Path:
    """The packaged Gemma 3 270M: the default base of gguf-sourced runs and the vocabulary the
    tiny models share (not the service's default model, a Qwen with another architecture)."""
    from services.inference.model_files import resolve_model_path

    cache = Path.home() / ".cache" / "raildebug" / "models"
    return resolve_model_path(None, cache, model=PACKAGED_GEMMA)


def tokenizer_gguf(model: ModelSection) -> Path:
    """The GGUF whose vocabulary the run shares (exports copy their tokenizer from it)."""
    if model.tokenizer_gguf is not None:
        return model.tokenizer_gguf
    if model.source == "gguf" and model.path:
        return Path(model.path)
    return packaged_gguf()


def base_dir(config: TrainingConfig) -> Path:
    if config.model.source == "hf":
        assert config.model.path is not None
        return Path(config.model.path)
    return config.run.output_dir / BASE_DIRNAME


def materialize_base(config: TrainingConfig) -> Path:
    """Write the full-precision HF copy of the base (once per run directory)."""
    target = base_dir(config)
    if config.model.source == "hf" or (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    if config.model.source == "gguf":
        gguf = _gguf_path(config)
        tokenizer = gguf_tokenizer(gguf)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are dequantized to float32 now; drop the marker that forbids saving them.
        model.hf_quantizer = None  # type: ignore[assignment]
        model.config.__dict__.pop("quantization_config", None)
    else:
        gguf = _tiny_vocab(config, partial / "tokenizer.gguf")
        tokenizer = AutoTokenizer.from_pretrained(str(partial), gguf_file=gguf.name)
        model = _tiny_model(config, len(tokenizer), tokenizer)
        gguf = Path(gguf.name)  # inside the base directory, which may be moved
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "raildebug_base.json").write_text(
        json.dumps({"source": config.model.source, "tokenizer_gguf": str(gguf)}), encoding="utf-8"
    )
    partial.rename(target)
    return target


def base_tokenizer_gguf(config: TrainingConfig) -> Path:
    """The GGUF whose tokenizer exports carry (recorded when the base was materialised)."""
    if config.model.tokenizer_gguf is not None:
        return config.model.tokenizer_gguf
    record = base_dir(config) / "raildebug_base.json"
    if record.is_file():
        recorded = Path(json.loads(record.read_text(encoding="utf-8"))["tokenizer_gguf"])
        return recorded if recorded.is_absolute() else base_dir(config) / recorded
    return tokenizer_gguf(config.model)


def gguf_tokenizer(path: Path) -> Any:
    """A GGUF's tokenizer as an HF fast tokenizer. Converting a 262k-token vocabulary takes
    about a minute, so the result is cached per file (name and size)."""
    from transformers import AutoTokenizer

    cache = TOKENIZER_CACHE / f"{path.stem}-{path.stat().st_size}"
    if (cache / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(cache))
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    partial = cache.with_name(cache.name + f".partial-{os.getpid()}")
    tokenizer.save_pretrained(partial)
    if cache.exists():  # another process won the race
        shutil.rmtree(partial)
    else:
        partial.replace(cache)
    return tokenizer


def _tiny_vocab(config: TrainingConfig, target: Path) -> Path:
    """Tiny models share Gemma's tokenizer cut down to what the run's data uses."""

    from services.orchestrator.prompting import load_template
    from training.dataset.formatting import render_prompt
    from training.dataset.prepare import load_run_data
    from training.export.vocab import read_vocab, subset_vocab, write_vocab_only

    source = tokenizer_gguf(config.model)
    full = gguf_tokenizer(source)
    data = load_run_data(config)
    template = load_template(config.data.prompt_template)
    examples = data.train + data.heldout
    texts = [render_prompt(template, e) for e in examples] + [e.answer for e in examples]
    used = {i for ids in full(texts, add_special_tokens=False)["input_ids"] for i in ids}
    write_vocab_only(target, subset_vocab(read_vocab(source), used), "gemma3", source)
    return target


def quantized_base_gguf(config: TrainingConfig) -> Path | None:
    """The GGUF the base was dequantized from (model.source gguf), or None."""
    return _gguf_path(config) if config.model.source == "gguf" else None


def _gguf_path(config: TrainingConfig) -> Path:
    return Path(config.model.path) if config.model.path else packaged_gguf()


def _tiny_model(config: TrainingConfig, vocab_size: int, tokenizer: Any) -> Any:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tiny = config.model.tiny
    torch.manual_seed(config.run.seed)
    gemma = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        num_key_value_heads=tiny.num_key_value_heads,
        head_dim=tiny.head_dim,
        query_pre_attn_scalar=tiny.head_dim,
        max_position_embeddings=4096,
        sliding_window=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=tiny.initializer_range,
    )
    return Gemma3ForCausalLM(gemma)


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def load_model(path: Path, dtype: str = "float32", lora: LoraSection | None = None) -> Any:
    """The frozen base, 4-bit when lora.method is qlora (never the weights we merge into)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": _DTYPES[dtype], "attn_implementation": "eager"}
    if lora is not None and lora.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type=lora.quant_type,
            bnb_4bit_use_double_quant=lora.double_quant,
            bnb_4bit_compute_dtype=_DTYPES[lora.compute_dtype],
        )
        kwargs["device_map"] = {"": _device()}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    model.config.use_cache = False
    if "quantization_config" in kwargs:
        _keep_cpu_4bit_layout(model)
    return model


def _keep_cpu_4bit_layout(model: Any) -> None:
    """bitsandbytes' CPU inference path (eval mode, no grad) repacks 4-bit weights in place and
    needs out_features % 32 == 0; evaluation must see the same weights training uses."""
    from bitsandbytes.nn.modules import Linear4bit

    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False


def add_adapter(model: Any, lora: LoraSection) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    for param in model.parameters():
        param.requires_grad_(False)
    if lora.method == "qlora":
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=False
        )
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = sorted(set(lora.target_modules) - names)
    if unknown:
        raise InvalidRequest(
            f"lora.target_modules {unknown} are not modules of this model; "
            f"linear layers here include {sorted(n for n in names if n.endswith('proj'))}"
        )
    return get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        ),
    )


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) counted on the unsharded shapes (4-bit weights count as elements)."""
    trainable = total = 0
    for param in model.parameters():
        count = param.numel()
        if getattr(param, "quant_state", None) is not None:  # packed 4-bit: 2 per byte
            count = int(torch.Size(param.quant_state.shape).numel())
        total += count
        if param.requires_grad:
            trainable += count
    return trainable, total


def linear_weight_bytes(model: Any, names: list[str]) -> int:
    """Storage of the weights of the named linear layers (how much 4-bit saves)."""
    size = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in names and hasattr(module, "weight"):
            weight = module.weight
            size += weight.numel() * weight.element_size()
            state = getattr(weight, "quant_state", None)
            if state is not None:
                size += state.absmax.numel() * state.absmax.element_size()
    return size


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
