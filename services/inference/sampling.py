"""Per-sequence llama.cpp sampler chains: each request keeps its own seed, penalties and grammar.

A chain is built in the caller's thread (so a bad grammar fails the call before it queues) and is
then used only by the engine thread. With a grammar, a token is sampled first and checked alone
(the common case costs one candidate, not the 150k-262k of the vocabulary); a rejected token falls
back to the grammar over the whole vocabulary before the chain, so that top-k cannot leave no
token the grammar allows.

The grammar is kept out of llama.cpp's chain: when a grammar leaves no token allowed (a rule
that can never match, e.g. an empty character class), llama.cpp's own sampling would pick a
token the grammar forbids and then throw "Unexpected empty grammar stack" from C++, which ends
the whole process. Here the grammar only ever accepts a token it allowed; with nothing allowed,
`sample` raises NoTokenAllowed for this sequence only.
"""

from __future__ import annotations

import ctypes
import random

import llama_cpp
import numpy as np

from raildebug.errors import InvalidRequest
from services.inference.grammar import check_grammar, schema_to_grammar
from services.inference.llama_native import NativeModel
from services.inference.models import Sampling

PENALTY_LAST_N = 64


class NoTokenAllowed(Exception):
    """The grammar allows no token at this point (or the sampled one): end this sequence."""


class _Candidates:
    """A reusable llama_token_data_array over the whole vocabulary, filled from logits."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._data = (llama_cpp.llama_token_data * n_vocab)()
        self._view = np.ctypeslib.as_array(self._data)  # fields id, logit, p
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self.array = llama_cpp.llama_token_data_array(
            data=self._data, size=n_vocab, selected=-1, sorted=False
        )

    def load(self, logits: np.ndarray | None) -> None:
        self._view["id"] = self._ids
        self._view["logit"] = 0.0 if logits is None else logits
        self._view["p"] = 0.0
        self.array.size = self.n_vocab
        self.array.selected = -1
        self.array.sorted = False

    def allowed(self) -> np.ndarray:
        """Per token id: has a finite logit (call right after the grammar, before reordering)."""
        allowed: np.ndarray = np.isfinite(self._view["logit"])
        return allowed

    def selected(self) -> int:
        index = int(self.array.selected)
        if not 0 <= index < int(self.array.size):
            raise NoTokenAllowed("the sampler selected no token")
        return int(self._data[index].id)


class SamplerChain:
    def __init__(self, model: NativeModel, sampling: Sampling, grammar: str = "") -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        self._grammar: llama_cpp.llama_sampler_p | None = None
        self._candidates: _Candidates | None = None
        self._single = (llama_cpp.llama_token_data * 1)()
        self._n_vocab = model.n_vocab
        # How often the sampled token passed the grammar as it was, and how often the grammar had
        # to mask the whole vocabulary (the benchmark and the tests read these).
        self.fast_path_tokens = 0
        self.full_grammar_passes = 0
        try:
            self._build(model, sampling, grammar)
        except BaseException:
            self.close()
            raise

    def _build(self, model: NativeModel, s: Sampling, grammar: str) -> None:
        if grammar:  # checked by grammar_for
            constraint = llama_cpp.llama_sampler_init_grammar(
                model.vocab, grammar.encode("utf-8"), b"root"
            )
            if not constraint:
                raise InvalidRequest(
                    "grammar does not parse as llama.cpp GBNF with a 'root' rule, or is left "
                    "recursive; see "
                    "https://github.com/ggml-org/llama.cpp/blob/master/grammars/README.md"
                )
            self._grammar = constraint
            self._candidates = _Candidates(model.n_vocab)
            if not self._grammar_allows_some_token():
                raise InvalidRequest(
                    "grammar allows no token at its start: its root rule can never match a "
                    "character this model produces (an empty character class such as [z-a], "
                    "or only NUL characters)"
                )
        if s.repeat_penalty is not None and s.repeat_penalty != 1.0:
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab, PENALTY_LAST_N, s.repeat_penalty, 0.0, 0.0
                )
            )
        if not s.temperature:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if s.top_k:  # more than the vocabulary keeps everything (and fits llama.cpp's int32)
            self._add(llama_cpp.llama_sampler_init_top_k(min(s.top_k, model.n_vocab)))
        if s.top_p is not None and s.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(s.temperature))
        seed = s.seed if s.seed is not None else random.randrange(2**31)
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: llama_cpp.llama_context_p, batch_index: int) -> int:
        """Pick the next token from the logits at `batch_index` and advance the chain's state.

        With a grammar, the token is sampled first without it and checked against the grammar
        alone (one candidate: cheap); only a rejected token pays for the grammar over the whole
        vocabulary, then the chain samples again from what it allows. Sampling from the full
        distribution and resampling from the allowed part on rejection gives each allowed token
        p(token) / p(allowed), exactly the distribution of applying the grammar first; greedy
        picks the same token either way.

        Raises NoTokenAllowed when the grammar leaves nothing to pick; the sequence must end.
        """
        if self._grammar is None or self._candidates is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, batch_index))
        candidates = self._candidates
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx, batch_index), shape=(self._n_vocab,)
        )
        candidates.load(logits)
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(candidates.array))
        token = candidates.selected()
        if 0 <= token < self._n_vocab and self._grammar_allows(token, float(logits[token])):
            self.fast_path_tokens += 1
        else:
            token = self._sample_under_grammar(logits)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _grammar_allows(self, token: int, logit: float) -> bool:
        """The grammar's verdict on one token, without touching its state."""
        assert self._grammar is not None
        self._single[0].id = token  # type: ignore[assignment]  # ctypes takes an int
        self._single[0].logit = logit
        self._single[0].p = 0.0
        single = llama_cpp.llama_token_data_array(
            data=self._single, size=1, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(single))
        return bool(np.isfinite(self._single[0].logit))

    def _sample_under_grammar(self, logits: np.ndarray) -> int:
        """The slow path: the grammar masks the whole vocabulary, then the chain samples."""
        assert self._grammar is not None and self._candidates is not None
        candidates = self._candidates
        candidates.load(logits)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(candidates.array))
        allowed = candidates.allowed()
        if not allowed.any():
            raise NoTokenAllowed(
                "the grammar allows no token here: a rule can never match what the model "
                "can write next (an empty character class, or characters no token produces)"
            )
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(candidates.array))
        token = candidates.selected()
        if not 0 <= token < self._n_vocab or not allowed[token]:
            raise NoTokenAllowed("the sampler picked a token the grammar does not allow")
        self.full_grammar_passes += 1
        return token

    def _grammar_allows_some_token(self) -> bool:
        assert self._grammar is not None and self._candidates is not None
        self._candidates.load(None)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._candidates.array))
        return bool(self._candidates.allowed().any())

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None


def grammar_for(grammar: str, json_schema: str) -> str:
    """The checked GBNF text that constrains a request (empty: unconstrained).

    Both backends call it: a grammar that would crash llama.cpp is refused before it reaches
    this process's engine or an OpenAI-compatible llama.cpp server.
    """
    if json_schema:
        return schema_to_grammar(json_schema)  # checks the grammar it makes
    if grammar:
        check_grammar(grammar)
    return grammar
