"""Per-sequence llama.cpp sampler chains: each request keeps its own seed, penalties and grammar.

A chain is built in the caller's thread (so a bad grammar fails the call before it queues) and is
then used only by the engine thread. The grammar goes first so that it sees the whole vocabulary:
truncating with top-k before it could leave no token the grammar allows.
"""

from __future__ import annotations

import random

import llama_cpp
from llama_cpp.llama_grammar import json_schema_to_gbnf

from raildebug.errors import InvalidRequest
from services.inference.llama_native import NativeModel
from services.inference.models import Sampling

PENALTY_LAST_N = 64


class SamplerChain:
    def __init__(self, model: NativeModel, sampling: Sampling, grammar: str = "") -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        try:
            self._build(model, sampling, grammar)
        except BaseException:
            self.close()
            raise

    def _build(self, model: NativeModel, s: Sampling, grammar: str) -> None:
        if grammar:
            constraint = llama_cpp.llama_sampler_init_grammar(
                model.vocab, grammar.encode("utf-8"), b"root"
            )
            if not constraint:
                raise InvalidRequest(
                    "grammar does not parse as llama.cpp GBNF with a 'root' rule; see "
                    "https://github.com/ggml-org/llama.cpp/blob/master/grammars/README.md"
                )
            self._add(constraint)
        if s.repeat_penalty is not None and s.repeat_penalty != 1.0:
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab, PENALTY_LAST_N, s.repeat_penalty, 0.0, 0.0
                )
            )
        if not s.temperature:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if s.top_k:
            self._add(llama_cpp.llama_sampler_init_top_k(s.top_k))
        if s.top_p is not None and s.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(s.temperature))
        seed = s.seed if s.seed is not None else random.randrange(2**31)
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: llama_cpp.llama_sampler_p) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: llama_cpp.llama_context_p, batch_index: int) -> int:
        """Pick the next token from the logits at `batch_index` and advance the chain's state."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, batch_index))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def grammar_for(grammar: str, json_schema: str) -> str:
    """The GBNF text that constrains a request (empty: unconstrained)."""
    if not json_schema:
        return grammar
    try:
        return str(json_schema_to_gbnf(json_schema))
    except (ValueError, KeyError, TypeError, NotImplementedError) as error:
        raise InvalidRequest(f"json_schema cannot be turned into a grammar: {error}") from error
