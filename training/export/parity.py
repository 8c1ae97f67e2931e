"""The parity gate: an export that silently changed the model fails the run.

1. The float GGUF's top-1 next token equals the merged HF model's at >= min_top1_agreement of
   positions over a fixed prompt set (catches wrong tensor names, norms, layouts, tokenizers).
2. The Q4_K_M file's perplexity on held-out text is <= max_perplexity_ratio x the float file's.
3. The fine-tuned GGUF loads in the inference service's engine and answers in the trained format.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raildebug.errors import RailDebugError
from training.config import ParitySection


class ParityGateFailed(RailDebugError):
    """An exported file does not behave like the model it was exported from."""


@dataclass
class GateReport:
    top1_agreement: float = 0.0
    positions: int = 0
    max_abs_logit_diff: float = 0.0
    perplexity_float: float | None = None
    perplexity_quantized: float | None = None
    perplexity_ratio: float | None = None
    serving_answer: str | None = None
    serving_ok: bool | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def run_gate(
    hf_model: Any,
    float_gguf: Path,
    quantized_gguf: Path | None,
    prompts: list[list[int]],
    heldout: list[list[int]],
    serving_prompt: str | None,
    settings: ParitySection,
) -> GateReport:
    """Check every condition, then raise ParityGateFailed listing all that failed."""
    report = GateReport()
    context = max(len(t) for t in [*prompts, *heldout]) + 8
    float_llama = _llama(float_gguf, context)
    agree = total = 0
    worst = 0.0
    for ids in prompts:
        reference = _hf_logits(hf_model, ids)
        exported = _gguf_logits(float_llama, ids)
        agree += int((reference.argmax(-1) == exported.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, float(np.abs(reference - exported).max()))
    report.top1_agreement, report.positions, report.max_abs_logit_diff = agree / total, total, worst
    if report.top1_agreement < settings.min_top1_agreement:
        report.failures.append(
            f"{float_gguf.name} agrees with the merged HF model on the top-1 token at "
            f"{report.top1_agreement:.2%} of {total} positions "
            f"(< {settings.min_top1_agreement:.0%})"
        )
    if quantized_gguf is not None:
        report.perplexity_float = perplexity(float_llama, heldout)
        report.perplexity_quantized = perplexity(_llama(quantized_gguf, context), heldout)
        report.perplexity_ratio = report.perplexity_quantized / report.perplexity_float
        if report.perplexity_ratio > settings.max_perplexity_ratio:
            report.failures.append(
                f"{quantized_gguf.name} perplexity {report.perplexity_quantized:.3f} is "
                f"{report.perplexity_ratio:.3f}x the float file's {report.perplexity_float:.3f} "
                f"(> {settings.max_perplexity_ratio}x)"
            )
    del float_llama
    if settings.check_serving and serving_prompt is not None:
        served = quantized_gguf or float_gguf
        report.serving_answer = serve_once(served, serving_prompt, settings.serving_max_tokens)
        report.serving_ok = re.search(settings.answer_format, report.serving_answer) is not None
        if not report.serving_ok:
            report.failures.append(
                f"{served.name} served by LlamaEngine answered {report.serving_answer[:120]!r}, "
                f"which does not match the trained format {settings.answer_format!r}"
            )
    return report


def enforce(report: GateReport) -> None:
    if not report.passed:
        raise ParityGateFailed("parity gate failed: " + "; ".join(report.failures))


def perplexity(llama: Any, sequences: list[list[int]]) -> float:
    nll = count = 0.0
    for ids in sequences:
        logits = _gguf_logits(llama, ids)[:-1].astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(-1))
        targets = np.asarray(ids[1:])
        nll -= float((shifted[np.arange(len(targets)), targets] - log_z).sum())
        count += len(targets)
    return float(np.exp(nll / count))


def serve_once(gguf: Path, prompt: str, max_tokens: int) -> str:
    """Greedy answer through the inference service's own engine (same stops, same loading)."""
    from services.inference.engine import LlamaEngine
    from services.inference.models import GenerationRequest, Sampling, TextDelta
    from services.orchestrator.prompting import load_template

    engine = LlamaEngine(gguf, n_ctx=4096, n_threads=2, default_max_tokens=max_tokens)
    try:
        request = GenerationRequest(
            prompt=prompt,
            max_tokens=max_tokens,
            sampling=Sampling(temperature=0.0, seed=0),
            stop=load_template("rail_fix@1").stop,
        )
        return "".join(e.text for e in engine.generate(request) if isinstance(e, TextDelta))
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()


def _llama(path: Path, n_ctx: int) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        logits_all=True,
        n_threads=2,
        verbose=False,
    )


def _gguf_logits(llama: Any, ids: list[int]) -> np.ndarray:
    llama.reset()
    llama.eval(ids)
    return np.array(llama.scores[: len(ids)], dtype=np.float32)


@torch.no_grad()
def _hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    output = model(input_ids=torch.tensor([ids]), use_cache=False)
    return np.asarray(output.logits[0].float().numpy(), dtype=np.float32)
