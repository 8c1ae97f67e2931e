"""Grammar sampling checks the sampled token first and masks the whole vocabulary only when the
grammar rejects it. On the real Gemma: greedy output is the same as masking every step, sampled
output still follows the schema, and most tokens never pay for the full-vocabulary pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.inference.engine import LlamaEngine
from services.inference.models import GenerationRequest, Sampling
from services.inference.sampling import SamplerChain
from tests.support.engine import GREEDY, run

pytestmark = pytest.mark.model

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "cause": {"type": "string", "maxLength": 80},
            "error_code": {"type": "string", "pattern": "^E[0-9]{2}-[A-C]$"},
            "retry": {"type": "boolean"},
        },
        "required": ["cause", "error_code", "retry"],
    }
)
PROMPT = "Point P12 failed to lock with error E73-B. Answer as JSON with the cause:\n"


def _request(sampling: Sampling) -> GenerationRequest:
    return GenerationRequest(prompt=PROMPT, json_schema=SCHEMA, max_tokens=96, sampling=sampling)


def _full_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the slow path's calls (the full-vocabulary grammar pass)."""
    calls = [0]
    slow = SamplerChain._sample_under_grammar

    def counted(self: SamplerChain, logits: np.ndarray) -> int:
        calls[0] += 1
        return slow(self, logits)

    monkeypatch.setattr(SamplerChain, "_sample_under_grammar", counted)
    return calls


def test_greedy_output_equals_masking_every_step(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_passes = _full_passes(monkeypatch)
    fast_text, fast = run(engine, _request(GREEDY))
    fast_passes = full_passes[0]
    monkeypatch.setattr(SamplerChain, "_grammar_allows", lambda self, token, logit: False)
    slow_text, slow = run(engine, _request(GREEDY))

    assert fast_text == slow_text
    assert fast.completion_tokens == slow.completion_tokens
    # every step masked, the end-of-sequence step too
    assert full_passes[0] - fast_passes == slow.completion_tokens + 1
    assert fast_passes < fast.completion_tokens / 2, (fast_passes, fast.completion_tokens)
    answer = json.loads(fast_text)
    assert set(answer) == {"cause", "error_code", "retry"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampled_output_still_follows_the_schema(engine: LlamaEngine, seed: int) -> None:
    sampling = Sampling(temperature=0.9, top_k=40, top_p=0.95, seed=seed)
    text, outcome = run(engine, _request(sampling))
    # strict=False: llama-cpp-python's schema converter lets strings hold control characters
    # (its `char` rule is [^"\\]), with or without the fast path.
    answer = json.loads(text, strict=False)
    assert isinstance(answer["cause"], str) and len(answer["cause"]) <= 80
    assert isinstance(answer["retry"], bool)
    assert answer["error_code"][0] == "E" and answer["error_code"][3] == "-", answer
    assert outcome.completion_tokens > 0
