"""What a person looks at after a run: metrics JSONL, loss-curve PNG, summary JSON."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import torch


class MetricsLog:
    """Appends one JSON object per line; on resume, rows past the checkpoint are dropped so the
    file reads as one uninterrupted run."""

    def __init__(self, path: Path, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled  # one writer per run: other ranks get a disabled log
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("", encoding="utf-8")
        elif path.exists():
            rows = [r for r in read_metrics(path) if int(r.get("step", 0)) <= resume_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def write(self, **row: Any) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_losses(metrics: Path, target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    figure, axes = plt.subplots(figsize=(7, 4))
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss (answer tokens)")
    if evals:
        axes.plot(*zip(*evals, strict=True), "o-", label="held-out loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("cross-entropy (nats/token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)


def peak_memory_mib() -> dict[str, float]:
    """Peak resident memory of this process, and of the GPU allocator when there is one."""
    peak = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
