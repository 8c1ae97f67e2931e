"""The rail-fix program: a `GenerateRailFix` signature behind a retrieve-then-generate module.

Generation is a plain `dspy.Predict` with one output field: the served model (Gemma 3 270M, a
base model) fills one grammar-constrained JSON field reliably, while ChainOfThought's extra
reasoning field doubles the decode time and was not followed coherently by a model this small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dspy

from raildebug.domain import PassageFilter
from services.orchestrator.models import ContextPassage
from services.orchestrator.ports import PassageSource

PASSAGE_CHARS = 600  # per passage: a few compiled demos plus the question fit in 4096 tokens
CONTEXT_PASSAGES = 3


class GenerateRailFix(dspy.Signature):  # type: ignore[misc]  # dspy ships no type hints
    """Diagnose a fault in railway control-system software from the numbered reference passages
    and give the fix: the cause in one or two sentences citing passages like [1], then the
    corrected code or configuration line."""

    context: str = dspy.InputField(desc="numbered passages [1].. from documentation and code")
    query: str = dspy.InputField(desc="the engineer's question, with any error log or code")
    fix: str = dspy.OutputField(
        desc="cause citing [n], then the corrected code snippet naming the exact identifiers"
    )


def rail_settings(lm: dspy.LM) -> Any:
    """The DSPy context every rail-fix call runs in (compile, evaluate, serve).

    JSONAdapter: our engine declares structured output, so the signature's JSON schema reaches
    the inference service, which enforces it as a grammar. Measured on Gemma 3 270M (2 dev
    examples, 1 demo): ChatAdapter's `[[ ## fix ## ]]` markers were never produced (dev metric
    0.00 before and after compiling); the constrained JSON field parsed every time (0.00 -> 0.20).
    """
    return dspy.context(lm=lm, adapter=dspy.JSONAdapter())


def query_text(question: str, error_log: str = "", code_snippet: str = "") -> str:
    """The query the program sees: the question plus any error log or code, in that order.

    Compilation (training/dspy/dataset.py) and serving (serving.py) both build it here, so a
    compiled program is served the same query shape it was compiled on.
    """
    parts = [question.strip()]
    if error_log.strip():
        parts.append(f"Error log:\n{error_log.strip()}")
    if code_snippet.strip():
        parts.append(f"Code:\n{code_snippet.strip()}")
    return "\n\n".join(parts)


def format_context(passages: Sequence[ContextPassage]) -> str:
    """Passages as the program sees them, labelled [1].. in order, each clipped."""
    blocks = []
    for number, passage in enumerate(passages[:CONTEXT_PASSAGES], start=1):
        title = f" ({passage.title})" if passage.title else ""
        header = f"[{number}] {passage.source}:{passage.line_start}-{passage.line_end}{title}"
        blocks.append(f"{header}\n{passage.text.strip()[:PASSAGE_CHARS]}")
    return "\n\n".join(blocks) if blocks else "(no passages were retrieved)"


class RailFixRAG(dspy.Module):  # type: ignore[misc]
    """Retrieve passages for the query (unless given), then generate the fix from them."""

    def __init__(self, search: PassageSource | None = None, search_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.generate = dspy.Predict(GenerateRailFix)
        self._search = search
        self._search_timeout_s = search_timeout_s

    def retrieve(self, query: str) -> str:
        if self._search is None:
            raise ValueError("this RailFixRAG has no retriever: pass context= or a search client")
        passages = self._search.search(
            query, CONTEXT_PASSAGES, PassageFilter(), timeout_s=self._search_timeout_s
        )
        return format_context(passages)

    def forward(self, query: str, context: str | None = None) -> dspy.Prediction:
        context = self.retrieve(query) if context is None else context
        prediction: dspy.Prediction = self.generate(context=context, query=query)
        return prediction
