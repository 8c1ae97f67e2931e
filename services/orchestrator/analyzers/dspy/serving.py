"""A compiled rail-fix DSPy program, served by the `dspy` analyzer (analyzers/compiled_dspy.py
calls `load_program(name, settings)` and streams `CompiledRailFix.stream`).

The pipeline has already retrieved and labelled the passages, so the program's generate step runs
on them directly (no second retrieval). `dspy.streamify` with a StreamListener on `fix` yields
the field's text as the inference service streams tokens; our LM engine sees a per-call id and
reports the deadline, cancellation and final timings through a RequestScope.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dspy
from dspy.utils.exceptions import AdapterParseError

from raildebug.domain import GenerationOutcome
from raildebug.errors import NotReady, RailDebugError
from raildebug.settings import DspySettings, OrchestratorSettings
from services.inference.wire import FINISH_FROM_WIRE
from services.orchestrator.analyzers.dspy.artifacts import ProgramStore
from services.orchestrator.analyzers.dspy.lm import InferenceEngine, RequestScope, rail_lm
from services.orchestrator.analyzers.dspy.program import RailFixRAG, format_context, rail_settings
from services.orchestrator.models import AnalysisInput


class CompiledRailFix:
    """ports.CompiledProgram over a loaded RailFixRAG and our inference service."""

    def __init__(
        self, program: RailFixRAG, engine: InferenceEngine, program_ref: str, model: str
    ) -> None:
        self._program = program
        self._engine = engine
        self.program_ref = program_ref
        self.model = model
        self._stream = dspy.streamify(
            program.generate,
            stream_listeners=[dspy.streaming.StreamListener(signature_field_name="fix")],
            async_streaming=False,
        )

    def stream(
        self, work: AnalysisInput, *, timeout_s: float, is_cancelled: Callable[[], bool]
    ) -> Iterator[str | GenerationOutcome]:
        """Yields the fix text as it is produced, then exactly one GenerationOutcome."""
        started = time.monotonic()
        request_id = f"dspy-{uuid.uuid4().hex}"
        scope = RequestScope(deadline=started + timeout_s, is_cancelled=is_cancelled)
        lm = rail_lm(self._engine, max_tokens=work.max_tokens).copy(
            metadata={"request_id": request_id}
        )
        self._engine.open_scope(request_id, scope)
        streamed = False
        try:
            with rail_settings(lm):
                for item in self._stream(context=format_context(work.passages), query=_query(work)):
                    if isinstance(item, dspy.streaming.StreamResponse) and item.chunk:
                        streamed = True
                        yield item.chunk
                    elif isinstance(item, dspy.Prediction) and not streamed and item.fix:
                        yield str(item.fix)  # no streamed chunks (e.g. a one-chunk answer)
        except AdapterParseError as error:
            # The model skipped the field markers: its raw text is still the best answer we have.
            if not streamed and error.lm_response:
                yield str(error.lm_response).strip()
        except Exception as error:
            raise _domain_error(error) from error
        finally:
            self._engine.close_scope(request_id)
        yield _stats(scope, started, self.program_ref)


def load_program(
    name: str, settings: OrchestratorSettings, programs_dir: Path | None = None
) -> CompiledRailFix:
    """`name@version`, or `name` for its latest version, from RAILDEBUG_DSPY_PROGRAMS_DIR (then
    the programs shipped in data/dspy/programs); generation goes to settings.inference_address."""
    from services.orchestrator.server import upstream_security  # the one upstream TLS/token rule

    stored = ProgramStore(programs_dir or DspySettings().programs_dir).get(name)
    program = RailFixRAG()
    program.load_state(stored.state)
    engine = InferenceEngine(settings.inference_address, security=upstream_security(settings))
    return CompiledRailFix(
        program, engine, stored.manifest.ref, f"{stored.manifest.model} {stored.manifest.ref}"
    )


def _query(work: AnalysisInput) -> str:
    question = work.question
    parts = [question.question.strip()]
    if question.error_log.strip():
        parts.append(f"Error log:\n{question.error_log.strip()}")
    if question.code_snippet.strip():
        parts.append(f"Code:\n{question.code_snippet.strip()}")
    return "\n\n".join(parts)


def _stats(scope: RequestScope, started: float, program_ref: str) -> GenerationOutcome:
    """Sums over the program's LM calls (one for a Predict program)."""
    results = scope.results
    last = results[-1] if results else None
    total_ms = (time.monotonic() - started) * 1000
    return GenerationOutcome(
        finish_reason=(
            FINISH_FROM_WIRE[last.finish_reason].value
            if last and last.finish_reason in FINISH_FROM_WIRE
            else "error"
        ),
        prompt_tokens=sum(r.usage.prompt_tokens for r in results),
        completion_tokens=sum(r.usage.completion_tokens for r in results),
        cached_prompt_tokens=sum(r.usage.cached_prompt_tokens for r in results),
        queue_ms=sum(r.timings.queue_ms for r in results),
        time_to_first_token_ms=results[0].timings.time_to_first_token_ms if results else 0.0,
        prefill_ms=sum(r.timings.prefill_ms for r in results),
        decode_ms=sum(r.timings.decode_ms for r in results),
        total_ms=total_ms,
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
