"""Langfuse as the prompt source: when it cannot be reached, the local registry serves."""

from __future__ import annotations

from pathlib import Path

from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompt_sources import LangfusePromptSource, LocalPromptSource
from tests.support.net import free_port


def test_unreachable_langfuse_falls_back_to_the_local_prompt(tmp_path: Path) -> None:
    registry = PromptRegistry(tmp_path)
    source = LangfusePromptSource.connect(
        host=f"http://127.0.0.1:{free_port()}",
        public_key="pk-lf-test",
        secret_key="sk-lf-test",
        fallback=LocalPromptSource(registry),
        timeout_s=1,
        cache_ttl_s=60,
    )
    template = source.resolve("rail_fix", "production")
    assert template.ref == "rail_fix@3"  # the newest shipped version
    assert template.source == registry.resolve("rail_fix", "production").source
    # While Langfuse is considered down, the local registry answers directly.
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@3"
