"""The YAML config of one training run. Every option has a documented default.

Validation happens when the file is loaded, so a bad config fails before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raildebug.errors import InvalidRequest, NotFound

TRAINING_DIR = Path(__file__).resolve().parent
SHIPPED_DATASET = TRAINING_DIR / "datasets" / "rail_sft"
Quantization = Literal["Q8_0", "Q4_K_M"]
QUANTIZATIONS: tuple[Quantization, ...] = ("Q8_0", "Q4_K_M")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a key is an error, not a silent default


class RunSection(Section):
    name: str = Field(
        "raildebug-sft",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$",
        description="Run name; also the Kubernetes Job name (DNS-1123 label).",
    )
    seed: int = Field(1234, description="Seeds Python, NumPy and torch for reproducible runs.")
    output_dir: Path = Field(
        Path("runs/raildebug-sft"), description="Checkpoints, metrics, plots and exports go here."
    )


class DistributedSection(Section):
    nodes: int = Field(1, ge=1, description="Machines (pods of the Indexed Job).")
    gpus_per_node: int = Field(0, ge=0, description="Processes per node; 0 runs one CPU process.")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto: nccl with GPUs, gloo without."
    )


class TinyModelSection(Section):
    """A randomly initialised Gemma 3 text model: tests and smoke runs, not quality."""

    hidden_size: int = Field(64, ge=8, description="Width of the residual stream.")
    intermediate_size: int = Field(128, ge=8, description="Width of the MLP.")
    num_hidden_layers: int = Field(2, ge=1, description="Decoder layers.")
    num_attention_heads: int = Field(4, ge=1, description="Query heads.")
    num_key_value_heads: int = Field(1, ge=1, description="Key/value heads (GQA).")
    head_dim: int = Field(16, ge=4, description="Width of one attention head.")
    initializer_range: float = Field(
        0.3,
        gt=0,
        description=(
            "Std of the random weights; above HF's 0.02 so that a narrow model's tied output "
            "logits are not all near zero (which adapters behind the final norm cannot fix)."
        ),
    )


class ModelSection(Section):
    source: Literal["gguf", "hf", "tiny"] = Field(
        "gguf",
        description=(
            "gguf: dequantize a GGUF file through transformers' gguf_file= loading (default: the "
            "packaged Gemma 3 270M); hf: a Hugging Face model directory or hub id; tiny: a random "
            "Gemma 3 config (shape in `tiny`) with the packaged tokenizer."
        ),
    )
    path: str | None = Field(
        None,
        description="GGUF file (source=gguf) or HF model path (source=hf); None: packaged model.",
    )
    tokenizer_gguf: Path | None = Field(
        None,
        description=(
            "GGUF whose tokenizer is written into exports; None: the base GGUF (source=gguf) or "
            "the packaged Gemma 3 file (tiny models share its vocabulary)."
        ),
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Dtype of the trainable model; float32 on CPU is fastest here."
    )
    tiny: TinyModelSection = Field(default_factory=TinyModelSection)

    @model_validator(mode="after")
    def _hf_needs_path(self) -> ModelSection:
        if self.source == "hf" and not self.path:
            raise ValueError("model.path is required when model.source is 'hf'")
        return self


class DataSection(Section):
    train_path: Path = Field(
        SHIPPED_DATASET / "train.jsonl", description="SFT examples (JSONL) used for training."
    )
    heldout_path: Path = Field(
        SHIPPED_DATASET / "heldout.jsonl", description="Held-out SFT examples for evaluation."
    )
    feedback_path: Path | None = Field(
        None, description="Orchestrator feedback export (JSONL); well-rated answers are added."
    )
    feedback_min_score: float = Field(
        0.5, ge=-1.0, le=1.0, description="Feedback answers scored at least this are kept."
    )
    prompt_template: str = Field(
        "rail_fix@1", description="Orchestrator template that renders every training prompt."
    )
    max_seq_len: int = Field(768, ge=16, description="Longer examples are cut from the left.")
    max_train_examples: int | None = Field(
        None, ge=1, description="Use only the first N training examples (short schedules)."
    )
    max_heldout_examples: int | None = Field(
        None, ge=1, description="Evaluate on only the first N held-out examples."
    )


class LoraSection(Section):
    method: Literal["lora", "qlora"] = Field(
        "lora",
        description="qlora: frozen base in 4-bit (bitsandbytes), adapters in full precision.",
    )
    r: int = Field(16, ge=1, description="Rank of the adapter matrices.")
    alpha: int = Field(32, ge=1, description="Scale numerator: updates are scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Linear layers that get adapters.",
    )
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="QLoRA 4-bit data type.")
    double_quant: bool = Field(True, description="QLoRA: quantize the quantization constants too.")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16", description="QLoRA: dtype the 4-bit weights are dequantized to for matmuls."
    )


class OptimizationSection(Section):
    learning_rate: float = Field(2e-4, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on adapter weights.")
    scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup."
    )
    warmup_steps: int = Field(10, ge=0, description="Linear warmup steps.")
    max_steps: int = Field(200, ge=1, description="Optimizer steps of the run.")
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch (per process).")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")


class EvalSection(Section):
    every_steps: int = Field(50, ge=1, description="Evaluate on the held-out split this often.")
    batch_size: int = Field(4, ge=1, description="Examples per evaluation batch.")


class CheckpointSection(Section):
    every_steps: int = Field(50, ge=1, description="Save a resumable checkpoint this often.")
    keep_last: int = Field(2, ge=1, description="Older step checkpoints are deleted.")


class ExportSection(Section):
    outtype: Literal["f16", "f32"] = Field(
        "f16", description="Float type of the unquantized GGUF (gate reference and quant input)."
    )
    quantizations: list[Quantization] = Field(
        default_factory=lambda: list(QUANTIZATIONS),
        description="llama.cpp quantizations written next to the float GGUF.",
    )
    adapter_gguf: bool = Field(
        True, description="Also write the adapter alone as a GGUF LoRA for llama.cpp."
    )
    model_name: str = Field("RailDebug Gemma 3 270M SFT", description="general.name in the GGUF.")


class ParitySection(Section):
    prompts: int = Field(8, ge=1, description="Held-out prompts in the fixed parity set.")
    max_prompt_tokens: int = Field(384, ge=8, description="Prompts are cut to this many tokens.")
    min_top1_agreement: float = Field(
        0.99, ge=0, le=1, description="Float GGUF vs merged HF: share of equal top-1 tokens."
    )
    max_perplexity_ratio: float = Field(
        1.05,
        ge=1,
        description="Each quantized deliverable's perplexity on held-out answers over the "
        "float GGUF's.",
    )
    check_serving: bool = Field(
        True, description="Load the fine-tuned GGUF in LlamaEngine and check the answer format."
    )
    serving_max_tokens: int = Field(64, ge=1, description="Tokens generated by the serving check.")
    answer_format: str = Field(
        r"(?s)\S.*\[\d+\]|Fix:",
        description="Regex the served answer must match (trained format: cites or a Fix: line).",
    )


class DistillationSection(Section):
    questions: int = Field(64, ge=1, description="Training questions the teacher answers.")
    max_new_tokens: int = Field(96, ge=1, description="Teacher answer length (greedy).")
    top_k: int = Field(20, ge=1, description="Teacher logits stored per answer position.")
    temperature: float = Field(2.0, gt=0, description="Softening temperature T.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of T^2*KL; 1-alpha weighs the CE.")
    keep_layers: list[int] | None = Field(
        None,
        description=(
            "Teacher layers the student keeps; None: the most influential ones that llama.cpp "
            "can run (training/layer_selection.py)."
        ),
    )
    student_layers: int | None = Field(
        None, ge=1, description="Layers the student keeps when keep_layers is unset; None: half."
    )
    max_steps: int = Field(100, ge=1, description="Student optimizer steps.")
    learning_rate: float = Field(5e-4, gt=0, description="Student learning rate (full weights).")
    batch_size: int = Field(4, ge=1, description="Student micro-batch.")
    ablation: bool = Field(True, description="Also train the same student with CE only.")


class KubernetesSection(Section):
    """Where `raildebug train submit` runs the Job (training/k8s_job.py renders it)."""

    namespace: str = Field("raildebug", description="Namespace of the Job and its objects.")
    image: str = Field(
        "ghcr.io/raildebug/training:0.1.0", description="Training image (pinned tag or digest)."
    )
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels GPU ranks must run on (unused when gpus_per_node is 0).",
    )
    cpu: str = Field("8", description="CPU request and limit per pod.")
    memory: str = Field("64Gi", description="Memory request and limit per pod.")
    checkpoint_storage: str = Field("100Gi", description="Size of the checkpoint volume.")
    storage_class: str | None = Field(
        None, description="StorageClass of the checkpoint volume (ReadWriteMany if nodes > 1)."
    )
    backoff_limit: int = Field(
        3, ge=0, description="Retries of the whole run (each resumes) before the Job gives up."
    )
    ttl_seconds_after_finished: int = Field(
        86400, ge=0, description="Finished Jobs (not checkpoints) are deleted after this."
    )


class TrainingConfig(Section):
    run: RunSection = Field(default_factory=RunSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    optimization: OptimizationSection = Field(default_factory=OptimizationSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    checkpointing: CheckpointSection = Field(default_factory=CheckpointSection)
    export: ExportSection = Field(default_factory=ExportSection)
    parity: ParitySection = Field(default_factory=ParitySection)
    distillation: DistillationSection = Field(default_factory=DistillationSection)

    @model_validator(mode="after")
    def _qlora_single_process(self) -> TrainingConfig:
        if (
            self.lora.method == "qlora"
            and self.distributed.nodes * self.distributed.gpus_per_node > 1
        ):
            raise ValueError(
                "lora.method qlora runs on one process only: the installed bitsandbytes has no "
                "FSDP2 support for 4-bit weights; use lora.method lora for multi-GPU runs"
            )
        return self

    kubernetes: KubernetesSection = Field(default_factory=KubernetesSection)


def load_training_config(path: Path) -> TrainingConfig:
    """Parse and validate a run config; errors name the file and the offending keys."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InvalidRequest(f"training config {path} does not exist") from None
    except yaml.YAMLError as error:
        raise InvalidRequest(f"training config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"training config {path} must be a mapping of sections")
    try:
        config = TrainingConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise InvalidRequest(f"training config {path}: {problems}") from None
    _check_files(config, path)
    return config


def _check_files(config: TrainingConfig, path: Path) -> None:
    """Missing inputs are config errors too: say so now, not after an hour of training."""
    missing = [
        f"{key}: {value}"
        for key, value in (
            ("data.train_path", config.data.train_path),
            ("data.heldout_path", config.data.heldout_path),
            ("data.feedback_path", config.data.feedback_path),
            ("model.tokenizer_gguf", config.model.tokenizer_gguf),
            (
                "model.path",
                Path(config.model.path)
                if config.model.source == "gguf" and config.model.path
                else None,
            ),
        )
        if value is not None and not Path(value).is_file()
    ]
    if missing:
        raise InvalidRequest(f"training config {path}: files not found: {'; '.join(missing)}")
    from services.orchestrator.prompting import load_template

    try:
        load_template(config.data.prompt_template)
    except (NotFound, ValueError) as error:
        raise InvalidRequest(f"training config {path}: data.prompt_template: {error}") from None
