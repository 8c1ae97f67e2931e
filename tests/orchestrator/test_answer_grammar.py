"""The answer grammars of the shipped chat prompts: they compile in llama.cpp for every shape of
request, and allow what each version promises (citations of passages that exist, abstention only
when identifiers are unknown, a code block only for questions with code)."""

from __future__ import annotations

import re

import pytest
from llama_cpp.llama_grammar import LlamaGrammar

from services.orchestrator.models import ContextPassage, DebugQuestion
from services.orchestrator.prompting import load_template


def passages(n: int) -> list[ContextPassage]:
    return [
        ContextPassage(f"p{i}", "text", "docs/a.md", 1, 2, "", "doc", 0.5, f"[{i}]")
        for i in range(1, n + 1)
    ]


def rules(grammar: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) ::= (.*)$", grammar, re.MULTILINE))


@pytest.mark.parametrize("version", ["rail_fix@2", "rail_fix@3"])
@pytest.mark.parametrize("shown", [0, 1, 5, 12])
@pytest.mark.parametrize("code", ["", "int x = pm_lock();"])
@pytest.mark.parametrize("unknown", [(), ("E99-Z",)])
def test_every_request_shape_compiles(
    version: str, shown: int, code: str, unknown: tuple[str, ...]
) -> None:
    question = DebugQuestion("Why E73-B?", code_snippet=code)
    grammar = load_template(version).render_grammar(question, passages(shown), unknown)
    LlamaGrammar.from_string(grammar, verbose=False)  # raises on a syntax error
    root = rules(grammar)["root"]
    assert root == ("abstain" if unknown or not shown else "answer | abstain")
    if shown:
        assert f"[1-{min(shown, 9)}]" in rules(grammar)["cite"]  # only labels that exist


def test_rail_fix_3_caps_claims_where_rail_fix_2_does_not() -> None:
    question = DebugQuestion("Why E73-B?")
    capped = rules(load_template("rail_fix@3").render_grammar(question, passages(5)))
    uncapped = rules(load_template("rail_fix@2").render_grammar(question, passages(5)))
    assert capped["text"].endswith("{1,160}") and uncapped["text"].endswith("+")
    assert capped["answer"] == uncapped["answer"]
