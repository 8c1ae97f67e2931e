"""Settings have one source of truth: the models in raildebug/settings.py. The flags of
`raildebug serve`, `raildebug config`, `raildebug up` and README's Configure table all come from
them; flags win over env, env over secret files, files over defaults; nothing reads the
environment at import time."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx2
import openai
import pytest
from pydantic import SecretStr

from apps.cli.main import build_parser, main
from apps.cli.settings_flags import settings_overrides
from apps.cli.up import service_environment
from raildebug.errors import DeadlineExceeded, InvalidRequest, NotReady, Overloaded
from raildebug.openai_endpoint import domain_error, open_client, resolve_model
from raildebug.settings import (
    DOCUMENTED_SETTINGS,
    SERVICE_SETTINGS,
    InferenceSettings,
    OpenAISettings,
    OrchestratorSettings,
    ServerSettings,
)
from raildebug.settings_report import (
    BEGIN,
    END,
    README,
    build_settings,
    leaves,
    markdown_table,
    sync_readme,
)
from raildebug.settings_report import main as report_main
from tests.support.paths import REPO_ROOT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RAILDEBUG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAILDEBUG_DATA_DIR", str(tmp_path / "data"))


def _serve_args(*argv: str) -> Any:
    return build_parser().parse_args(["serve", *argv])


# --- generated flags ---------------------------------------------------------------------


def test_every_setting_of_a_service_is_a_flag_of_its_serve_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for service, model in SERVICE_SETTINGS.items():
        with pytest.raises(SystemExit):
            _serve_args(service, "--help")
        help_text = capsys.readouterr().out
        flags = set(re.findall(r"--[a-z0-9-]+", help_text))
        for leaf in leaves(model):
            if leaf.secret:
                assert leaf.flag not in flags, f"{leaf.flag}: secrets must have no flag"
            else:
                assert leaf.flag in flags, f"{service} lacks {leaf.flag}"
    with pytest.raises(SystemExit):
        _serve_args("inference", "--help")
    help_text = " ".join(capsys.readouterr().out.split())
    assert "KV cache cells shared by all slots" in help_text  # the field's description
    assert "[RAILDEBUG_INFERENCE_N_CTX; default: 8192]" in help_text
    assert "--backend {gguf,openai}" in help_text  # a Literal is a choice
    assert "--openai-base-url" in help_text and "--store-dir" not in help_text


def test_flags_win_over_env_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAILDEBUG_INFERENCE_N_CTX", "2048")
    monkeypatch.setenv("RAILDEBUG_INFERENCE_SLOTS", "3")
    monkeypatch.setenv("RAILDEBUG_OPENAI_BASE_URL", "http://from-env:8000/v1")
    monkeypatch.setenv("RAILDEBUG_OPENAI_MODEL", "env-model")
    args = _serve_args(
        "inference",
        "--n-ctx",
        "1024",
        "--backend",
        "openai",
        "--openai-base-url",
        "http://from-flag:8000/v1",
        "--model-path",
        "/models/x.gguf",
    )
    assert args.service == "inference"
    settings = build_settings(InferenceSettings, settings_overrides(args))
    assert settings.n_ctx == 1024  # flag over env
    assert settings.slots == 3  # env over default
    assert settings.max_queue == 16  # default
    assert settings.backend == "openai"
    assert settings.model_path == Path("/models/x.gguf")
    # a flag for one field of the nested group leaves its other fields to env and defaults
    assert settings.openai.base_url == "http://from-flag:8000/v1"
    assert settings.openai.model == "env-model"
    assert settings.openai.timeout_s == 120.0


def test_secrets_have_no_flag_and_bad_values_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (
        ["inference", "--openai-api-key", "sk-x"],
        ["inference", "--auth-tokens", "ci tok"],
        ["orchestrator", "--upstream-token", "tok"],
        ["orchestrator", "--langfuse-secret-key", "sk"],
        ["inference", "--backend", "bogus"],
        ["inference", "--n-ctx", "ten"],
        ["retriever", "--n-ctx", "1024"],  # another service's setting
    ):
        with pytest.raises(SystemExit):
            _serve_args(*argv)
    capsys.readouterr()
    args = _serve_args("orchestrator", "--price-table", '{"gemma": [0.02, 0.04]}')
    settings = build_settings(OrchestratorSettings, settings_overrides(args))
    assert settings.price_table == {"gemma": (0.02, 0.04)}


# --- raildebug config --------------------------------------------------------------------


def _config_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["config", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    parsed: dict[str, Any] = json.loads(out)
    parsed["_raw"] = out
    return parsed


def test_config_shows_each_value_source_and_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "RAILDEBUG_OPENAI_API_KEY").write_text("sk-from-file\n")
    monkeypatch.setenv("RAILDEBUG_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("RAILDEBUG_INFERENCE_AUTH_TOKENS", "ci tok-very-secret")
    monkeypatch.setenv("RAILDEBUG_INFERENCE_SLOTS", "3")
    monkeypatch.setenv("RAILDEBUG_INFERENCE_RATE_LIMIT_REDIS_URL", "redis://:hunter2@redis:6379/0")

    found = _config_json(capsys, "inference", "--n-ctx", "1024")
    rows = {row["name"]: row for row in found["inference"]}
    assert (rows["n_ctx"]["value"], rows["n_ctx"]["source"]) == (1024, "flag --n-ctx")
    assert (rows["slots"]["value"], rows["slots"]["source"]) == (3, "env RAILDEBUG_INFERENCE_SLOTS")
    assert (rows["max_queue"]["value"], rows["max_queue"]["source"]) == (16, "default")
    key = rows["openai.api_key"]
    assert key["value"] == "****" and key["secret"] and key["flag"] is None
    assert key["source"] == f"secret file {secrets / 'RAILDEBUG_OPENAI_API_KEY'}"
    assert key["variable"] == "RAILDEBUG_OPENAI_API_KEY"
    assert rows["auth_tokens"]["value"] == "****"
    assert rows["auth_tokens"]["source"] == "env RAILDEBUG_INFERENCE_AUTH_TOKENS"
    assert rows["rate_limit_redis_url"]["value"] == "redis://:****@redis:6379/0"
    assert {"common", "log", "inference"} <= set(found)
    for secret in ("sk-from-file", "tok-very-secret", "hunter2"):
        assert secret not in found["_raw"]
    # the file is really read, and the environment wins over it
    assert build_settings(InferenceSettings, {}).openai.api_key == SecretStr("sk-from-file")
    monkeypatch.setenv("RAILDEBUG_OPENAI_API_KEY", "sk-from-env")
    rows = {row["name"]: row for row in _config_json(capsys, "inference")["inference"]}
    assert rows["openai.api_key"]["source"] == "env RAILDEBUG_OPENAI_API_KEY"

    assert main(["config", "inference", "--n-ctx", "1024"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"n_ctx\s+1024\s+flag --n-ctx", text)
    assert re.search(r"openai\.api_key\s+\*\*\*\*\s+env RAILDEBUG_OPENAI_API_KEY", text)
    assert "sk-from-env" not in text and "tok-very-secret" not in text


def test_config_without_a_service_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    found = _config_json(capsys)
    assert set(found) - {"_raw"} == {
        "common",
        "log",
        "retriever",
        "inference",
        "orchestrator",
        "dspy",
        "client",
    }
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_invalid_settings_are_reported_not_raised(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAILDEBUG_RETRIEVER_MAX_PER_SOURCE", "many")
    assert main(["config", "retriever"]) == 2
    assert "max_per_source" in capsys.readouterr().err


# --- raildebug up ------------------------------------------------------------------------


def test_up_takes_ports_from_the_settings_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAILDEBUG_INFERENCE_PORT", "6053")
    env = service_environment(build_parser().parse_args(["up", "--retriever-port", "7052"]))
    assert env["RAILDEBUG_INFERENCE_PORT"] == "6053"
    assert env["RAILDEBUG_RETRIEVER_PORT"] == "7052"
    assert env["RAILDEBUG_ORCHESTRATOR_PORT"] == "50051"
    assert env["RAILDEBUG_ORCHESTRATOR_INFERENCE_ADDRESS"] == "127.0.0.1:6053"
    assert env["RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS"] == "127.0.0.1:7052"


# --- README table ------------------------------------------------------------------------


def test_readme_table_is_current_and_the_check_catches_a_stale_one(tmp_path: Path) -> None:
    assert sync_readme(README, check=True) is None, "run: python -m raildebug.settings_report"
    stale = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    stale.write_text(
        text.replace(
            "| `RAILDEBUG_INFERENCE_SLOTS` | `4` |", "| `RAILDEBUG_INFERENCE_SLOTS` | `2` |"
        )
    )
    assert stale.read_text() != text
    problem = sync_readme(stale, check=True)
    assert problem is not None and "stale" in problem
    assert report_main(["--check", str(stale)]) == 1
    assert report_main([str(stale)]) == 0  # regenerates
    assert stale.read_text() == text
    assert report_main(["--check", str(stale)]) == 0
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text(text.replace(BEGIN, "").replace(END, ""))
    assert report_main(["--check", str(unmarked)]) == 1


def test_the_table_has_one_row_per_variable_and_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = markdown_table()
    variables = [
        leaf.variable for model in DOCUMENTED_SETTINGS for leaf in leaves(model, nested=False)
    ]
    assert len(variables) == len(set(variables)), "two settings share one variable"
    rows = re.findall(r"^\| `(RAILDEBUG_[A-Z0-9_]+)` \|", table, re.MULTILINE)
    assert rows == variables
    for model in DOCUMENTED_SETTINGS:
        for leaf in leaves(model, nested=False):
            assert leaf.description, f"{leaf.variable} has no description"
    monkeypatch.setenv("RAILDEBUG_DATA_DIR", "/elsewhere")
    monkeypatch.setenv("RAILDEBUG_INFERENCE_N_CTX", "1")
    assert markdown_table() == table
    assert "| `RAILDEBUG_INFERENCE_N_THREADS` | `CPU count` |" in table


# --- nothing at import time --------------------------------------------------------------


def test_server_settings_is_only_a_base() -> None:
    with pytest.raises(TypeError, match="no RAILDEBUG_ environment prefix"):
        ServerSettings()


def _import_time_settings_calls(path: Path) -> list[str]:
    """Calls of a *Settings class or default_data_dir that run when `path` is imported:
    module and class bodies, decorators and default values (not function bodies)."""
    found: list[str] = []

    def scan(node: ast.AST) -> None:
        if isinstance(node, ast.Lambda):  # a default_factory runs later, not at import
            return
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.endswith("Settings") or name == "default_data_dir":
                found.append(f"{path}:{node.lineno} {name}()")
        for child in ast.iter_child_nodes(node):
            scan(child)

    def visit(body: list[ast.stmt]) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for expression in [*statement.decorator_list, *statement.args.defaults]:
                    scan(expression)
                for default in statement.args.kw_defaults:
                    if default is not None:
                        scan(default)
            elif isinstance(statement, ast.ClassDef):
                for expression in [*statement.decorator_list, *statement.bases]:
                    scan(expression)
                visit(statement.body)
            elif isinstance(statement, ast.If):
                scan(statement.test)
                visit(statement.body)
                visit(statement.orelse)
            elif isinstance(statement, ast.Try):
                visit(statement.body)
                for handler in statement.handlers:
                    visit(handler.body)
                visit(statement.orelse)
                visit(statement.finalbody)
            else:
                scan(statement)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_no_module_builds_settings_at_import_time(tmp_path: Path) -> None:
    sources = [
        path
        for top in ("raildebug", "services", "apps", "training")
        for path in (REPO_ROOT / top).rglob("*.py")
        if "v1" not in path.relative_to(REPO_ROOT).parts
    ]
    calls = [call for path in sources for call in _import_time_settings_calls(path)]
    assert calls == []
    # the scan sees the patterns it exists for, and leaves function bodies alone
    probe = tmp_path / "probe.py"
    probe.write_text(
        "_DEFAULTS = ServerSettings()\n"
        "def options(size: int = ClientSettings().port) -> None:\n"
        "    InferenceSettings()\n"
        "class Holder:\n"
        "    store = default_data_dir()\n"
        "    later = Field(default_factory=lambda: DspySettings())\n"
    )
    assert [call.rsplit(" ", 1)[-1] for call in _import_time_settings_calls(probe)] == [
        "ServerSettings()",
        "ClientSettings()",
        "default_data_dir()",
    ]


_IMPORT_PROBE = """
import importlib, pkgutil, sys
import pydantic_settings
made = []
original = pydantic_settings.BaseSettings.__init__
def spy(self, *args, **kwargs):
    made.append(type(self).__name__)
    original(self, *args, **kwargs)
pydantic_settings.BaseSettings.__init__ = spy
import raildebug, apps.cli
for package in (raildebug, apps.cli):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.startswith("raildebug.v1"):
            importlib.import_module(module.name)
from apps.cli.main import build_parser
build_parser()
print(made)
"""


@pytest.mark.service
def test_importing_the_floor_and_the_cli_reads_no_settings() -> None:
    """In a fresh interpreter with a broken environment: importing every floor and CLI module
    and building the whole command line instantiates no settings model."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RAILDEBUG_")}
    env.update(
        RAILDEBUG_INFERENCE_PORT="not-a-port",
        RAILDEBUG_RETRIEVER_MAX_PER_SOURCE="many",
        RAILDEBUG_ORCHESTRATOR_ANALYZER="nonsense",
        RAILDEBUG_CLIENT_CA_FILE="",
    )
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- the shared OpenAI endpoint ----------------------------------------------------------

_REQUEST = httpx2.Request("POST", "http://endpoint/v1/chat/completions")


def _status(code: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(code, headers=headers, request=_REQUEST)


def test_openai_failures_become_domain_errors_with_what_to_do() -> None:
    where = "http://endpoint/v1"
    timeout = domain_error(openai.APITimeoutError(request=_REQUEST), where)
    assert isinstance(timeout, DeadlineExceeded)
    down = domain_error(openai.APIConnectionError(request=_REQUEST), where)
    assert isinstance(down, NotReady) and where in str(down)
    limited = domain_error(
        openai.RateLimitError("slow down", response=_status(429, {"retry-after": "3"}), body=None),
        where,
    )
    assert isinstance(limited, Overloaded) and limited.retry_after_s == 3.0
    refused = domain_error(
        openai.BadRequestError("bad grammar", response=_status(400), body=None), where
    )
    assert isinstance(refused, InvalidRequest) and "bad grammar" in str(refused)
    denied = domain_error(openai.AuthenticationError("no", response=_status(401), body=None), where)
    assert isinstance(denied, NotReady) and "RAILDEBUG_OPENAI_API_KEY" in str(denied)
    broken = domain_error(
        openai.InternalServerError("boom", response=_status(500), body=None), where
    )
    assert isinstance(broken, NotReady)


def test_one_client_for_both_integrations() -> None:
    settings = OpenAISettings(base_url="http://vllm:8000/v1", timeout_s=7.0)
    client = open_client(settings)
    assert str(client.base_url).startswith("http://vllm:8000/v1")
    assert client.api_key == "unused" and client.max_retries == 0 and client.timeout == 7.0
    keyed = open_client(OpenAISettings(api_key=SecretStr("sk-1")))
    assert keyed.api_key == "sk-1" and "api.openai.com" in str(keyed.base_url)
    named = OpenAISettings(model="gemma")
    assert resolve_model(cast(openai.OpenAI, None), named) == "gemma"
    listing = SimpleNamespace(models=SimpleNamespace(list=lambda: SimpleNamespace(data=[])))
    with pytest.raises(NotReady, match="RAILDEBUG_OPENAI_MODEL"):
        resolve_model(cast(openai.OpenAI, listing), OpenAISettings())
    first = SimpleNamespace(data=[SimpleNamespace(id="alias")])
    listing = SimpleNamespace(models=SimpleNamespace(list=lambda: first))
    assert resolve_model(cast(openai.OpenAI, listing), OpenAISettings()) == "alias"
