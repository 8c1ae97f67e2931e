"""The `dspy` analyzer: a compiled rail-fix DSPy program, served through our Inference client.

`DspyAnalyzer.load(settings, inference)` reads the named version from the program store
(analyzers/selection.py calls it when RAILDEBUG_ORCHESTRATOR_ANALYZER=dspy). The pipeline has
already retrieved and labelled the passages, so the program's generate step runs on them directly
(no second retrieval). `dspy.streamify` with a StreamListener on `fix` yields the field's text as
the inference service streams tokens; our LM engine sees a per-call id and reports the deadline,
cancellation and final outcomes through a RequestScope.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dspy
from dspy.utils.exceptions import AdapterParseError

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import NotReady, RailDebugError
from raildebug.settings import DspySettings, OrchestratorSettings
from services.orchestrator.analyzers.dspy.artifacts import ProgramStore
from services.orchestrator.analyzers.dspy.lm import InferenceEngine, RequestScope, rail_lm
from services.orchestrator.analyzers.dspy.program import (
    RailFixRAG,
    format_context,
    query_text,
    rail_settings,
)
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.models import AnalysisInput


class DspyAnalyzer:
    """ports.Analyzer over a loaded RailFixRAG and our inference service."""

    name = "dspy"

    def __init__(self, program: RailFixRAG, inference: InferenceClient, program_ref: str) -> None:
        self._program = program
        self._engine = InferenceEngine(inference)
        self.program_ref = program_ref
        self._stream = dspy.streamify(
            program.generate,
            stream_listeners=[dspy.streaming.StreamListener(signature_field_name="fix")],
            async_streaming=False,
        )

    @classmethod
    def load(
        cls,
        settings: OrchestratorSettings,
        inference: InferenceClient,
        programs_dir: Path | None = None,
    ) -> DspyAnalyzer:
        """settings.dspy_program (`name@version`, or `name` for its latest version), from
        RAILDEBUG_DSPY_PROGRAMS_DIR, then the programs shipped with the package."""
        stored = ProgramStore(programs_dir or DspySettings().programs_dir).get(
            settings.dspy_program
        )
        program = RailFixRAG()
        program.load_state(stored.state)
        return cls(program, inference, stored.manifest.ref)

    def model(self, timeout_s: float) -> str:
        return f"{self._engine.model_name(timeout_s)} (dspy {self.program_ref})"

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        """Yields the fix text as it is produced, then exactly one GenerationOutcome."""
        started = time.monotonic()
        call_id = f"dspy-{request_id or uuid.uuid4().hex}"
        scope = RequestScope(deadline=started + timeout_s, is_cancelled=is_cancelled)
        lm = rail_lm(self._engine, max_tokens=work.max_tokens).copy(
            metadata={"request_id": call_id}
        )
        question = work.question
        query = query_text(question.question, question.error_log, question.code_snippet)
        self._engine.open_scope(call_id, scope)
        streamed = False
        text = JsonStringText()
        try:
            with rail_settings(lm):
                for item in self._stream(context=format_context(work.passages), query=query):
                    if isinstance(item, dspy.streaming.StreamResponse) and item.chunk:
                        streamed = True
                        if delta := text.feed(item.chunk):
                            yield delta
                    elif isinstance(item, dspy.Prediction) and not streamed and item.fix:
                        yield str(item.fix)  # no streamed chunks (e.g. a one-chunk answer)
        except AdapterParseError as error:
            # The model skipped the field markers: its raw text is still the best answer we have.
            if not streamed and error.lm_response:
                yield str(error.lm_response).strip()
        except Exception as error:
            raise _domain_error(error) from error
        finally:
            self._engine.close_scope(call_id)
        yield _outcome(scope, started, self.program_ref)


class JsonStringText:
    """The text of a streamed JSON string value, decoded chunk by chunk.

    With the JSONAdapter, DSPy's stream listener hands out the field as it is written in the
    JSON: opening quote, backslash escapes, closing quote. The caller wants the text itself.
    A value that does not start with a quote passes through as it is.
    """

    def __init__(self) -> None:
        self._state = "before"  # before | inside | after | raw
        self._pending = ""  # an escape split across chunks

    def feed(self, chunk: str) -> str:
        data, self._pending = self._pending + chunk, ""
        out: list[str] = []
        i = 0
        while i < len(data) and self._state != "after":
            char = data[i]
            if self._state == "before":
                if char == '"':
                    self._state = "inside"
                    i += 1
                elif char.isspace():
                    i += 1
                else:
                    self._state = "raw"
            elif self._state == "raw":
                out.append(data[i:])
                break
            elif char == '"':
                self._state = "after"
            elif char == "\\":
                size = _escape_size(data, i)
                if i + size > len(data):
                    self._pending = data[i:]
                    break
                out.append(_unescape(data[i : i + size]))
                i += size
            else:
                out.append(char)
                i += 1
        return "".join(out)


def _escape_size(data: str, at: int) -> int:
    """Characters of the escape at `at`: \\n is 2, \\u00e9 is 6, a surrogate pair 12."""
    if at + 1 >= len(data) or data[at + 1] != "u":
        return 2
    high = data[at + 2 : at + 6]
    if len(high) == 4 and 0xD800 <= _hex(high) <= 0xDBFF:
        return 12
    return 6


def _hex(digits: str) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        return -1


def _unescape(escape: str) -> str:
    try:
        return str(json.loads(f'"{escape}"'))
    except ValueError:
        return escape


def _outcome(scope: RequestScope, started: float, program_ref: str) -> GenerationOutcome:
    """Sums over the program's LM calls (one for a Predict program)."""
    results = scope.results
    last = results[-1] if results else None
    return GenerationOutcome(
        finish_reason=last.finish_reason if last else FinishReason.ERROR,
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        cached_prompt_tokens=sum(r.cached_prompt_tokens for r in results),
        queue_ms=sum(r.queue_ms for r in results),
        time_to_first_token_ms=results[0].time_to_first_token_ms if results else 0.0,
        prefill_ms=sum(r.prefill_ms for r in results),
        decode_ms=sum(r.decode_ms for r in results),
        total_ms=(time.monotonic() - started) * 1000,
        model=f"{last.model if last else 'no model call'} (dspy {program_ref})",
        error=last.error if last else "the program made no LM call",
    )


def _domain_error(error: Exception) -> RailDebugError:
    """The domain error behind a DSPy/lm15 failure (our engine chains it), else NotReady."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, RailDebugError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return NotReady(f"the DSPy analyzer failed ({type(error).__name__}: {error}); retry")
