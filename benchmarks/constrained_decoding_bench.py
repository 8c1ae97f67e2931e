"""Constrained decoding benchmark: JSON-schema decoding vs unconstrained, same engine, same run.

    .venv/bin/python benchmarks/constrained_decoding_bench.py [--threads 2] [--repeats 3]
        [--model-path FILE]

Three arms on one `LlamaEngine` (packaged Gemma 3 270M Q4_K_M unless --model-path), greedy,
one stream, interleaved A/B/C per repeat so machine load hits every arm alike:
- free: no grammar;
- schema: a JSON schema, sampling first and checking the token against the grammar (served path);
- schema-masked: the same schema with the grammar masking the whole vocabulary every step (the
  path before sample-first checking).
Reports decode tokens/s (completion tokens / decode time) per arm, median and spread, the ratio
to `free`, the share of steps that needed the full-vocabulary pass, and the load average beside
each figure. Prints a table and writes benchmarks/results/constrained_decoding_bench.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from raildebug.domain import FinishReason, GenerationOutcome
from services.inference.engine import LlamaEngine
from services.inference.model_files import resolve_model_path
from services.inference.models import GenerationRequest, Sampling
from services.inference.sampling import SamplerChain

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "cause": {"type": "string"},
            "check": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "fix": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["cause", "check", "fix", "citations"],
    }
)
PROMPTS = [
    "Point P12 fails to lock and the controller logs E73-B. Answer as JSON (cause, check, fix):\n",
    "Track circuit TC-4 shows occupied with no train on it. Answer as JSON (cause, check, fix):\n",
    "Axle counter AC-7 counts out more axles than in. Answer as JSON (cause, check, fix):\n",
]
GREEDY = Sampling(temperature=0.0)


class PassCounter:
    """Counts the full-vocabulary grammar passes; `masked` forces one on every step."""

    def __init__(self) -> None:
        self.passes = 0
        self.masked = False
        slow = SamplerChain._sample_under_grammar
        fast_check = SamplerChain._grammar_allows
        counter = self

        def counted(chain: SamplerChain, logits: np.ndarray) -> int:
            counter.passes += 1
            return slow(chain, logits)

        def check(chain: SamplerChain, token: int, logit: float) -> bool:
            return False if counter.masked else fast_check(chain, token, logit)

        SamplerChain._sample_under_grammar = counted  # type: ignore[method-assign,assignment]
        SamplerChain._grammar_allows = check  # type: ignore[method-assign,assignment]


def _generate(engine: LlamaEngine, request: GenerationRequest) -> GenerationOutcome:
    outcome: GenerationOutcome | None = None
    text: list[str] = []
    for event in engine.generate(request):
        if isinstance(event, GenerationOutcome):
            outcome = event
        else:
            text.append(event.text)
    assert outcome is not None
    if request.json_schema and outcome.finish_reason != FinishReason.LENGTH:
        json.loads("".join(text), strict=False)  # every finished constrained output parses
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--model-path", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "constrained_decoding_bench.json")
    args = parser.parse_args()

    model = resolve_model_path(args.model_path, Path.home() / ".cache" / "raildebug" / "models")
    engine = LlamaEngine(model, n_ctx=4096, n_threads=args.threads, slots=1, max_queue=4)
    counter = PassCounter()
    arms = ("free", "schema", "schema-masked")
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    try:
        _generate(engine, GenerationRequest(prompt=PROMPTS[0], max_tokens=8, sampling=GREEDY))
        for repeat in range(args.repeats):
            for arm in arms:
                counter.masked = arm == "schema-masked"
                tokens, decode_ms, passes = 0, 0.0, 0
                for prompt in PROMPTS:
                    before = counter.passes
                    outcome = _generate(
                        engine,
                        GenerationRequest(
                            prompt=prompt,
                            max_tokens=args.max_tokens,
                            sampling=GREEDY,
                            json_schema=SCHEMA if arm != "free" else "",
                        ),
                    )
                    tokens += outcome.completion_tokens
                    decode_ms += outcome.decode_ms
                    passes += counter.passes - before
                runs[arm].append(
                    {
                        "tokens": tokens,
                        "tokens_per_s": tokens / (decode_ms / 1000),
                        "full_pass_share": passes / max(tokens, 1),
                        "load_average_1m": os.getloadavg()[0],
                    }
                )
                print(f"repeat {repeat + 1} {arm:<14} {runs[arm][-1]['tokens_per_s']:7.1f} tok/s")
    finally:
        engine.close()

    free = statistics.median(r["tokens_per_s"] for r in runs["free"])
    summary: dict[str, Any] = {}
    print(f"\n{'arm':<14} {'tok/s p50':>9} {'min':>7} {'max':>7} {'vs free':>8} {'full pass':>9}")
    for arm in arms:
        rates = [r["tokens_per_s"] for r in runs[arm]]
        median = statistics.median(rates)
        share = statistics.median(r["full_pass_share"] for r in runs[arm])
        summary[arm] = {
            "tokens_per_s_median": median,
            "tokens_per_s_min": min(rates),
            "tokens_per_s_max": max(rates),
            "ratio_to_free": median / free,
            "full_pass_share": share,
        }
        print(
            f"{arm:<14} {median:9.1f} {min(rates):7.1f} {max(rates):7.1f} "
            f"{median / free:7.2f}x {share:8.0%}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "model": str(model),
        "threads": args.threads,
        "repeats": args.repeats,
        "summary": summary,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2))
    _plot(summary, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")


def _plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(summary)
    medians = [summary[a]["tokens_per_s_median"] for a in arms]
    low = [m - summary[a]["tokens_per_s_min"] for a, m in zip(arms, medians, strict=True)]
    high = [summary[a]["tokens_per_s_max"] - m for a, m in zip(arms, medians, strict=True)]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.bar(arms, medians, yerr=[low, high], capsize=4, color=["#888", "#2a7", "#c63"])
    axis.set_ylabel("decode tokens/s (median, min-max)")
    axis.set_title("JSON-schema decoding vs unconstrained, same engine")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
