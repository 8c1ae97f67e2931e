"""Identifiers a question names that no retrieved passage contains.

The retriever pins exact identifier matches into its results, so an error code, config key or
function name the question asks about that appears in none of the retrieved passages is, in
practice, absent from the documentation. A prompt can use that list to answer honestly that
the documentation does not cover it instead of letting a small model invent an explanation.
"""

from __future__ import annotations

import re

from services.orchestrator.models import ContextPassage

# Error codes (E73-B), issue ids (SIXL-2291), snake_case keys, camelCase / PascalCase names with
# an inner capital, dotted members (Point.PutIntoNoEndPosition) and ALLCAPS_WITH_UNDERSCORES.
_IDENTIFIER = re.compile(
    r"(?<![\w.-])("
    r"[A-Z]\d{1,3}-[A-Z0-9]{1,4}"
    r"|[A-Z]{2,}-\d{2,}"
    r"|[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+"
    r"|[a-z]+[A-Z][A-Za-z0-9]*"
    r"|[A-Z][A-Za-z0-9]+\.[A-Z][A-Za-z0-9]+"
    r"|[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*"
    r")(?:\(\))?(?![\w-])"
)


def question_identifiers(text: str) -> list[str]:
    """Identifier-shaped tokens of `text`, in order, each once."""
    return list(dict.fromkeys(match.group(1) for match in _IDENTIFIER.finditer(text)))


def unknown_identifiers(question: str, passages: list[ContextPassage]) -> list[str]:
    """The identifiers of the question that no passage contains verbatim. Only the question:
    code under investigation names local variables no documentation mentions."""
    corpus = "\n".join(p.text for p in passages)
    return [ident for ident in question_identifiers(question) if ident not in corpus]
