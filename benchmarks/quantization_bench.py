"""Quantization check: what requantizing the default model costs in quality, and what it buys.

    .venv/bin/python benchmarks/quantization_bench.py [--models a,b] [--threads 2] [--repeats 3]

For each catalog model (default: the packaged Qwen2.5-Coder-0.5B-Instruct and its Q4_0
requantization), on the same held-out rail text (sample-corpus documents, which no model was
trained on), in one run:
- perplexity over the same token windows (the quality guard: Q4_0 must stay within a few per
  cent of the packaged file);
- prefill tokens/s (a 512-token window) and decode tokens/s (64 single-token steps), the two
  rates that set time to first token and answer time on CPU; arms interleaved per repeat, the
  load average recorded beside each figure.
Prints a table and writes benchmarks/results/quantization_bench.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.model_files import resolve_model_path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
HELD_OUT = sorted((REPO / "data" / "sample-corpus" / "docs").glob("*.md"))
WINDOW = 512


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="qwen2.5-coder-0.5b-instruct,qwen2.5-coder-0.5b-instruct-q4_0"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", type=int, default=12, help="perplexity windows")
    args = parser.parse_args()
    from llama_cpp import Llama

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    models = {}
    for name in names:
        path = resolve_model_path(None, _cache_dir(), name)
        models[name] = Llama(
            str(path), n_ctx=WINDOW + 64, n_threads=args.threads, logits_all=True, verbose=False
        )
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in HELD_OUT)
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        tokens = model.tokenize(text.encode(), add_bos=False)
        windows = [tokens[i : i + WINDOW] for i in range(0, len(tokens) - WINDOW, WINDOW)]
        results[name] = {
            "perplexity": perplexity(model, windows[: args.windows]),
            "file_bytes": os.path.getsize(model.model_path),
            "prefill": [],
            "decode": [],
            "load": [],
        }
        print(f"{name}: perplexity {results[name]['perplexity']:.3f}", flush=True)
    probe = models[names[0]].tokenize(text.encode(), add_bos=False)[:WINDOW]
    for _ in range(args.repeats):
        for name, model in models.items():  # interleaved: load hits every arm alike
            prefill, decode = speed(model, probe)
            results[name]["prefill"].append(prefill)
            results[name]["decode"].append(decode)
            results[name]["load"].append(os.getloadavg()[0])
    base = results[names[0]]
    for r in results.values():
        r["prefill_tok_s"] = statistics.median(r["prefill"])
        r["decode_tok_s"] = statistics.median(r["decode"])
        r["perplexity_ratio"] = r["perplexity"] / base["perplexity"]
        r["prefill_ratio"] = r["prefill_tok_s"] / statistics.median(base["prefill"])
        r["decode_ratio"] = r["decode_tok_s"] / statistics.median(base["decode"])
    print(table(results, args.threads))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "repeats": args.repeats, "window": WINDOW}
    (RESULTS / "quantization_bench.json").write_text(
        json.dumps({"settings": meta, "models": results}, indent=2) + "\n"
    )
    plot(results, RESULTS / "quantization_bench.png")
    return 0


def _cache_dir() -> Path:
    from raildebug.settings import InferenceSettings

    return InferenceSettings().model_cache_dir


def perplexity(model: Any, windows: list[list[int]]) -> float:
    """exp(mean negative log-likelihood) of every token after the first, per window."""
    total, count = 0.0, 0
    for window in windows:
        model.reset()
        model.eval(window)
        logits = np.asarray(model.scores[: len(window)], dtype=np.float64)
        shifted = logits[:-1] - logits[:-1].max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        targets = np.asarray(window[1:])
        total -= float(log_probs[np.arange(len(targets)), targets].sum())
        count += len(targets)
    return math.exp(total / max(count, 1))


def speed(model: Any, probe: list[int], steps: int = 64) -> tuple[float, float]:
    model.reset()
    started = time.perf_counter()
    model.eval(probe)
    prefill = len(probe) / (time.perf_counter() - started)
    started = time.perf_counter()
    for token in probe[:steps]:
        model.eval([token])
    return prefill, steps / (time.perf_counter() - started)


def table(results: dict[str, dict[str, Any]], threads: int) -> str:
    lines = [
        f"held-out rail text, {WINDOW}-token windows, {threads} threads; medians, ratios to the "
        "first model",
        f"{'model':<36} {'MB':>5} {'ppl':>7} {'x':>5} {'prefill/s':>10} {'x':>5} "
        f"{'decode/s':>9} {'x':>5} {'load':>9}",
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<36} {r['file_bytes'] / 1e6:5.0f} {r['perplexity']:7.3f} "
            f"{r['perplexity_ratio']:5.3f} {r['prefill_tok_s']:10.1f} {r['prefill_ratio']:5.2f} "
            f"{r['decode_tok_s']:9.1f} {r['decode_ratio']:5.2f} "
            f"{min(r['load']):4.1f}-{max(r['load']):3.1f}"
        )
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for axis, key, title in zip(
        axes,
        ("perplexity", "prefill_tok_s", "decode_tok_s"),
        ("perplexity (lower is better)", "prefill tokens/s", "decode tokens/s"),
        strict=True,
    ):
        axis.bar(range(len(names)), [results[n][key] for n in names])
        axis.set_xticks(range(len(names)), [n.replace("-instruct", "") for n in names], fontsize=7)
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
