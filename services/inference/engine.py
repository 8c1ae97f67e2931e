"""The gguf backend: one GGUF, many concurrent streams, continuous batching in one engine thread.

Callers validate and tokenize in their own thread, then hand a sequence to the engine. The engine
thread alone owns the llama context: each step it admits waiting requests into free slots
(reusing any cached prompt prefix), builds one batch of every running sequence's next token plus
chunks of new prompts, runs one llama_decode, and samples each sequence with its own sampler.
A sequence whose caller cancelled, disconnected or ran out of time is dropped, and its KV cells
freed, at the start of the next step; the others never notice.

Admission fails fast: a full queue, or a deadline the queue ahead makes impossible (estimated
from the work ahead and the step costs the engine measures, services/inference/admission.py),
is refused with Overloaded (RESOURCE_EXHAUSTED, retry-after-ms) before anything waits.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from collections.abc import Sequence as Texts
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import InvalidRequest, NotReady, Overloaded
from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from services.inference import instruments
from services.inference.admission import AdmissionModel, Work, describe
from services.inference.chat import render_chat
from services.inference.llama_native import NativeContext, NativeModel, TokenBatch
from services.inference.models import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    TokenCounts,
    deadline_exceeded,
)
from services.inference.sampling import NoTokenAllowed, SamplerChain, grammar_for
from services.inference.sequence import IsCancelled, Sequence
from services.inference.slots import Placement, SlotTable
from services.inference.speculation import PromptLookup
from services.inference.validation import validate, with_defaults

log = get_logger(__name__)

_FTYPE_NAMES = {
    getattr(llama_cpp, name): name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_")
    for name in dir(llama_cpp)
    if name.startswith("LLAMA_FTYPE_") and isinstance(getattr(llama_cpp, name), int)
}
_EVENT_POLL_S = 1.0
_RETRY_AFTER_S = 1.0


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int = 2,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        slots: int = 4,
        max_queue: int = 16,
        default_max_tokens: int = 256,
        lora_path: Path | None = None,
        lora_scale: float = 1.0,
        served_name: str = "",
        draft_max: int = 0,
        draft_ngram_max: int = 5,
        draft_step_tokens: int = 4,
        prefill_chunk: int = 0,
    ) -> None:
        """`served_name`: the catalog name the model is served by (reported by Info and in
        every answer); empty: the GGUF's own name.

        `draft_max` > 0 turns on prompt-lookup speculation: up to that many drafted tokens per
        sequence and step, while the step's decoding tokens (one per running sequence plus
        drafts) stay within `draft_step_tokens`, past which a CPU step costs more than drafts
        save. `prefill_chunk` > 0 caps the prompt tokens a step evaluates while other sequences
        are decoding, so a long new prompt delays their next token by one bounded chunk.
        """
        self._model_path = model_path
        self._n_gpu_layers = n_gpu_layers
        self._n_threads = n_threads
        self._max_queue = max_queue
        self._default_max_tokens = default_max_tokens
        self._draft_max = draft_max
        self._draft_ngram_max = draft_ngram_max
        self._draft_step_tokens = draft_step_tokens
        self._prefill_chunk = prefill_chunk
        self._model = NativeModel(model_path, n_gpu_layers, lora_path, lora_scale)
        # every running sequence decodes in every step, with its draft
        step_tokens = max(n_batch, slots + draft_max)
        self._context = NativeContext(
            self._model, n_ctx=n_ctx, n_batch=step_tokens, n_seq_max=slots, n_threads=n_threads
        )
        self._batch = TokenBatch(step_tokens)
        self._slots = SlotTable(slots, self._context.n_ctx)
        self._admission = AdmissionModel(slots)
        self._architecture = self._model.meta("general.architecture") or "unknown"
        self._name = served_name or self._model.meta("general.name") or model_path.stem
        if lora_path is not None:
            self._name += f" + {lora_path.name}"
        self._chat_template = self._model.meta("tokenizer.chat_template")
        self._bos_text = self._model.special_text(self._model.bos)
        self._eos_text = self._model.special_text(self._model.eos)
        self._lock = threading.Condition()
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="llama-engine", daemon=True)
        self._thread.start()
        log.info(
            "model loaded",
            model=self._name,
            path=str(model_path),
            lora=str(lora_path) if lora_path is not None else None,
            n_ctx=self._context.n_ctx,
            slots=slots,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
        )

    @property
    def model_name(self) -> str:
        return self._name

    def info(self) -> ModelInfo:
        with self._lock:
            busy, waiting = len(self._running), len(self._waiting)
        ftype = int(self._model.meta("general.file_type") or -1)
        trained = self._model.meta(f"{self._architecture}.context_length")
        return ModelInfo(
            model=self.model_name,
            architecture=self._architecture,
            quantization=_FTYPE_NAMES.get(ftype, f"ftype {ftype}"),
            context_length=self._context.n_ctx,
            trained_context_length=int(trained or 0),
            slots=len(self._slots.slots),
            busy_slots=busy,
            queue_depth=waiting,
            n_gpu_layers_requested=self._n_gpu_layers,
            n_gpu_layers_offloaded=_offloaded_layers(self._n_gpu_layers, self._model.n_layers),
            n_layers=self._model.n_layers,
            n_threads=self._n_threads,
            model_path=str(self._model_path),
            backend="gguf",
        )

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenize(text))

    def token_counts(self, texts: Texts[str]) -> TokenCounts:
        """Exact counts from the model's own tokenizer (a BOS token included where the model
        adds one: an overcount by one keeps a packed budget safe)."""
        return TokenCounts(tuple(self.count_tokens(text) for text in texts))

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: IsCancelled = lambda: False,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]:
        """Validate, queue for a slot, then stream deltas and one final outcome.

        Raises InvalidRequest or Overloaded before anything is streamed; everything that
        goes wrong after that ends the stream with an outcome instead of an exception.
        Closing the iterator early (client gone) cancels the sequence.
        """
        arrived = time.perf_counter()
        max_tokens = request.max_tokens or self._default_max_tokens
        validate(request, max_tokens)
        prompt = self._prompt_tokens(request, max_tokens)
        sampler = SamplerChain(
            self._model,
            with_defaults(request.sampling),
            grammar_for(request.grammar, request.json_schema),
        )
        sequence = Sequence(request, prompt, max_tokens, sampler, is_cancelled, deadline, arrived)
        if self._draft_max > 0:
            sequence.lookup = PromptLookup(self._draft_ngram_max, self._draft_max)
            sequence.lookup.extend(prompt)
        try:
            self._submit(sequence)
        except BaseException:
            sampler.close()
            raise
        try:
            while True:
                try:
                    event = sequence.events.get(timeout=_EVENT_POLL_S)
                except queue.Empty:
                    if not self._thread.is_alive():
                        yield sequence.outcome(FinishReason.ERROR, self._name, "engine stopped")
                        return
                    continue
                if isinstance(event, GenerationOutcome):
                    if event.finish_reason is FinishReason.DEADLINE:
                        raise deadline_exceeded(event, max_tokens)
                    yield event
                    return
                yield event
        finally:
            sequence.abandoned.set()  # a no-op once finished; otherwise freed next step

    def close(self) -> None:
        """Stop the engine thread (waiting and running streams end cancelled), free llama.cpp."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join()
        self._batch.close()
        self._context.close()
        self._model.close()

    def _prompt_tokens(self, request: GenerationRequest, max_tokens: int) -> list[int]:
        if request.chat is not None:
            prompt = render_chat(
                request.chat, self._chat_template, bos=self._bos_text, eos=self._eos_text
            )
        else:
            prompt = request.prompt or ""
        tokens = self._model.tokenize(prompt)
        n_ctx = self._context.n_ctx
        if len(tokens) + max_tokens > n_ctx:
            raise InvalidRequest(
                f"prompt is {len(tokens)} tokens and max_tokens is {max_tokens}, but the "
                f"context holds {n_ctx}: shorten the prompt or lower max_tokens"
            )
        return tokens

    def _submit(self, sequence: Sequence) -> None:
        with self._lock:
            if self._closed:
                raise NotReady("inference engine is shutting down; retry on another replica")
            slots = len(self._slots.slots)
            if len(self._running) + len(self._waiting) >= slots + self._max_queue:
                instruments.rejected.add(1)
                raise Overloaded(
                    f"inference is busy: {len(self._running)} of {slots} slots generating and "
                    f"{len(self._waiting)} waiting (queue limit {self._max_queue}); retry shortly",
                    retry_after_s=_RETRY_AFTER_S,
                )
            self._admit_by_deadline(sequence)
            self._waiting.append(sequence)
            instruments.queue_size.add(1)
            self._lock.notify_all()

    def _admit_by_deadline(self, sequence: Sequence) -> None:
        """Refuse now a request that the queue ahead would make miss its deadline (under the
        lock: running and waiting do not change; their progress is read as it stands)."""
        if sequence.deadline is None:
            return
        model = self._admission
        ahead = [_remaining(model, s) for s in self._running]
        ahead += [model.work(len(s.prompt), s.max_tokens) for s in self._waiting]
        estimate = model.estimate(ahead, model.work(len(sequence.prompt), sequence.max_tokens))
        retry_after_s = model.refusal(estimate, sequence.deadline)
        if estimate is None or retry_after_s is None:
            return
        instruments.rejected.add(1)
        raise Overloaded(
            f"inference is busy and this request would miss its deadline: "
            f"{describe(estimate, sequence.deadline, time.monotonic())}; retry in "
            f"{math.ceil(retry_after_s * 1000)} ms or allow more time",
            retry_after_s=retry_after_s,
        )

    # --- engine thread -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while self._schedule():
                self._step()
        except Exception:  # keep callers from hanging; they see "engine stopped"
            log.exception("engine thread failed")
        finally:
            with self._lock:
                everyone = [*self._waiting, *self._running]
            for sequence in everyone:
                self._finish(sequence, FinishReason.CANCELLED)

    def _schedule(self) -> bool:
        """Drop departed callers, admit waiting ones; False once the engine is closed."""
        with self._lock:
            while not self._running and not self._waiting and not self._closed:
                self._lock.wait()
            if self._closed:
                return False
            departed = [
                (s, reason)
                for s in (*self._waiting, *self._running)
                if (reason := s.departure()) is not None
            ]
        for sequence, reason in departed:
            self._finish(sequence, reason)
        with self._lock:
            while self._waiting:
                head = self._waiting[0]
                placement = self._slots.place(head.prompt, len(head.prompt) + head.max_tokens)
                if placement is None:
                    break
                self._waiting.popleft()
                self._start(head, placement)
            return True

    def _start(self, sequence: Sequence, placement: Placement) -> None:
        slot = placement.slot
        if placement.source is slot:
            self._context.forget(slot.seq_id, placement.reused)
        else:
            self._context.share_prefix(placement.source.seq_id, slot.seq_id, placement.reused)
        slot.cached = sequence.prompt[: placement.reused]
        slot.reserved = len(sequence.prompt) + sequence.max_tokens
        for dropped in self._slots.over_budget(keep=placement.source):
            self._context.forget(dropped.seq_id)
            dropped.cached = []
        sequence.slot = slot
        sequence.evaluated = sequence.cached = placement.reused
        sequence.admitted_at = time.perf_counter()
        self._running.append(sequence)
        instruments.queue_size.add(-1)
        instruments.busy_slots.add(1)
        instruments.queue_wait.record(sequence.admitted_at - sequence.arrived)

    def _step(self) -> None:
        """One llama_decode: a token (and maybe a draft) for each decoding sequence, then
        prompt chunks."""
        batch = self._batch
        batch.clear()
        running = list(self._running)
        decoding = [s for s in running if s.next_token is not None and s.slot is not None]
        draft_room = max(0, self._draft_step_tokens - len(decoding))
        verifications: list[_Verification] = []
        for sequence in decoding:
            draft = self._draft(sequence, draft_room)
            draft_room -= len(draft)
            verifications.append(_Verification.add(batch, sequence, draft))
        prompt_room = batch.room
        if verifications and self._prefill_chunk > 0:
            prompt_room = min(prompt_room, self._prefill_chunk)
        prefills: list[tuple[Sequence, int, int]] = []  # sequence, tokens fed, logits index
        for sequence in running:
            slot = sequence.slot
            if sequence.next_token is not None or slot is None or prompt_room <= 0:
                continue
            chunk = sequence.prompt[sequence.evaluated : sequence.evaluated + prompt_room]
            prompt_room -= len(chunk)
            ends = sequence.evaluated + len(chunk) == len(sequence.prompt)
            for offset, token in enumerate(chunk):
                wants_logits = ends and offset == len(chunk) - 1  # the first token's logits
                index = batch.add(token, sequence.evaluated + offset, slot.seq_id, wants_logits)
            prefills.append((sequence, len(chunk), index if ends else -1))
        if not batch.size:
            return
        step_started = time.perf_counter()
        status = self._context.decode(batch)
        if status != 0:
            log.error("llama_decode failed", status=status, batch=batch.size)
            for sequence in [v.sequence for v in verifications] + [p[0] for p in prefills]:
                self._finish(sequence, FinishReason.ERROR, f"llama_decode returned {status}")
            return
        for sequence, fed, index in prefills:
            assert sequence.slot is not None
            sequence.slot.cached.extend(
                sequence.prompt[sequence.evaluated : sequence.evaluated + fed]
            )
            sequence.evaluated += fed
            if index >= 0:
                self._sample_and_accept(sequence, [index], [])
        for verification in verifications:
            verification.fed()
            self._sample_and_accept(verification.sequence, verification.indices, verification.draft)
        self._admission.cost.observe(
            batch.size - len(decoding), len(decoding), time.perf_counter() - step_started
        )

    def _draft(self, sequence: Sequence, room: int) -> list[int]:
        """Prompt-lookup tokens to verify after the sequence's next token (never past the
        tokens it may still produce, so its reserved cells always suffice)."""
        if sequence.lookup is None or room <= 0:
            return []
        left = sequence.max_tokens - sequence.produced - 1
        return sequence.lookup.draft(min(room, left))

    def _sample_and_accept(self, sequence: Sequence, indices: list[int], draft: list[int]) -> None:
        """Sample at each index while the draft agrees; keep the agreed KV, drop the rest.

        indices[0] holds the logits after the sequence's last fed token; indices[k] those after
        draft[k - 1]. A drafted token counts only if the sampler, given the real prefix, picked
        it: every emitted token is sampled exactly as without a draft (greedy output is the
        same; with sampling the distribution is), and sampling stops at the first mismatch.
        """
        slot = sequence.slot
        assert slot is not None
        tokens: list[int] = []
        accepted = 0  # drafted tokens the sampler picked itself
        try:
            for index in indices:
                token = sequence.sampler.sample(self._context.ctx, index)
                tokens.append(token)
                if accepted >= len(draft) or token != draft[accepted]:
                    break
                accepted += 1
                if self._model.is_end_of_generation(token):
                    break
        except NoTokenAllowed as error:  # this request's grammar is stuck; others go on
            self._finish(sequence, FinishReason.ERROR, str(error))
            return
        if draft:
            slot.cached.extend(draft[:accepted])
            if accepted < len(draft):  # free the cells of the drafted tokens the sampler refused
                self._context.forget(slot.seq_id, len(slot.cached))
            assert sequence.lookup is not None
            sequence.lookup.settle(len(draft), accepted)
        for k, token in enumerate(tokens):
            if sequence.lookup is not None:
                sequence.lookup.extend([token])
            self._accept(sequence, token)
            if sequence.slot is None:  # finished: end of generation, a stop string or length
                return
            if k < accepted:
                sequence.next_token = None  # already in the KV cache as a confirmed draft

    def _accept(self, sequence: Sequence, token: int) -> None:
        now = time.perf_counter()
        if sequence.first_token_at is None:
            sequence.first_token_at = now
        sequence.last_token_at = now
        if self._model.is_end_of_generation(token):
            self._finish(sequence, FinishReason.EOS)
            return
        sequence.produced += 1
        step = sequence.text.feed(self._model.piece(token))
        if step.text:
            sequence.emit(step.text, now)
        if step.stopped:
            self._finish(sequence, FinishReason.STOP)
        elif sequence.produced >= sequence.max_tokens:
            self._finish(sequence, FinishReason.LENGTH)
        else:
            sequence.next_token = token

    def _finish(self, sequence: Sequence, finish: FinishReason, error: str = "") -> None:
        """End a sequence: free or keep its KV cells, release its slot, send the outcome."""
        with self._lock:
            if sequence in self._running:
                self._running.remove(sequence)
                instruments.busy_slots.add(-1)
            elif sequence in self._waiting:
                self._waiting.remove(sequence)
                instruments.queue_size.add(-1)
        slot = sequence.slot
        if slot is not None:
            if not finish.completed:
                self._context.forget(slot.seq_id)  # llama_memory_seq_rm of the whole sequence
                slot.cached = []
            slot.reserved = 0
            sequence.slot = None
        sequence.sampler.close()
        if finish.completed:
            self._admission.completion.observe(sequence.produced, sequence.max_tokens)
            tail = sequence.text.flush()
            if tail:
                sequence.emit(tail, time.perf_counter())
        outcome = sequence.outcome(finish, self._name, error)
        instruments.generation_finished(
            instruments.generation_attributes(
                conv.GEN_AI_PROVIDER_LLAMA_CPP, self._name, sequence.request
            ),
            finish,
            arrived=sequence.arrived,
            first_token_at=sequence.first_token_at,
            last_token_at=sequence.last_token_at,
            ended=time.perf_counter(),
            prompt_tokens=len(sequence.prompt) if sequence.admitted_at is not None else 0,
            cached_tokens=sequence.cached,
            completion_tokens=sequence.produced,
            timed_tokens=sequence.produced + (finish is FinishReason.EOS),
            drafted_tokens=outcome.drafted_tokens,
            accepted_draft_tokens=outcome.accepted_draft_tokens,
        )
        sequence.events.put(outcome)
        log.info(
            "generation finished",
            request_id=sequence.request.request_id,
            finish=finish.value,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cached=outcome.cached_prompt_tokens,
            drafted=outcome.drafted_tokens,
            accepted_drafts=outcome.accepted_draft_tokens,
            queue_ms=round(outcome.queue_ms, 1),
            total_ms=round(outcome.total_ms, 1),
        )


@dataclass
class _Verification:
    """A decoding sequence's tokens in this step: its next token, then its draft."""

    sequence: Sequence
    token: int
    draft: list[int]
    indices: list[int]

    @classmethod
    def add(cls, batch: TokenBatch, sequence: Sequence, draft: list[int]) -> _Verification:
        slot, token = sequence.slot, sequence.next_token
        assert slot is not None and token is not None
        position = len(slot.cached)
        indices = [
            batch.add(t, position + k, slot.seq_id, True) for k, t in enumerate([token, *draft])
        ]
        return cls(sequence, token, draft, indices)

    def fed(self) -> None:
        """The decode succeeded: the next token is in the KV cache (the draft not yet)."""
        assert self.sequence.slot is not None
        self.sequence.slot.cached.append(self.token)
        self.sequence.next_token = None


def _remaining(model: AdmissionModel, sequence: Sequence) -> Work:
    """A running sequence's expected remaining work."""
    unevaluated = len(sequence.prompt) - sequence.evaluated
    return model.work(unevaluated, sequence.max_tokens, sequence.produced)


def _offloaded_layers(requested: int, n_layers: int) -> int:
    if not llama_cpp.llama_supports_gpu_offload():
        return 0
    return n_layers if requested < 0 else min(requested, n_layers)
