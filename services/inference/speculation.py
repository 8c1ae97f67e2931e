"""Prompt-lookup drafts: guess a sequence's next tokens from its own prompt and output so far.

RAG answers copy identifiers, config keys and whole sentences from the retrieved passages, so
the tokens that followed the latest n-gram the last time it occurred are often the next ones.
The engine feeds such a draft in the same llama_decode as everything else and keeps the prefix
the model's own sampler agrees with (services/inference/engine.py); a wrong draft costs compute,
never output. The draft length adapts per sequence: halved after a draft that was rejected at
its first token, doubled after one accepted whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_NGRAM = 3  # shorter matches draft more often but are accepted too rarely to pay on a CPU


@dataclass
class PromptLookup:
    """One sequence's n-gram index over its tokens, and its draft-length state.

    `index[n]` maps each n-gram to the position right after its latest occurrence that has a
    continuation, so a lookup of the current tail finds an earlier occurrence, never itself.
    """

    max_ngram: int
    max_draft: int
    tokens: list[int] = field(default_factory=list)
    index: dict[int, dict[tuple[int, ...], int]] = field(default_factory=dict)
    window: int = 0
    drafted: int = 0
    accepted: int = 0

    def __post_init__(self) -> None:
        self.index = {n: {} for n in range(MIN_NGRAM, self.max_ngram + 1)}
        self.window = self.max_draft

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            end = len(self.tokens)
            for n, table in self.index.items():
                if end >= n:
                    table[tuple(self.tokens[end - n : end])] = end
            self.tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest earlier match of the current tail."""
        limit = min(limit, self.window)
        if limit <= 0:
            return []
        for n in range(self.max_ngram, MIN_NGRAM - 1, -1):
            if len(self.tokens) < n:
                continue
            start = self.index[n].get(tuple(self.tokens[-n:]))
            if start is not None:
                return self.tokens[start : start + limit]
        return []

    def settle(self, drafted: int, accepted: int) -> None:
        """Record a verified draft and adapt the next draft's length."""
        self.drafted += drafted
        self.accepted += accepted
        if accepted == drafted:
            self.window = min(self.max_draft, self.window * 2)
        elif accepted == 0:
            self.window = max(1, self.window // 2)
