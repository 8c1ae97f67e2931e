"""Training pipeline: data, LoRA/QLoRA fine-tuning, GGUF export with a parity gate,
distillation and FSDP scale-out, driven by one YAML config per run."""
