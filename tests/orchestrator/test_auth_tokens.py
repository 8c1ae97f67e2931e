"""Token grants from settings and mounted files; secrets stay out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from raildebug.grpc_runtime.auth import TokenGrant, load_grants
from raildebug.settings import RetrieverSettings


def test_grants_come_from_env_entries_and_the_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("# team tokens\nops  tok-ops /raildebug.v1.Orchestrator/Feedback\n\n")
    settings = RetrieverSettings(auth_tokens=SecretStr("ci tok-ci; bot tok-bot /a/ /b/"))
    settings = settings.model_copy(update={"auth_tokens_file": secret})
    grants = load_grants(settings)
    assert grants == [
        TokenGrant("ci", "tok-ci"),
        TokenGrant("bot", "tok-bot", ("/a/", "/b/")),
        TokenGrant("ops", "tok-ops", ("/raildebug.v1.Orchestrator/Feedback",)),
    ]
    assert grants[1].allows("/b/X") and not grants[1].allows("/c/X")
    assert grants[0].allows("/anything/At")
    assert "tok-" not in repr(grants) and "tok-" not in repr(settings)


def test_no_tokens_means_no_authentication() -> None:
    assert load_grants(RetrieverSettings()) == []


def test_bad_entries_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"auth_tokens entry 1 .* token is missing"):
        load_grants(RetrieverSettings(auth_tokens=SecretStr("lonely")))
    with pytest.raises(ValueError, match="mount the token secret"):
        load_grants(RetrieverSettings(auth_tokens_file=tmp_path / "absent"))
