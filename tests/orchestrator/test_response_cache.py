"""Response cache: what the key covers, TTL and size bounds, and the Redis-backed variant."""

from __future__ import annotations

import time

import pytest

from raildebug.domain import FinishReason, GenerationOutcome, PassageFilter
from services.orchestrator.models import ContextPassage, DebugQuestion
from services.orchestrator.response_cache import (
    CachedAnswer,
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
    cache_key,
)

ENTRY = CachedAnswer(
    passages=[
        ContextPassage(
            "p1", "E73-B text", "docs/errors-points.md", 3, 9, "E73-B", "doc", 0.8, "[1]"
        )
    ],
    deltas=["Cause:", " lock", " timeout", " [1]."],
    generation=GenerationOutcome(
        FinishReason.STOP, 400, 12, 0, 1.0, 90.0, 80.0, 300.0, 400.0, "Gemma 3 270m"
    ),
)


def _key(question: DebugQuestion, prompt: str = "rail_fix@1", model: str = "m") -> str:
    return cache_key(question, 5, 384, prompt, model)


def test_case_and_spacing_do_not_change_the_key_but_everything_else_does() -> None:
    base = DebugQuestion(question="Why E73-B on P12?")
    assert _key(base) == _key(DebugQuestion(question="  why   e73-b on P12? "))
    different = {
        _key(DebugQuestion(question="Why E73-B on P13?")),
        _key(DebugQuestion(question="Why E73-B on P12?", error_log="E73-B P12")),
        _key(DebugQuestion(question="Why E73-B on P12?", filter=PassageFilter(kinds=("code",)))),
        _key(base, prompt="rail_fix@2"),
        _key(base, model="other"),
        cache_key(base, 6, 384, "rail_fix@1", "m"),
        cache_key(base, 5, 100, "rail_fix@1", "m"),
    }
    assert _key(base) not in different and len(different) == 7


def _round_trip(cache: ResponseCache) -> None:
    assert cache.get("k") is None
    cache.put("k", ENTRY)
    assert cache.get("k") == ENTRY


def test_memory_cache_expires_and_stays_bounded() -> None:
    cache = MemoryResponseCache(ttl_s=0.2, max_entries=2)
    _round_trip(cache)
    time.sleep(0.3)
    assert cache.get("k") is None
    for key in ("a", "b", "c"):
        cache.put(key, ENTRY)
    assert cache.get("a") is None and cache.get("c") == ENTRY


def test_redis_cache_round_trips_and_expires(redis_url: str) -> None:
    cache = RedisResponseCache(redis_url, ttl_s=0.3, key_prefix="test-cache:")
    _round_trip(cache)
    other_replica = RedisResponseCache(redis_url, ttl_s=0.3, key_prefix="test-cache:")
    assert other_replica.get("k") == ENTRY
    time.sleep(0.5)
    assert cache.get("k") is None


def test_unreachable_redis_turns_the_cache_off_without_failing() -> None:
    from tests.support.net import free_port

    cache = RedisResponseCache(f"redis://127.0.0.1:{free_port()}/0", ttl_s=1)
    cache.put("k", ENTRY)
    assert cache.get("k") is None


@pytest.mark.parametrize("bad", ["", "  "])
def test_blank_questions_still_hash(bad: str) -> None:
    assert len(_key(DebugQuestion(question=bad))) == 64
