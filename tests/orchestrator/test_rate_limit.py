"""Token buckets: burst then rate, refill over time, and one shared budget across replicas."""

from __future__ import annotations

import pytest

from raildebug.grpc_runtime.rate_limit import MemoryTokenBuckets, RedisTokenBuckets


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_buckets_allow_the_burst_then_say_how_long_to_wait() -> None:
    clock = ManualClock()
    buckets = MemoryTokenBuckets(rate_per_s=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # per client
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 60
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # refills up to the burst


def test_memory_buckets_forget_idle_clients_when_full() -> None:
    clock = ManualClock()
    buckets = MemoryTokenBuckets(rate_per_s=1.0, burst=1, clock=clock, max_clients=2)
    buckets.take("a")
    buckets.take("b")
    clock.now += 10
    buckets.take("c")
    assert len(buckets._buckets) == 1


def test_redis_buckets_are_one_budget_for_every_replica(redis_url: str) -> None:
    replica_a = RedisTokenBuckets(redis_url, rate_per_s=0.01, burst=4, key_prefix="test-rl:")
    replica_b = RedisTokenBuckets(redis_url, rate_per_s=0.01, burst=4, key_prefix="test-rl:")
    waits = [(replica_a if n % 2 else replica_b).take("team-a") for n in range(5)]
    assert waits[:4] == [0.0] * 4
    assert waits[4] == pytest.approx(100, rel=0.05)  # 1 token at 0.01/s
    assert replica_b.take("team-b") == 0.0


def test_unreachable_redis_lets_calls_through() -> None:
    from tests.support.net import free_port

    buckets = RedisTokenBuckets(f"redis://127.0.0.1:{free_port()}/0", rate_per_s=1, burst=1)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]


def test_wait_says_how_long_until_a_token_without_taking_one() -> None:
    clock = ManualClock()
    buckets = MemoryTokenBuckets(rate_per_s=2.0, burst=2, clock=clock)
    assert buckets.wait("a") == 0.0  # a client never seen has a full bucket
    buckets.take("a")
    buckets.take("a")
    assert buckets.wait("a") == pytest.approx(0.5)
    assert buckets.wait("a") == pytest.approx(0.5)  # asking took nothing
    clock.now += 0.5
    assert buckets.wait("a") == 0.0


def test_redis_wait_reads_the_shared_bucket_without_taking(redis_url: str) -> None:
    buckets = RedisTokenBuckets(redis_url, rate_per_s=0.01, burst=2, key_prefix="test-wait:")
    assert buckets.wait("a") == 0.0
    buckets.take("a")
    assert buckets.wait("a") == 0.0
    buckets.take("a")
    assert buckets.wait("a") == pytest.approx(100, rel=0.05)
    assert buckets.wait("a") == pytest.approx(100, rel=0.05)
    assert buckets.take("a") == pytest.approx(100, rel=0.05)
