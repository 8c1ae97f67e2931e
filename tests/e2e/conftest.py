"""Starts the three real services as separate processes on loopback, the way `raildebug up` does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from apps.cli.health import wait_until_serving
from raildebug.grpc_runtime.channels import open_channel

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_CACHE = Path.home() / ".cache" / "raildebug" / "models"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        channel = open_channel(self.address)
        self.channels.append(channel)
        return channel

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self, timeout_s: float = 60.0) -> int:
        for channel in self.channels:
            channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


StartService = Callable[..., ServiceProcess]


@pytest.fixture(scope="session")
def start_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartService]:
    """Factory: start `raildebug serve NAME` with env overrides; stopped at session end."""
    started: list[ServiceProcess] = []

    def start(name: str, wait: bool = True, **env_overrides: str) -> ServiceProcess:
        data_dir = tmp_path_factory.mktemp(f"{name}-data")
        port = free_port()
        prefix = f"RAILDEBUG_{name.upper()}_"
        env = {
            **os.environ,
            "RAILDEBUG_DATA_DIR": str(data_dir),
            "RAILDEBUG_LOG_FORMAT": "json",
            "RAILDEBUG_INFERENCE_MODEL_CACHE_DIR": str(MODEL_CACHE),
            f"{prefix}PORT": str(port),
            **{f"{prefix}{key.upper()}": value for key, value in env_overrides.items()},
        }
        log_path = data_dir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "apps.cli.main", "serve", name],
            env=env,
            cwd=REPO_ROOT,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        service = ServiceProcess(name, port, process, log_path)
        started.append(service)
        if wait:
            status = wait_until_serving(service.address, timeout_s=240)
            assert status == "SERVING", f"{name} is {status}:\n{log_path.read_text()[-3000:]}"
        return service

    yield start
    for service in started:
        service.stop()


@dataclass
class Stack:
    retriever: ServiceProcess
    inference: ServiceProcess
    orchestrator: ServiceProcess


@pytest.fixture(scope="session")
def stack(start_service: StartService, sample_corpus: Path) -> Stack:
    """All three services, with the sample corpus ingested through `raildebug ingest`."""
    retriever = start_service("retriever")
    inference = start_service("inference")
    orchestrator = start_service(
        "orchestrator",
        retriever_address=retriever.address,
        inference_address=inference.address,
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.cli.main",
            "ingest",
            str(sample_corpus),
            "--exclude",
            "README.md",
            "--exclude",
            "QUESTIONS.md",
            "--retriever",
            retriever.address,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"ingested sample corpus in {time.monotonic() - started:.1f}s: {result.stdout}")
    return Stack(retriever, inference, orchestrator)


@pytest.fixture(scope="session")
def openai_compatible_server(
    gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real OpenAI-compatible endpoint (llama-cpp-python's server) serving the packaged Gemma;
    returns its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gemma_gguf),
                "--model_alias",
                "gemma-3-270m",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--n_threads",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                break
            except OSError:
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
