"""The parity gate: an export that silently changed the model fails the run.

1. The float GGUF's top-1 next token equals the merged HF model's at >= min_top1_agreement of
   positions over a fixed prompt set (catches wrong tensor names, norms, layouts, tokenizers).
2. Every quantized deliverable (a merged quantized GGUF, or a quantized base with the LoRA
   adapter applied at load time) has a perplexity on the held-out *answers* <= max_perplexity_ratio
   x the float file's. Answers, not whole texts: the prompts are mostly retrieved passages the
   fine-tune never targeted, and their perplexity can hide a quantization that erased the update.
3. The served deliverable loads in the inference service's engine and answers in the trained
   format.
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
from training.dataset.formatting import TokenizedExample


class ParityGateFailed(RailDebugError):
    """An exported file does not behave like the model it was exported from."""


@dataclass(frozen=True)
class Deliverable:
    """One quantized way to serve the fine-tune: a GGUF, optionally with a LoRA adapter."""

    label: str
    model: Path
    lora: Path | None = None


@dataclass
class GateReport:
    top1_agreement: float = 0.0
    positions: int = 0
    max_abs_logit_diff: float = 0.0
    answer_tokens: int = 0
    perplexity_float: float | None = None
    perplexity: dict[str, float] = field(default_factory=dict)
    perplexity_ratio: dict[str, float] = field(default_factory=dict)
    served: str | None = None
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
    deliverables: list[Deliverable],
    prompts: list[list[int]],
    heldout: list[TokenizedExample],
    serving_prompt: str | None,
    settings: ParitySection,
) -> GateReport:
    """Check every condition, then raise ParityGateFailed listing all that failed.

    The last deliverable is the one the serving check runs (the smallest to serve).
    """
    report = GateReport()
    context = max(len(t) for t in [*prompts, *(h.input_ids for h in heldout)]) + 8
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
    if deliverables and heldout:
        report.answer_tokens = sum(h.answer_tokens for h in heldout)
        reference_ppl = perplexity(float_llama, heldout)
        report.perplexity_float = reference_ppl
        for item in deliverables:
            value = perplexity(_llama(item.model, context, item.lora), heldout)
            ratio = value / reference_ppl
            report.perplexity[item.label], report.perplexity_ratio[item.label] = value, ratio
            if ratio > settings.max_perplexity_ratio:
                report.failures.append(
                    f"{item.label}: answer perplexity {value:.3f} is {ratio:.3f}x the float "
                    f"file's {reference_ppl:.3f} (> {settings.max_perplexity_ratio}x): "
                    "quantization changed what the model answers"
                )
    del float_llama
    if settings.check_serving and serving_prompt is not None:
        served = deliverables[-1] if deliverables else Deliverable(float_gguf.name, float_gguf)
        report.served = served.label
        report.serving_answer = serve_once(
            served.model, serving_prompt, settings.serving_max_tokens, served.lora
        )
        report.serving_ok = re.search(settings.answer_format, report.serving_answer) is not None
        if not report.serving_ok:
            report.failures.append(
                f"{served.label} served by LlamaEngine answered {report.serving_answer[:120]!r}, "
                f"which does not match the trained format {settings.answer_format!r}"
            )
    return report


def enforce(report: GateReport) -> None:
    if not report.passed:
        raise ParityGateFailed("parity gate failed: " + "; ".join(report.failures))


def perplexity(llama: Any, texts: list[TokenizedExample]) -> float:
    """exp(mean negative log-likelihood) of the answer tokens, each given everything before."""
    nll = count = 0.0
    for text in texts:
        logits = _gguf_logits(llama, text.input_ids)[:-1].astype(np.float64)
        shifted = logits - logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(-1))
        targets = np.asarray(text.input_ids[1:])
        log_p = shifted[np.arange(len(targets)), targets] - log_z
        answer = log_p[max(text.answer_start, 1) - 1 :]
        nll -= float(answer.sum())
        count += len(answer)
    return float(np.exp(nll / max(count, 1.0)))


def serve_once(gguf: Path, prompt: str, max_tokens: int, lora: Path | None = None) -> str:
    """Greedy answer through the inference service's own engine (same stops, same loading)."""
    from services.inference.engine import LlamaEngine
    from services.inference.models import GenerationRequest, Sampling, TextDelta
    from services.orchestrator.prompting import load_template

    engine = LlamaEngine(
        gguf, n_ctx=4096, n_threads=2, default_max_tokens=max_tokens, lora_path=lora
    )
    try:
        request = GenerationRequest(
            prompt=prompt,
            max_tokens=max_tokens,
            sampling=Sampling(temperature=0.0, seed=0),
            stop=load_template("rail_fix@1").stop,
        )
        return "".join(e.text for e in engine.generate(request) if isinstance(e, TextDelta))
    finally:
        engine.close()


def _llama(path: Path, n_ctx: int, lora: Path | None = None) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        lora_path=str(lora) if lora is not None else None,
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
