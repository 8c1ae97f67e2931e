"""Versioned prompt templates (one TOML file per version) and rendering them safely.

A template is either a completion prompt (`format = "completion"`: one text, for base models
such as Gemma 3 270M) or a chat prompt (`format = "chat"`: a system turn and a user turn that
the inference service renders with the model's own chat template, for instruct models). A
template with `max_context_tokens` packs its passages into that many of the model's tokens;
otherwise `max_context_chars` bounds them in characters.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import jinja2

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.context_budget import pack_passages
from services.orchestrator.models import ChatTurns, ContextPassage, DebugQuestion
from services.orchestrator.ports import TokenCounter

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
_QUOTE_OPEN, _QUOTE_CLOSE = "<<<", ">>>"
PromptFormat = Literal["completion", "chat"]
FORMATS: tuple[PromptFormat, ...] = ("completion", "chat")
DEFAULT_MAX_CONTEXT_CHARS = 6000


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    stop: tuple[str, ...]
    max_context_chars: int
    source: str  # the completion prompt, or the user turn of a chat prompt
    format: PromptFormat = "completion"
    system: str = ""  # the system turn of a chat prompt
    max_context_tokens: int = 0  # 0: the passages are bounded by max_context_chars only
    grammar: str = ""  # GBNF the answer must follow (a jinja template too); "": free text

    @property
    def ref(self) -> str:
        """The id@version recorded with every answer."""
        return f"{self.id}@{self.version}"

    def render(
        self,
        question: DebugQuestion,
        passages: list[ContextPassage],
        unknown_identifiers: Sequence[str] = (),
    ) -> str:
        """The completion prompt; for a chat template, its user turn. `unknown_identifiers`:
        identifiers the question names that no retrieved passage contains (grounding.py)."""
        template = _environment().from_string(self.source)
        variables = _variables(question, passages, unknown_identifiers)
        rendered = template.render(**variables).strip()
        return rendered if self.format == "chat" else rendered + " "

    def render_chat(
        self,
        question: DebugQuestion,
        passages: list[ContextPassage],
        unknown_identifiers: Sequence[str] = (),
    ) -> ChatTurns:
        """System and user turns of a chat template; () for a completion template."""
        if self.format != "chat":
            return ()
        variables = _variables(question, passages, unknown_identifiers)
        system = _environment().from_string(self.system).render(**variables)
        user = self.render(question, passages, unknown_identifiers)
        return (("system", system.strip()), ("user", user))

    def render_grammar(
        self,
        question: DebugQuestion,
        passages: list[ContextPassage],
        unknown_identifiers: Sequence[str] = (),
    ) -> str:
        """The answer's GBNF for this request ("" when the template constrains nothing)."""
        if not self.grammar.strip():
            return ""
        variables = _variables(question, passages, unknown_identifiers)
        return _environment().from_string(self.grammar).render(**variables).strip()

    def fit_passages(
        self,
        passages: list[ContextPassage],
        counter: TokenCounter | None = None,
        timeout_s: float = 5.0,
    ) -> list[ContextPassage]:
        """Label passages [1].. and fit them to the template's budget, best first: in tokens
        when the template sets max_context_tokens and a counter is given, else in characters."""
        if self.max_context_tokens > 0 and counter is not None:
            quoted = [replace(p, text=_quoted(p.text)) for p in passages]
            return pack_passages(quoted, self.max_context_tokens, counter, timeout_s)
        fitted: list[ContextPassage] = []
        budget = self.max_context_chars
        for passage in passages:
            if budget <= 0:
                break
            text = _quoted(passage.text)[:budget]
            budget -= len(text)
            fitted.append(replace(passage, text=text, label=f"[{len(fitted) + 1}]"))
        return fitted


def load_template(ref: str, prompts_dir: Path = PROMPTS_DIR) -> PromptTemplate:
    """Load "id@version" from `prompts_dir/id@version.toml`."""
    path = prompts_dir / f"{ref}.toml"
    if "@" not in ref or not path.is_file():
        available = sorted(p.stem for p in prompts_dir.glob("*@*.toml"))
        raise NotFound(f"prompt template {ref!r} not found; available: {available}")
    template = parse_template(path.read_text(encoding="utf-8"), str(path))
    if template.ref != ref:
        raise ValueError(f"{path} declares {template.ref}, but its file name says {ref}")
    return template


def parse_template(text: str, origin: str) -> PromptTemplate:
    """A template from its TOML text; errors name `origin` and what is wrong."""
    try:
        data = tomllib.loads(text)
        prompt_format = str(data.get("format", "completion"))
        if prompt_format not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)}, got {prompt_format!r}")
        template = PromptTemplate(
            id=str(data["id"]),
            version=int(data["version"]),
            stop=tuple(str(s) for s in data.get("stop", ())),
            max_context_chars=int(data.get("max_context_chars", DEFAULT_MAX_CONTEXT_CHARS)),
            source=str(data["template"]),
            format="chat" if prompt_format == "chat" else "completion",
            system=str(data.get("system", "")),
            max_context_tokens=int(data.get("max_context_tokens", 0)),
            grammar=str(data.get("grammar", "")),
        )
        if template.format == "chat" and not template.system.strip():
            raise ValueError("a chat template needs a system turn (the `system` key)")
        _environment().parse(template.source)
        _environment().parse(template.system)
        _environment().parse(template.grammar)
    except tomllib.TOMLDecodeError as error:
        raise InvalidRequest(f"{origin} is not valid TOML: {error}") from None
    except KeyError as error:
        raise InvalidRequest(f"{origin} lacks the key {error.args[0]!r}") from None
    except (TypeError, ValueError) as error:
        raise InvalidRequest(f"{origin}: {error}") from None
    except jinja2.TemplateSyntaxError as error:
        raise InvalidRequest(
            f"{origin}: template syntax error on line {error.lineno}: {error.message}"
        ) from None
    return template


def check_renders(template: PromptTemplate, origin: str) -> PromptTemplate:
    """`template` once it has rendered sample questions with and without passages: a template
    that parses but names a variable the pipeline does not pass (or fails at render time) is
    refused here, not on a caller's request. Returns it; InvalidRequest says what is wrong."""
    samples = (DebugQuestion(question="q", code_snippet="c", error_log="e"), DebugQuestion("q"))
    passage = ContextPassage(
        id="p", text="t", source="s", line_start=1, line_end=2, title="", kind="doc", score=1.0
    )
    if template.max_context_chars <= 0:
        raise InvalidRequest(f"{origin}: max_context_chars must be positive")
    if template.max_context_tokens < 0:
        raise InvalidRequest(f"{origin}: max_context_tokens must be 0 (off) or positive")
    try:
        for sample in samples:
            for passages in ([], template.fit_passages([passage])):
                for unknown in ((), ("E00-X",)):
                    template.render(sample, passages, unknown)
                    template.render_chat(sample, passages, unknown)
                    template.render_grammar(sample, passages, unknown)
    except Exception as error:  # undefined names, type errors in expressions, ...
        raise InvalidRequest(
            f"{origin}: template does not render: {type(error).__name__}: {error}"
        ) from None
    return template


def _variables(
    question: DebugQuestion, passages: list[ContextPassage], unknown_identifiers: Sequence[str]
) -> dict[str, object]:
    return {
        "unknown_identifiers": list(unknown_identifiers),
        "passages": passages,
        "question": _quoted(question.question.strip()),
        "code_snippet": _quoted(question.code_snippet.strip()),
        "error_log": _quoted(question.error_log.strip()),
    }


def _quoted(text: str) -> str:
    """Keep quoted data from closing its own quote block and posing as prompt structure."""
    return (
        text.replace(_QUOTE_OPEN, "< < <").replace(_QUOTE_CLOSE, "> > >").replace("\n### ", "\n# ")
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
