"""Merge -> float GGUF -> quantized GGUFs -> adapter GGUF -> parity gate, for one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from raildebug.errors import NotFound
from services.orchestrator.prompting import load_template
from training.config import TrainingConfig
from training.dataset.formatting import TokenizedExample, keep_tail, render_prompt
from training.dataset.prepare import load_run_data, tokenize_all
from training.export.gguf_lora import write_lora_gguf
from training.export.gguf_model import write_model_gguf
from training.export.merge import merge_adapter
from training.export.parity import Deliverable, GateReport, enforce, run_gate
from training.export.quantize import quantize
from training.export.vocab import read_vocab
from training.modeling import (
    base_dir,
    base_tokenizer_gguf,
    load_model,
    load_tokenizer,
    quantized_base_gguf,
)
from training.reporting import write_json


def export_run(config: TrainingConfig, adapter: Path | None = None) -> dict[str, Any]:
    """Writes run/export/*.gguf and run/parity.json; raises ParityGateFailed on a bad export."""
    out = config.run.output_dir
    adapter = adapter or out / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise NotFound(f"no adapter at {adapter}: run `raildebug train finetune` first")
    base = base_dir(config)
    export = out / "export"
    with tqdm(total=4, desc="export") as bar:
        merged = merge_adapter(base, adapter, out / "merged")
        bar.update(1)
        files = export_hf(config, merged, export, "model")
        bar.update(1)
        if config.export.adapter_gguf:
            files["base_float"] = write_model_gguf(
                base,
                export / f"base-{config.export.outtype}.gguf",
                read_vocab(base_tokenizer_gguf(config)),
                config.export.outtype,
                "base",
            )
            layers = _n_layers(merged)
            files["adapter"] = write_lora_gguf(adapter, export / "adapter-lora.gguf", layers)
        bar.update(1)
        report = gate(config, merged, files)
        bar.update(1)
    result = {"files": {k: str(v) for k, v in files.items()}, "parity": report.as_dict()}
    write_json(out / "parity.json", result)
    enforce(report)
    return result


def export_hf(config: TrainingConfig, hf_dir: Path, export: Path, stem: str) -> dict[str, Path]:
    """A full-precision HF model to `stem-f16.gguf` plus the configured quantizations."""
    outtype = config.export.outtype
    vocab = read_vocab(base_tokenizer_gguf(config))
    float_path = write_model_gguf(
        hf_dir, export / f"{stem}-{outtype}.gguf", vocab, outtype, config.export.model_name
    )
    files = {"float": float_path}
    for kind in config.export.quantizations:
        files[kind] = quantize(float_path, export / f"{stem}-{kind.lower()}.gguf", kind)
    return files


def gate(config: TrainingConfig, hf_dir: Path, files: dict[str, Path]) -> GateReport:
    """The parity gate on the held-out prompts (fixed: the first `parity.prompts` of them)."""
    tokenizer = load_tokenizer(base_dir(config))
    data = load_run_data(config)
    heldout = tokenize_all(config, tokenizer, data.heldout)[: config.parity.prompts]
    limit = config.parity.max_prompt_tokens
    prompts = [keep_tail(e.input_ids[: e.answer_start], limit) for e in heldout]
    texts = [_tail_text(e, limit) for e in heldout]
    serving_prompt = render_prompt(load_template(config.data.prompt_template), data.heldout[0])
    return run_gate(
        load_model(hf_dir, "float32"),
        files["float"],
        deliverables(config, files),
        prompts,
        texts,
        serving_prompt,
        config.parity,
    )


def deliverables(config: TrainingConfig, files: dict[str, Path]) -> list[Deliverable]:
    """The quantized ways to serve this export, the one served by default last.

    Merged quantized files first; then, when the base itself came from a quantized GGUF and the
    adapter was exported, that base with the adapter applied at load time: the base's weights
    stay exactly as published and the update keeps full precision.
    """
    items = [Deliverable(kind, files[kind]) for kind in config.export.quantizations]
    base = quantized_base_gguf(config)
    if base is not None and "adapter" in files:
        items.append(Deliverable(f"{base.name} + {files['adapter'].name}", base, files["adapter"]))
    return items


def _tail_text(example: TokenizedExample, limit: int) -> TokenizedExample:
    ids = keep_tail(example.input_ids, limit)
    dropped = len(example.input_ids) - len(ids)
    return TokenizedExample(ids, max(example.answer_start - dropped, 1))


def _n_layers(hf_dir: Path) -> int:
    import json

    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    return int(config.get("text_config", config)["num_hidden_layers"])
