"""Versioned prompt templates (one TOML file per version) and rendering them safely."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import jinja2

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.models import ContextPassage, DebugQuestion

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
_QUOTE_OPEN, _QUOTE_CLOSE = "<<<", ">>>"


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    stop: tuple[str, ...]
    max_context_chars: int
    source: str

    @property
    def ref(self) -> str:
        """The id@version recorded with every answer."""
        return f"{self.id}@{self.version}"

    def render(self, question: DebugQuestion, passages: list[ContextPassage]) -> str:
        template = _environment().from_string(self.source)
        return (
            template.render(
                passages=passages,
                question=_quoted(question.question.strip()),
                code_snippet=_quoted(question.code_snippet.strip()),
                error_log=_quoted(question.error_log.strip()),
            ).strip()
            + " "
        )

    def fit_passages(self, passages: list[ContextPassage]) -> list[ContextPassage]:
        """Label passages [1].. and trim them to the template's context budget, best first."""
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
        template = PromptTemplate(
            id=str(data["id"]),
            version=int(data["version"]),
            stop=tuple(str(s) for s in data.get("stop", ())),
            max_context_chars=int(data.get("max_context_chars", 6000)),
            source=str(data["template"]),
        )
        _environment().parse(template.source)
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
    try:
        for sample in samples:
            for passages in ([], template.fit_passages([passage])):
                template.render(sample, passages)
    except Exception as error:  # undefined names, type errors in expressions, ...
        raise InvalidRequest(
            f"{origin}: template does not render: {type(error).__name__}: {error}"
        ) from None
    return template


def _quoted(text: str) -> str:
    """Keep quoted data from closing its own quote block and posing as prompt structure."""
    return (
        text.replace(_QUOTE_OPEN, "< < <").replace(_QUOTE_CLOSE, "> > >").replace("\n### ", "\n# ")
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
