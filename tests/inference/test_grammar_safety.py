"""No grammar, schema or sampling value can take the inference process down or end as UNKNOWN.

llama.cpp throws "Unexpected empty grammar stack after accepting piece" from C++ (which aborts
the process) when sampling reaches a point its grammar leaves no way out of. Grammars that can
be seen to do that are refused up front; whatever is only found while sampling ends that one
stream with an error outcome. JSON schemas the converter cannot handle, and NaN or infinite
sampling values, are INVALID_ARGUMENT with the reason.
"""

from __future__ import annotations

import json
import math

import pytest

from raildebug.domain import FinishReason
from raildebug.errors import InvalidRequest
from services.inference import sampling
from services.inference.engine import LlamaEngine
from services.inference.grammar import (
    MAX_GRAMMAR_NESTING,
    MAX_SCHEMA_COUNT,
    check_grammar,
    schema_to_grammar,
)
from services.inference.models import GenerationRequest, Sampling
from services.inference.validation import validate
from tests.support.engine import GREEDY, run

# --- fast: checks that need no model ---------------------------------------------------------


@pytest.mark.parametrize(
    ("grammar", "message"),
    [
        ("root ::= [z-a]", "empty character range"),
        ('root ::= "E" [9-0]', "empty character range"),
        (r"root ::= [^\x01-\U0010FFFF]", "matches no character"),
        (r"root ::= [\x00]", "matches no character"),
        (r'root ::= "a\x00"', "NUL character"),
        (
            "root ::= " + "(" * (MAX_GRAMMAR_NESTING + 1) + '"a"' + ")" * (MAX_GRAMMAR_NESTING + 1),
            "nests groups",
        ),
        ('root ::= "a"{0,99999}', "repetition counts are limited"),
    ],
)
def test_grammars_that_would_crash_or_never_match_are_refused(grammar: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_grammar(grammar)


@pytest.mark.parametrize(
    "grammar",
    [
        'root ::= "E" [0-9] [0-9] "-" ("A" | "B" | "C")',
        r"root ::= [^\x02-\U0010FFFF] | [\]-]",  # [\x01] is still writable; "-" is literal
        'root ::= "[z-a]" # a literal and a comment: (((( [z-a]',
        'root ::= ("a"{0,2000})',
    ],
)
def test_good_grammars_pass_the_checks(grammar: str) -> None:
    check_grammar(grammar)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ('{"type":"nonsense"}', "Unrecognized schema"),
        ('{"type":"string","pattern":"("}', "Pattern must start"),
        ('{"$ref":"#/$defs/missing"}', "does not support"),
        ('{"$ref":"https://example.com/schema.json"}', "remote schemas is not allowed"),
        ('{"enum":5}', "does not support"),
        ('{"items":[]}', "does not support"),
        ('{"type":"object","properties":5}', "does not support"),
        ('{"type":"string","minLength":100000000}', f"from 0 to {MAX_SCHEMA_COUNT}"),
        ('{"type":"string","maxLength":1e308}', f"from 0 to {MAX_SCHEMA_COUNT}"),
        ('{"type":"string","pattern":"^a{99999999}$"}', "repetition counts"),
        ('{"type":"string","pattern":"^((a{300}){300})$"}', "repeats too much"),
        ("[" * 5000 + "]" * 5000, "nests deeper"),
        ('{"a":' * 100 + "{}" + "}" * 100, "nests deeper"),
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
    ],
)
def test_unconvertible_json_schemas_are_invalid_arguments(schema: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as refused:
        schema_to_grammar(schema)
    assert len(str(refused.value)) < 1000


def test_a_supported_schema_still_converts() -> None:
    schema = {
        "type": "object",
        "properties": {
            "aspect": {"enum": ["red", "green"]},
            "code": {"type": "string", "maxLength": 16},
        },
        "required": ["aspect"],
    }
    assert "root ::=" in schema_to_grammar(json.dumps(schema))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (Sampling(repeat_penalty=math.nan), "repeat_penalty"),
        (Sampling(repeat_penalty=math.inf), "repeat_penalty"),
        (Sampling(repeat_penalty=0.5), "repeat_penalty"),
        (Sampling(temperature=math.nan), "temperature"),
        (Sampling(temperature=-math.inf), "temperature"),
        (Sampling(top_p=math.nan), "top_p"),
        (Sampling(top_p=math.inf), "top_p"),
        (Sampling(top_k=-1), "top_k"),
    ],
)
def test_nan_and_infinite_sampling_values_are_refused(params: Sampling, field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        validate(GenerationRequest(prompt="x", sampling=params), 8)


def test_request_ids_are_bounded() -> None:
    with pytest.raises(InvalidRequest, match="request_id is 1000001 characters"):
        validate(GenerationRequest(prompt="x", request_id="r" * 1_000_001), 8)
    with pytest.raises(InvalidRequest, match=r"request_id .* control characters"):
        validate(GenerationRequest(prompt="x", request_id="ab\0cd"), 8)
    validate(GenerationRequest(prompt="x", request_id="0f3a9c2e-client.7"), 8)


# --- model: the engine on the real Gemma -----------------------------------------------------


@pytest.mark.model
def test_an_empty_character_class_is_refused_and_the_engine_keeps_serving(
    engine: LlamaEngine,
) -> None:
    with pytest.raises(InvalidRequest, match="empty character range"):
        next(iter(engine.generate(GenerationRequest(prompt="x", grammar="root ::= [z-a]"))))
    _, outcome = run(engine, GenerationRequest(prompt="Points", max_tokens=2, sampling=GREEDY))
    assert outcome.finish_reason == FinishReason.LENGTH


@pytest.mark.model
def test_a_grammar_with_nothing_allowed_at_its_start_is_refused(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the text checks (switched off here), the vocabulary check still refuses it."""
    monkeypatch.setattr(sampling, "check_grammar", lambda grammar: None)
    with pytest.raises(InvalidRequest, match="allows no token at its start"):
        next(iter(engine.generate(GenerationRequest(prompt="x", grammar="root ::= [z-a]"))))


@pytest.mark.model
def test_a_grammar_that_dead_ends_mid_stream_ends_only_that_stream(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stuck point is found while sampling: that stream ends with an error outcome (before,
    llama.cpp threw from C++ and the process aborted); the engine serves the next request."""
    monkeypatch.setattr(sampling, "check_grammar", lambda grammar: None)
    text, outcome = run(
        engine,
        GenerationRequest(prompt="Say a:", grammar='root ::= "a" [z-a]', max_tokens=8),
    )
    assert text == "a"
    assert outcome.finish_reason == FinishReason.ERROR
    assert "grammar allows no token" in outcome.error
    _, outcome = run(engine, GenerationRequest(prompt="Points", max_tokens=2, sampling=GREEDY))
    assert outcome.finish_reason == FinishReason.LENGTH


@pytest.mark.model
def test_grammar_requests_with_every_sampler_still_follow_the_grammar(engine: LlamaEngine) -> None:
    """The grammar now masks outside llama.cpp's chain: penalties, top-k/p, seed still apply."""
    grammar = 'root ::= "E" [0-9] [0-9] "-" ("A" | "B" | "C")'
    for params in (
        Sampling(temperature=0.0),
        Sampling(temperature=0.9, top_k=5, top_p=0.9, repeat_penalty=1.3, seed=7),
        Sampling(temperature=1.5, top_k=2**32 - 1),
    ):
        text, outcome = run(
            engine, GenerationRequest(prompt="Error code:", grammar=grammar, sampling=params)
        )
        assert len(text) == 5 and text[0] == "E" and text[3] == "-", (params, text)
        assert outcome.finish_reason == FinishReason.EOS
