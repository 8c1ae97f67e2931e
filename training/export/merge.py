"""Fold the adapter into the full-precision base (never into 4-bit weights: rounding the sum
back to 4 bits would throw away most of what the adapter learned)."""

from __future__ import annotations

import shutil
from pathlib import Path

from training.modeling import load_model


def merge_adapter(base: Path, adapter: Path, target: Path) -> Path:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(base, "float32"), str(adapter))
    merged = model.merge_and_unload()
    merged.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy(base / name, target / name)
    return target
