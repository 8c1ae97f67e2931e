"""Scoring answers against judged questions: citations, nuggets and abstention, no judge model.

A question set (data/eval/answers-*.jsonl) lists, per question, the passages that hold the
answer (file paths under a folder corpus, passage ids of a JSONL corpus) and the nuggets: the
key facts a correct answer states, each a list of accepted alternatives. Everything here is
deterministic so that two runs, two models or two prompt versions compare on the same ruler:

* citation rate: answerable questions whose answer cites at least one passage;
* citation precision: cited passages (over all answerable questions) whose source is judged
  relevant; a label that names no retrieved passage counts as a wrong citation;
* nugget recall: share of a question's nuggets the answer states. An alternative with a digit,
  an underscore or identifier shape (`E73-B`, `NID_LRBG`, `Point.PutIntoNoEndPosition`) must
  occur exactly, case-sensitive, on token boundaries (spaces in it match any whitespace); any
  other alternative is a phrase matched after normalisation (lower case, punctuation to spaces,
  plural -s dropped) as a whole-word sequence;
* abstention: unanswerable questions answered with "the documentation does not say"-style
  text and no citation.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raildebug.errors import InvalidRequest
from services.orchestrator.citations import cited_labels

# What an honest "not in the documentation" sounds like in the answers of the models we serve.
_ABSTENTION = re.compile(
    r"(documentation|passages?|references?|context|sources?|corpus)\s+(provided\s+)?"
    r"(does|do)\s+not\s+(say|state|mention|contain|cover|describe|include|specify|provide|answer)"
    r"|not\s+(in|covered\s+by|described\s+in|mentioned\s+in)\s+the\s+(documentation|passages)"
    r"|no\s+(information|mention|passage)\s+(about|on|of|in|that)"
    r"|(cannot|can\s*not|unable\s+to)\s+(find|answer|determine)",
    re.IGNORECASE,
)
_IDENTIFIER_SHAPE = re.compile(r"[\d_]|^\S*[a-z]\S*[A-Z]|^[A-Z]{2,}|\w[.\-()]\w")
_NON_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class AnswerQuestion:
    qid: str
    question: str
    answerable: bool
    relevant: frozenset[str]
    nuggets: tuple[tuple[str, ...], ...]
    code_snippet: str = ""
    error_log: str = ""
    category: str = ""


@dataclass(frozen=True)
class CitedPassage:
    """A retrieved passage as the benchmark sees it: its label in the prompt and its source."""

    label: str  # "[1]"
    source: str


@dataclass(frozen=True)
class AnswerRecord:
    """One answer as it came back from the Debug RPC, with its timings."""

    qid: str
    answer: str
    passages: tuple[CitedPassage, ...]
    time_to_first_token_ms: float
    latency_ms: float
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    prefill_ms: float
    decode_ms: float
    model: str
    prompt_version: str
    error: str = ""


@dataclass(frozen=True)
class AnswerScore:
    qid: str
    answerable: bool
    cited: int  # citations of retrieved passages or of labels that name none
    cited_relevant: int
    nugget_recall: float  # answerable questions only
    abstained: bool


@dataclass
class BenchmarkSummary:
    questions: int
    answerable: int
    unanswerable: int
    citation_rate: float
    citation_precision: float
    nugget_recall: float
    abstention: float
    false_abstention: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    prompt_tokens_p50: float
    completion_tokens_mean: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    errors: int
    models: list[str] = field(default_factory=list)
    prompt_versions: list[str] = field(default_factory=list)


def load_questions(path: Path) -> list[AnswerQuestion]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidRequest(f"cannot read question set {path}: {error}") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row: dict[str, Any] = json.loads(line)
            questions.append(
                AnswerQuestion(
                    qid=str(row["qid"]),
                    question=str(row["question"]),
                    answerable=bool(row["answerable"]),
                    relevant=frozenset(str(r) for r in row.get("relevant", ())),
                    nuggets=tuple(tuple(str(a) for a in n) for n in row.get("nuggets", ())),
                    code_snippet=str(row.get("code_snippet", "")),
                    error_log=str(row.get("error_log", "")),
                    category=str(row.get("category", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InvalidRequest(f"{path}:{number}: not a judged question: {error}") from None
    if not questions:
        raise InvalidRequest(f"question set {path} is empty")
    return questions


def is_abstention(answer: str) -> bool:
    return _ABSTENTION.search(answer) is not None


def normalise(text: str) -> str:
    words = _NON_WORD.sub(" ", text.lower()).split()
    return " ".join(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words
    )


def is_identifier_like(alternative: str) -> bool:
    return _IDENTIFIER_SHAPE.search(alternative.strip()) is not None


def alternative_matches(answer: str, alternative: str) -> bool:
    alternative = alternative.strip()
    if not alternative:
        return False
    if is_identifier_like(alternative):
        pattern = r"\s+".join(re.escape(part) for part in alternative.split())
        return re.search(rf"(?<![\w]){pattern}(?![\w])", answer) is not None
    phrase = normalise(alternative)
    return bool(phrase) and f" {phrase} " in f" {normalise(answer)} "


def nugget_recall(answer: str, nuggets: Sequence[Sequence[str]]) -> float:
    if not nuggets:
        return 1.0
    found = sum(any(alternative_matches(answer, alt) for alt in nugget) for nugget in nuggets)
    return found / len(nuggets)


def score_answer(question: AnswerQuestion, record: AnswerRecord) -> AnswerScore:
    sources = {p.label: p.source for p in record.passages}
    labels = cited_labels(record.answer)
    relevant = sum(sources.get(f"[{n}]", "") in question.relevant for n in labels)
    return AnswerScore(
        qid=question.qid,
        answerable=question.answerable,
        cited=len(labels),
        cited_relevant=relevant,
        nugget_recall=nugget_recall(record.answer, question.nuggets) if question.answerable else 0,
        abstained=is_abstention(record.answer),
    )


def summarise(
    questions: Sequence[AnswerQuestion], records: Sequence[AnswerRecord]
) -> BenchmarkSummary:
    """Aggregate scores; a question whose request failed counts as answered with nothing."""
    by_qid = {r.qid: r for r in records}
    scores = [
        score_answer(q, by_qid.get(q.qid) or _failed(q.qid, "no answer recorded"))
        for q in questions
    ]
    answerable = [s for s in scores if s.answerable]
    unanswerable = [s for s in scores if not s.answerable]
    cited = sum(s.cited for s in answerable)
    ok = [r for r in records if not r.error]
    return BenchmarkSummary(
        questions=len(scores),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        citation_rate=_share(s.cited > 0 for s in answerable),
        citation_precision=sum(s.cited_relevant for s in answerable) / cited if cited else 0.0,
        nugget_recall=_mean(s.nugget_recall for s in answerable),
        abstention=_share(s.abstained and s.cited == 0 for s in unanswerable),
        false_abstention=_share(s.abstained and s.cited == 0 for s in answerable),
        ttft_p50_ms=percentile([r.time_to_first_token_ms for r in ok], 50),
        ttft_p95_ms=percentile([r.time_to_first_token_ms for r in ok], 95),
        latency_p50_ms=percentile([r.latency_ms for r in ok], 50),
        latency_p95_ms=percentile([r.latency_ms for r in ok], 95),
        prompt_tokens_p50=percentile([float(r.prompt_tokens) for r in ok], 50),
        completion_tokens_mean=_mean(float(r.completion_tokens) for r in ok),
        prefill_tokens_per_s=_rate(ok, prefill=True),
        decode_tokens_per_s=_rate(ok, prefill=False),
        errors=sum(q.qid not in by_qid or bool(by_qid[q.qid].error) for q in questions),
        models=sorted({r.model for r in ok if r.model}),
        prompt_versions=sorted({r.prompt_version for r in ok if r.prompt_version}),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1 or q >= 100:
        return float(max(values))
    return float(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1])


def _rate(records: Sequence[AnswerRecord], *, prefill: bool) -> float:
    """Tokens per second over all records (sums, so long answers weigh as they cost)."""
    if prefill:
        tokens = sum(r.prompt_tokens - r.cached_prompt_tokens for r in records if r.prefill_ms > 0)
        seconds = sum(r.prefill_ms for r in records if r.prefill_ms > 0) / 1000
    else:
        tokens = sum(max(r.completion_tokens - 1, 0) for r in records if r.decode_ms > 0)
        seconds = sum(r.decode_ms for r in records if r.decode_ms > 0) / 1000
    return tokens / seconds if seconds > 0 else 0.0


def _failed(qid: str, error: str) -> AnswerRecord:
    return AnswerRecord(qid, "", (), 0.0, 0.0, 0, 0, 0, 0.0, 0.0, "", "", error)


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0
