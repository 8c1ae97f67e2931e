"""Bad configs fail at load time, naming the key, before any model is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.cli.main import main
from raildebug.errors import InvalidRequest
from training.config import load_training_config

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lora: {rank: 8}", "lora.rank: Extra inputs are not permitted"),
        ("lora: {method: int3}", "lora.method"),
        ("optimization: {learning_rate: -1}", "optimization.learning_rate"),
        ("run: {name: Not_A_Label}", "run.name"),
        ("model: {source: hf}", "model.path is required"),
        ("data: {train_path: /nonexistent/train.jsonl}", "data.train_path: /nonexistent"),
        ("data: {prompt_template: rail_fix@99}", "data.prompt_template"),
        ("[1, 2]", "must be a mapping"),
        ("lora: {r: [", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InvalidRequest, match="training config") as raised:
        load_training_config(_write(tmp_path, text))
    assert expected in str(raised.value)


def test_cli_reports_bad_config_without_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, f"run: {{output_dir: {tmp_path / 'out'}}}\nlora: {{alpha: 0}}")
    assert main(["train", "finetune", "--config", str(path)]) == 2
    assert "lora.alpha" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["tiny-cpu.yaml", "gemma-270m-cpu.yaml", "gpu-fsdp.yaml"])
def test_example_configs_are_valid(name: str) -> None:
    config = load_training_config(REPO / "training" / "configs" / name)
    assert config.lora.r >= 1


def test_defaults_match_the_issue() -> None:
    config = load_training_config(REPO / "training" / "configs" / "gemma-270m-cpu.yaml")
    lora = config.lora
    assert (lora.r, lora.alpha, lora.dropout) == (16, 32, 0.05)
    assert lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (lora.quant_type, lora.double_quant, lora.compute_dtype) == ("nf4", True, "bfloat16")
