"""Measure the storage of the adapted linear layers: bf16 vs 4-bit NF4 (QLoRA's frozen base).

    python -m training.linear_memory --config training/configs/gemma-270m-cpu.yaml \\
        [--output-dir DIR]   # prints a table, writes DIR/linear_memory.{json,png}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.config import load_training_config
from training.modeling import base_dir, linear_weight_bytes, load_model, materialize_base
from training.reporting import write_json

_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args()
    config = load_training_config(args.config)
    if args.output_dir:
        config.run.output_dir = args.output_dir
    materialize_base(config)
    qlora = config.lora.model_copy(update={"method": "qlora"})
    rows = {}
    for label, model in (
        ("bf16", load_model(base_dir(config), "bfloat16")),
        ("nf4", load_model(base_dir(config), "float32", qlora)),
    ):
        rows[label] = {
            "attention_qkvo_mib": linear_weight_bytes(model, _ALL_LINEAR[:4]) / 2**20,
            "all_linear_mib": linear_weight_bytes(model, _ALL_LINEAR) / 2**20,
        }
        del model
    print(f"{'weights':<10}{'q/k/v/o MiB':>14}{'all linear MiB':>16}")
    for label, row in rows.items():
        print(f"{label:<10}{row['attention_qkvo_mib']:>14.2f}{row['all_linear_mib']:>16.2f}")
    ratio = rows["nf4"]["all_linear_mib"] / rows["bf16"]["all_linear_mib"]
    print(f"nf4 / bf16 (all linear): {ratio:.3f}")
    out = config.run.output_dir
    write_json(out / "linear_memory.json", {**rows, "nf4_over_bf16": ratio})
    _plot(rows, out / "linear_memory.png")


def _plot(rows: dict[str, dict[str, float]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5))
    labels = list(rows)
    axes.bar(labels, [rows[k]["all_linear_mib"] for k in labels])
    axes.set_ylabel("MiB (decoder linear weights)")
    axes.set_title("Frozen base storage: bf16 vs NF4 (double quant)")
    figure.tight_layout()
    figure.savefig(target, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
