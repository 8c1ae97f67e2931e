"""The rail-fix metric: how good a generated fix is against a gold fix, in [0, 1].

    score = 0                                   if the fix field is missing or empty
    score = 0.15 * has_code                     a concrete correction is present: a ``` block, a
                                                code line (`;`, `==`, `>=`, `->`, `x = v`) or a
                                                `backticked` identifier (config key, function)
          + 0.40 * identifiers                  share of the gold answer's key identifiers
                                                (functions, config keys, error codes, issue ids)
                                                that the fix names, case-insensitively
          + 0.20 * grounded                     share of the fix's own technical tokens that occur
                                                in the retrieved passages (0 when it names none)
          + 0.25 * overlap                      token F1 between the fix and the gold fix

Identifiers weigh most: a fix that names `ace_check_sweep` and `>=` is actionable even in poor
prose. `grounded` penalises invented identifiers. The bootstrap optimizer keeps a trace as a
demo when the score reaches PASS_THRESHOLD. Bump METRIC_VERSION whenever any of this changes:
compiled programs record it, and scores of different versions are not comparable.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

METRIC_VERSION = "rail_fix_metric@1"
PASS_THRESHOLD = 0.5
WEIGHTS = {"has_code": 0.15, "identifiers": 0.40, "grounded": 0.20, "overlap": 0.25}

_WORD = re.compile(r"[a-z0-9_]+")
# snake_case / dotted names, calls, error codes (E73-B), issue ids (SIXL-2291), operators.
_TECHNICAL = re.compile(
    r"\b[A-Za-z]+[A-Za-z0-9]*_[A-Za-z0-9_]+\b|\b[A-Za-z_]\w*(?=\()|\b[EW]\d{2}-[A-Z]\b"
    r"|\bSIXL-\d+\b"
)
_CODE_LINE = re.compile(r"```|`\w+|[;{}]\s*$|==|>=|<=|->|\b\w+\s*=\s*\S", re.MULTILINE)
_BACKTICKED = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class FixScore:
    has_code: float
    identifiers: float
    grounded: float
    overlap: float

    @property
    def total(self) -> float:
        return float(sum(getattr(self, name) * weight for name, weight in WEIGHTS.items()))


def score_fix(fix: str, gold_fix: str, identifiers: list[str], context: str) -> FixScore:
    if not fix.strip():
        return FixScore(0.0, 0.0, 0.0, 0.0)
    lowered = fix.lower()
    named = [ident for ident in identifiers if ident.lower() in lowered]
    technical = set(_TECHNICAL.findall(fix))
    grounded = (
        sum(1 for token in technical if token in context) / len(technical) if technical else 0.0
    )
    return FixScore(
        has_code=1.0 if _CODE_LINE.search(fix) else 0.0,
        identifiers=len(named) / len(identifiers) if identifiers else 1.0,
        grounded=grounded,
        overlap=token_f1(fix, gold_fix),
    )


def gold_identifiers(gold_fix: str) -> list[str]:
    """The identifiers a fix must name: `backticked` names and technical tokens of the gold fix."""
    found = [*_BACKTICKED.findall(gold_fix), *_TECHNICAL.findall(gold_fix)]
    return list(dict.fromkeys(token.strip() for token in found if len(token.strip()) > 2))


def token_f1(candidate: str, reference: str) -> float:
    produced = Counter(_WORD.findall(candidate.lower()))
    expected = Counter(_WORD.findall(reference.lower()))
    common = sum((produced & expected).values())
    if common == 0:
        return 0.0
    precision = common / sum(produced.values())
    recall = common / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def rail_fix_metric(example: Any, prediction: Any, trace: Any = None) -> float | bool:
    """DSPy metric: the score for evaluation; pass/fail while bootstrapping (`trace` set)."""
    fix = getattr(prediction, "fix", None)
    score = (
        score_fix(fix, example.fix, list(example.identifiers), example.context).total
        if isinstance(fix, str)
        else 0.0
    )
    if trace is not None:
        return score >= PASS_THRESHOLD
    return score
