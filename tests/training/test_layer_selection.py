"""Choosing the layers a pruned student keeps: measured influence, llama.cpp's attention pattern."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from raildebug.errors import InvalidRequest
from tests.support.training import TinyConfig
from training.dataset.formatting import TokenizedExample
from training.layer_selection import (
    block_influence,
    llama_cpp_layer_types,
    most_influential_layers,
)
from training.modeling import load_model

GEMMA_18 = llama_cpp_layer_types(18)


def _brute_force(types: list[str], influence: list[float], n_keep: int) -> float:
    wanted = llama_cpp_layer_types(n_keep)
    return max(
        sum(influence[i] for i in keep)
        for keep in itertools.combinations(range(len(types)), n_keep)
        if [types[i] for i in keep] == wanted
    )


@pytest.mark.parametrize("n_keep", [6, 9, 12])
def test_the_choice_is_the_best_that_llama_cpp_can_run(n_keep: int) -> None:
    rng = random.Random(n_keep)
    for _ in range(3):
        influence = [rng.random() for _ in GEMMA_18]
        keep = most_influential_layers(GEMMA_18, influence, n_keep)
        assert keep == sorted(keep) and len(set(keep)) == n_keep
        assert [GEMMA_18[i] for i in keep] == llama_cpp_layer_types(n_keep)
        assert sum(influence[i] for i in keep) == pytest.approx(
            _brute_force(GEMMA_18, influence, n_keep)
        )


def test_without_attention_types_the_most_influential_layers_stay_in_order() -> None:
    assert most_influential_layers(None, [0.9, 0.1, 0.5, 0.05, 0.7], 3) == [0, 2, 4]


def test_an_impossible_pattern_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="keep_layers"):
        most_influential_layers(["full_attention"] * 3, [1.0, 1.0, 1.0], 2)
    with pytest.raises(InvalidRequest, match=r"1\.\.3 layers"):
        most_influential_layers(None, [1.0, 1.0, 1.0], 4)


def test_a_layer_that_adds_nothing_has_no_influence(tiny_config: TinyConfig) -> None:
    model = load_model(tiny_config().run.output_dir / "base")
    silent = model.model.layers[1]
    with torch.no_grad():  # both residual branches write zeros: the layer passes its input on
        silent.self_attn.o_proj.weight.zero_()
        silent.mlp.down_proj.weight.zero_()
    examples = [TokenizedExample(input_ids=[2, 10, 11, 12, 13], answer_start=3)]
    influence = block_influence(model, examples)
    assert len(influence) == 2
    assert influence[0] > 1e-3
    assert influence[1] == pytest.approx(0.0, abs=1e-6)
