"""Turns generated token bytes into safe text deltas.

Tokens can end in the middle of a UTF-8 character, and a stop sequence can span several
tokens; callers must never see half a character or the start of a stop sequence that then
completes. This module holds such text back until it is decided.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamStep:
    text: str  # safe to emit now
    stopped: bool  # a stop sequence was found; nothing more may be emitted


class StopAwareTextStream:
    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._pending = ""
        self._stopped = False

    def feed(self, piece: bytes) -> StreamStep:
        if self._stopped:
            return StreamStep("", True)
        self._pending += self._decoder.decode(piece)
        hit = self._earliest_stop()
        if hit is not None:
            text, self._pending, self._stopped = self._pending[:hit], "", True
            return StreamStep(text, True)
        keep = self._longest_stop_prefix_suffix()
        cut = len(self._pending) - keep
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return StreamStep(text, False)

    def flush(self) -> str:
        """Text still held back when generation ended without a stop sequence."""
        if self._stopped:
            return ""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return text

    def _earliest_stop(self) -> int | None:
        positions = [p for p in (self._pending.find(s) for s in self._stop) if p >= 0]
        return min(positions) if positions else None

    def _longest_stop_prefix_suffix(self) -> int:
        """Length of the longest tail of pending text that could still grow into a stop."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest
