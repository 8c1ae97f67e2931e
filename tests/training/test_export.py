"""GGUF export of a tiny fine-tuned model: llama.cpp loads it and matches HF; the adapter GGUF
applied at load time equals the merged file; a corrupted export fails the parity gate."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.support.training import TinyConfig, tiny_training_config
from training.config import TrainingConfig
from training.dataset.formatting import TokenizedExample
from training.export.parity import (
    Deliverable,
    ParityGateFailed,
    enforce,
    perplexity,
    run_gate,
)
from training.export.pipeline import export_run
from training.modeling import load_model
from training.sft import finetune


@pytest.fixture(scope="module")
def exported(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingConfig:
    import shutil

    run_dir = tmp_path_factory.mktemp("export") / "run"
    config = tiny_training_config(run_dir, optimization={"max_steps": 3})
    shutil.copytree(tiny_base, config.run.output_dir / "base")
    finetune(config)
    export_run(config)
    return config


def _llama_logits(path: Path, ids: list[int], lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(path),
        lora_path=str(lora) if lora else None,
        n_ctx=256,
        logits_all=True,
        verbose=False,
        n_threads=2,
    )
    llama.eval(ids)
    return np.array(llama.scores[: len(ids)])


def test_exported_gguf_matches_hf_logits(exported: TrainingConfig) -> None:
    import torch

    out = exported.run.output_dir
    report = json.loads((out / "parity.json").read_text())["parity"]
    assert report["passed"] and report["top1_agreement"] == 1.0
    assert set(report["perplexity_ratio"]) == {"Q8_0", "Q4_K_M"}
    assert all(ratio < 1.5 for ratio in report["perplexity_ratio"].values())
    ids = [2, 10, 200, 31, 77, 5, 900, 42]
    hf = load_model(out / "merged")
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor([ids])).logits[0].numpy()
    got = _llama_logits(out / "export" / "model-f16.gguf", ids)
    np.testing.assert_allclose(got, expected, atol=2e-2)
    reader = gguf.GGUFReader(out / "export" / "model-q4_k_m.gguf")
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == 1
    assert reader.fields["general.architecture"].contents() == "gemma3"


def test_adapter_gguf_applied_at_load_equals_the_merged_model(exported: TrainingConfig) -> None:
    export = exported.run.output_dir / "export"
    ids = [2, 15, 300, 8, 61, 7]
    merged = _llama_logits(export / "model-f16.gguf", ids)
    applied = _llama_logits(export / "base-f16.gguf", ids, lora=export / "adapter-lora.gguf")
    base = _llama_logits(export / "base-f16.gguf", ids)
    np.testing.assert_allclose(applied, merged, atol=2e-2)
    assert np.abs(base - merged).max() > 10 * np.abs(applied - merged).max()


def test_parity_gate_fails_on_a_corrupted_export(exported: TrainingConfig, tmp_path: Path) -> None:
    source = exported.run.output_dir / "export" / "model-f16.gguf"
    corrupted = tmp_path / "corrupted.gguf"
    corrupted.write_bytes(source.read_bytes())
    reader = gguf.GGUFReader(corrupted, "r+")  # memory-mapped: edits land in the file
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_v.weight")
    tensor.data[...] = tensor.data[::-1]  # rows swapped: shapes and metadata stay valid
    del reader
    prompts = [[2, *range(20, 60)], [2, *range(300, 330)]]
    report = run_gate(
        load_model(exported.run.output_dir / "merged"),
        corrupted,
        [],
        prompts,
        [],
        None,
        exported.parity,
    )
    assert report.top1_agreement < exported.parity.min_top1_agreement
    with pytest.raises(ParityGateFailed, match="top-1"):
        enforce(report)


def test_export_without_adapter_is_a_clear_error(tiny_config: TinyConfig) -> None:
    from raildebug.errors import NotFound

    with pytest.raises(NotFound, match="train finetune"):
        export_run(tiny_config())


def test_perplexity_counts_answer_tokens_only(exported: TrainingConfig) -> None:
    from llama_cpp import Llama

    llama = Llama(
        model_path=str(exported.run.output_dir / "export" / "model-f16.gguf"),
        n_ctx=128,
        logits_all=True,
        verbose=False,
        n_threads=2,
    )
    ids = [2, *range(40, 70)]
    whole = perplexity(llama, [TokenizedExample(ids, 1)])
    tail = perplexity(llama, [TokenizedExample(ids, 20)])
    assert whole != pytest.approx(tail, rel=1e-3)
    assert perplexity(llama, [TokenizedExample(ids[:10] + ids[20:], 10)]) != pytest.approx(tail)


def test_gate_tells_a_base_with_its_adapter_from_the_base_alone(
    exported: TrainingConfig,
) -> None:
    """The adapter deliverable is measured with the adapter applied; without it the answers'
    perplexity moves, which is what a quantization that erases the update looks like."""
    export = exported.run.output_dir / "export"
    texts = [
        TokenizedExample([2, *range(100, 140)], 25),
        TokenizedExample([2, *range(500, 530)], 12),
    ]
    report = run_gate(
        load_model(exported.run.output_dir / "merged"),
        export / "model-f16.gguf",
        [
            Deliverable("base alone", export / "base-f16.gguf"),
            Deliverable("base + adapter", export / "base-f16.gguf", export / "adapter-lora.gguf"),
        ],
        [texts[0].input_ids],
        texts,
        None,
        exported.parity,
    )
    with_adapter = report.perplexity_ratio["base + adapter"]
    assert with_adapter == pytest.approx(1.0, abs=1e-3)
    assert abs(report.perplexity_ratio["base alone"] - 1.0) > 10 * abs(with_adapter - 1.0)


def test_inference_engine_applies_the_adapter_like_the_merged_model(
    exported: TrainingConfig,
) -> None:
    """The serving path (llama_native, as LlamaEngine builds it) with lora_path set."""
    import llama_cpp

    from services.inference.llama_native import NativeContext, NativeModel, TokenBatch

    export = exported.run.output_dir / "export"
    ids = [2, 15, 300, 8, 61, 7]

    def last_logits(model_path: Path, lora: Path | None = None) -> np.ndarray:
        model = NativeModel(model_path, 0, lora)
        context = NativeContext(model, n_ctx=64, n_batch=16, n_seq_max=1, n_threads=2)
        batch = TokenBatch(16)
        try:
            for pos, token in enumerate(ids):
                batch.add(token, pos, 0, pos == len(ids) - 1)
            assert context.decode(batch) == 0
            row = llama_cpp.llama_get_logits_ith(context.ctx, len(ids) - 1)
            return np.ctypeslib.as_array(row, shape=(model.n_vocab,)).copy()
        finally:
            batch.close()
            context.close()
            model.close()

    merged = last_logits(export / "model-f16.gguf")
    applied = last_logits(export / "base-f16.gguf", export / "adapter-lora.gguf")
    base = last_logits(export / "base-f16.gguf")
    np.testing.assert_allclose(applied, merged, atol=2e-2)
    assert np.abs(base - merged).max() > 10 * np.abs(applied - merged).max()


def test_missing_adapter_file_is_a_clear_error(tmp_path: Path) -> None:
    from raildebug.errors import NotFound
    from services.inference.model_files import check_lora_path

    assert check_lora_path(None) is None
    with pytest.raises(NotFound, match="RAILDEBUG_INFERENCE_LORA_PATH"):
        check_lora_path(tmp_path / "adapter-lora.gguf")
