"""Plain data types of the orchestrator core."""

from __future__ import annotations

from dataclasses import dataclass, field

from raildebug.domain import GenerationOutcome, PassageFilter

MAX_QUESTION_CHARS = 4_000
MAX_SNIPPET_CHARS = 20_000
MAX_COMMENT_CHARS = 4_000
DEFAULT_CONTEXT_K = 5
MAX_CONTEXT_K = 20
DEFAULT_ANSWER_TOKENS = 384
MAX_ANSWER_TOKENS = 2_048


@dataclass(frozen=True)
class DebugQuestion:
    question: str
    code_snippet: str = ""
    error_log: str = ""
    filter: PassageFilter = field(default_factory=PassageFilter)
    k: int = 0  # 0: DEFAULT_CONTEXT_K
    max_tokens: int = 0  # 0: DEFAULT_ANSWER_TOKENS
    client_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class ContextPassage:
    """A retrieved passage as the prompt and the caller see it."""

    id: str
    text: str
    source: str
    line_start: int
    line_end: int
    title: str
    kind: str
    score: float
    label: str = ""  # "[1]", "[2]", ...: assigned when the prompt is built


ChatTurns = tuple[tuple[str, str], ...]  # (role, content) pairs


@dataclass(frozen=True)
class AnalysisInput:
    """Everything an analyzer may use; prompt-based backends use `prompt`, others the parts."""

    question: DebugQuestion
    passages: list[ContextPassage]  # labelled [1].. in prompt order
    prompt: str  # rendered by the versioned prompt template (a chat template: its user turn)
    stop: tuple[str, ...]
    max_tokens: int
    chat: ChatTurns = ()  # system and user turns when the template is a chat template
    grammar: str = ""  # GBNF the answer must follow; "": free text


@dataclass(frozen=True)
class ContextEvent:
    passages: list[ContextPassage]
    retrieval_ms: float


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class DebugSummary:
    request_id: str
    generation: GenerationOutcome
    latency_ms: float
    time_to_first_token_ms: float
    prompt_version: str
    cited_passage_ids: list[str]
    degraded: bool
    degraded_reason: str
    prompt_variant: str = ""  # the label served (A/B tests: which arm)
    cache_hit: bool = False
    estimated_cost_usd: float | None = None  # None: the model is not in the price table


DebugEvent = ContextEvent | AnswerDelta | DebugSummary


@dataclass(frozen=True)
class AnsweredRequest:
    """What is kept of a finished answer, so feedback can be linked to it."""

    question: DebugQuestion
    passages: list[ContextPassage]
    answer: str
    summary: DebugSummary


@dataclass(frozen=True)
class FeedbackEntry:
    request_id: str
    score: float
    comment: str = ""
    client_id: str = ""
